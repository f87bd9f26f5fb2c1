"""Run host-driver code against the controller in the Amaranth simulator."""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

from amaranth.sim import Simulator

from ..rtl.controller import AmcController
from ..rtl.params import ControllerParams
from .amaranth_axil import AmaranthAxiLiteBus, sim_time_ps
from .amaranth_bridge import AmaranthAnalogBridge
from .bridge_core import AnalogBridgeCore, FaultInjection
from .driver import AmcDriver

__all__ = ["AmaranthRun", "run_amaranth"]

log = logging.getLogger(__name__)


@dataclass
class AmaranthRun:
    """Outcome of one Amaranth simulation."""

    result: Any
    cycles: int
    """Simulated clock cycles from reset to the end of the driver code."""
    wakeups: int
    """Python wake-ups of the analog bridge."""
    bus_transactions: int
    bridge: AnalogBridgeCore
    vcd_path: Path | None


def run_amaranth(params: ControllerParams, macro, main: Callable[[AmcDriver], Awaitable[Any]], *,
                 vcd_path: Path | None = None, faults: FaultInjection | None = None) -> AmaranthRun:
    """Simulate the controller with the analog model and run `main(driver)` as the host.

    Parameters
    ----------
    params : ControllerParams
        Controller parameters; the macro's configuration must be ``params.macro``.
    macro : AnalogMacro
        Analog model answering the controller.
    main : async callable
        Host code; receives a connected `AmcDriver`; its return value is returned.
    vcd_path : Path, optional
        Write a VCD waveform (and a GTKWave save file beside it) here.
    faults : FaultInjection, optional
        Analog faults to emulate.
    """
    dut = AmcController(params)
    core = AnalogBridgeCore(macro, params, faults)
    bridge = AmaranthAnalogBridge(dut, core)
    outcome: dict[str, Any] = {}

    async def host(ctx):
        ctx.set(dut.adc.busy, 0)
        bus = AmaranthAxiLiteBus(ctx, dut.axil, dut.irq, params.clock_period_ps)
        await ctx.tick().repeat(2)
        driver = AmcDriver(bus, params)
        await driver.connect()
        outcome["result"] = await main(driver)
        outcome["cycles"] = sim_time_ps(ctx) // params.clock_period_ps
        outcome["transactions"] = bus.transactions

    sim = Simulator(dut)
    sim.add_clock(params.clock_period_ps * 1e-12)
    sim.add_testbench(bridge.testbench, background=True)
    sim.add_testbench(host)
    log.info("%s", core.describe())
    with ExitStack() as stack:
        if vcd_path is not None:
            vcd_path = Path(vcd_path)
            vcd_path.parent.mkdir(parents=True, exist_ok=True)
            stack.enter_context(sim.write_vcd(str(vcd_path), str(vcd_path.with_suffix(".gtkw")),
                                              traces=_traces(dut)))
        sim.run()
    return AmaranthRun(
        result=outcome.get("result"),
        cycles=outcome.get("cycles", 0),
        wakeups=core.log.wakeups,
        bus_transactions=outcome.get("transactions", 0),
        bridge=core,
        vcd_path=vcd_path,
    )


def _traces(dut: AmcController) -> list:
    """Return the signals the Amaranth GTKWave save file shows, grouped as in the cocotb waves."""
    axil = dut.axil
    return [
        dut.seq_state, dut.irq,
        axil.awaddr, axil.awvalid, axil.awready, axil.wdata, axil.wvalid, axil.wready,
        axil.bresp, axil.bvalid, axil.araddr, axil.arvalid, axil.arready, axil.rdata, axil.rresp, axil.rvalid,
        dut.sw.conn, dut.sw.array, dut.sw.row_en, dut.sw.col_en,
        dut.dac.chan, dut.dac.code, dut.dac.load,
        dut.analog.enable, dut.analog.ready,
        dut.adc.start, dut.adc.chan, dut.adc.busy, dut.adc.valid, dut.adc.code, dut.adc.overrange,
        dut.wv_state, dut.pulse.active, dut.pulse.polarity, dut.pulse.amplitude, dut.pulse.width,
    ]
