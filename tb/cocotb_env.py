"""cocotb test environment: clock, reset, AXI4-Lite manager, analog bridge and driver."""

from __future__ import annotations

import json
import logging
import os

from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, RisingEdge, Timer, with_timeout
from cocotb.triggers import SimTimeoutError
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from ..rtl.interfaces import AxiResp
from ..rtl.params import ControllerParams, params_from_dict
from .bridge_core import AnalogBridgeCore, FaultInjection
from .cocotb_bridge import CocotbAnalogBridge
from .driver import AmcDriver
from .errors import BusError

__all__ = ["PARAMS_ENV", "params_from_env", "CocotbAxiLiteBus", "AmcTestbench"]

PARAMS_ENV = "AMC_PARAMS_JSON"
"""Environment variable that carries the ControllerParams (as JSON) into the simulator process."""


def params_from_env() -> ControllerParams:
    """Return the ControllerParams the runner passed in `PARAMS_ENV`, or the defaults."""
    text = os.environ.get(PARAMS_ENV)
    return params_from_dict(json.loads(text)) if text else ControllerParams()


class CocotbAxiLiteBus:
    """`RegisterBus` over cocotbext-axi's AxiLiteMaster.

    cocotbext-axi returns the response code instead of raising, so every access
    checks it and raises `BusError` on SLVERR.
    """

    def __init__(self, master: AxiLiteMaster, irq, clock_period_ps: int):
        self.master = master
        self._irq = irq
        self._period_ps = clock_period_ps
        self.transactions = 0

    async def read(self, address: int) -> int:
        self.transactions += 1
        result = await self.master.read(address, 4)
        if int(result.resp) != AxiResp.OKAY:
            raise BusError("read", address, int(result.resp))
        return int.from_bytes(result.data, "little")

    async def write(self, address: int, value: int, strobe: int = 0xF) -> None:
        self.transactions += 1
        if strobe == 0xF:
            result = await self.master.write(address, (value & 0xFFFF_FFFF).to_bytes(4, "little"))
        else:
            # cocotbext-axi derives WSTRB from the address and length, so a
            # partial write is the enabled byte lanes as separate accesses.
            result = None
            for lane in range(4):
                if strobe >> lane & 1:
                    byte = (value >> (8 * lane)) & 0xFF
                    result = await self.master.write(address + lane, bytes([byte]))
                    if int(result.resp) != AxiResp.OKAY:
                        break
            if result is None:
                return
        if int(result.resp) != AxiResp.OKAY:
            raise BusError("write", address, int(result.resp))

    async def wait_interrupt(self, timeout_cycles: int) -> bool:
        if int(self._irq.value):
            return True
        try:
            await with_timeout(RisingEdge(self._irq), timeout_cycles * self._period_ps, "ps")
        except SimTimeoutError:
            return bool(int(self._irq.value))
        return True

    def now_cycles(self) -> int:
        return round(get_sim_time("ps")) // self._period_ps


class AmcTestbench:
    """Owns the clock, reset, bus manager, analog model and driver of one cocotb test.

    Parameters
    ----------
    dut : cocotb handle of ``amc_controller``
    params : ControllerParams, optional
        Defaults to the parameters the runner passed (`params_from_env`).
    macro : AnalogMacro, optional
        Analog model; a new one from ``params.macro`` by default.
    faults : FaultInjection, optional
    """

    def __init__(self, dut, params: ControllerParams | None = None, macro=None,
                 faults: FaultInjection | None = None):
        self.dut = dut
        self.params = params if params is not None else params_from_env()
        self.log = logging.getLogger("cocotb.amc")
        self.log.setLevel(logging.INFO)
        if macro is None:
            from ..model.macro import AnalogMacro

            macro = AnalogMacro(self.params.macro)
        self.macro = macro
        self.core = AnalogBridgeCore(macro, self.params, faults)
        self.bridge = CocotbAnalogBridge(dut, self.core)

        period = self.params.clock_period_ps
        Clock(dut.clk, period, unit="ps").start()
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "axil_"), dut.clk, dut.rst)
        self.bus = CocotbAxiLiteBus(self.axil, dut.irq, period)
        self.driver = AmcDriver(self.bus, self.params)
        self.log.info("%s", self.core.describe())

    async def reset(self, cycles: int = 4) -> None:
        """Hold reset for `cycles` clock cycles, with every input driven, then start the bridge."""
        self.dut.rst.value = 1
        self.bridge.start()
        await ClockCycles(self.dut.clk, cycles)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)

    async def start(self) -> AmcDriver:
        """Reset the controller, connect the driver and return it."""
        await self.reset()
        await self.driver.connect()
        return self.driver

    def set_backpressure(self, generator) -> None:
        """Pause the bus manager's channels by `generator` (an iterable of 0/1 per cycle), or None to stop."""
        for channel in (self.axil.write_if.aw_channel, self.axil.write_if.w_channel,
                        self.axil.write_if.b_channel, self.axil.read_if.ar_channel,
                        self.axil.read_if.r_channel):
            channel.set_pause_generator(generator() if generator is not None else None)

    async def idle(self, ns: int) -> None:
        await Timer(ns, unit="ns")
