"""AXI4-Lite manager for the Amaranth simulator.

No maintained AXI4-Lite bus functional model exists for Amaranth's simulator
(cocotbext-axi needs cocotb), so this one implements the manager side of the
five channels for the host driver's `RegisterBus` protocol.
"""

from __future__ import annotations

import logging

from ..rtl.interfaces import AxiResp
from .errors import BusError

__all__ = ["AmaranthAxiLiteBus"]

log = logging.getLogger(__name__)


class AmaranthAxiLiteBus:
    """`RegisterBus` over an AXI4-Lite port, driven from an Amaranth testbench.

    Parameters
    ----------
    ctx : amaranth.sim.SimulatorContext
        Context of the testbench that calls the driver.
    bus : AXI4-Lite interface
        The controller's ``axil`` port.
    irq : Signal
        The controller's interrupt output.
    clock_period_ps : int
        Clock period, for `now_cycles`.
    """

    def __init__(self, ctx, bus, irq, clock_period_ps: int):
        self._ctx = ctx
        self._bus = bus
        self._irq = irq
        self._period_ps = clock_period_ps
        self.transactions = 0
        for name in ("awvalid", "wvalid", "bready", "arvalid", "rready"):
            ctx.set(getattr(bus, name), 0)
        log.debug("Amaranth AXI4-Lite manager: %d-bit address, 32-bit data", len(bus.awaddr))

    async def write(self, address: int, value: int, strobe: int = 0xF) -> None:
        ctx, bus = self._ctx, self._bus
        self.transactions += 1
        ctx.set(bus.awaddr, address)
        ctx.set(bus.awprot, 0)
        ctx.set(bus.awvalid, 1)
        ctx.set(bus.wdata, value & 0xFFFF_FFFF)
        ctx.set(bus.wstrb, strobe)
        ctx.set(bus.wvalid, 1)
        ctx.set(bus.bready, 1)
        address_done = data_done = False
        while not (address_done and data_done):
            _, _, awready, wready = await ctx.tick().sample(bus.awready, bus.wready)
            if awready and not address_done:
                address_done = True
                ctx.set(bus.awvalid, 0)
            if wready and not data_done:
                data_done = True
                ctx.set(bus.wvalid, 0)
        while True:
            _, _, bvalid, bresp = await ctx.tick().sample(bus.bvalid, bus.bresp)
            if bvalid:
                break
        ctx.set(bus.bready, 0)
        if bresp != AxiResp.OKAY:
            raise BusError("write", address, bresp)

    async def read(self, address: int) -> int:
        ctx, bus = self._ctx, self._bus
        self.transactions += 1
        ctx.set(bus.araddr, address)
        ctx.set(bus.arprot, 0)
        ctx.set(bus.arvalid, 1)
        while True:
            _, _, arready = await ctx.tick().sample(bus.arready)
            if arready:
                break
        ctx.set(bus.arvalid, 0)
        ctx.set(bus.rready, 1)
        while True:
            _, _, rvalid, rdata, rresp = await ctx.tick().sample(bus.rvalid, bus.rdata, bus.rresp)
            if rvalid:
                break
        ctx.set(bus.rready, 0)
        if rresp != AxiResp.OKAY:
            raise BusError("read", address, rresp)
        return rdata

    async def wait_interrupt(self, timeout_cycles: int) -> bool:
        ctx = self._ctx
        if ctx.get(self._irq):
            return True
        period_s = self._period_ps * 1e-12
        fired, _ = await ctx.posedge(self._irq).delay(timeout_cycles * period_s)
        return bool(fired) or bool(ctx.get(self._irq))

    def now_cycles(self) -> int:
        return sim_time_ps(self._ctx) // self._period_ps


def sim_time_ps(ctx) -> int:
    """Return the simulation time of an Amaranth testbench context in picoseconds."""
    # NOTE: Amaranth 0.5 has no public query of the current time; this reads
    # the engine's femtosecond counter. Replace once SimulatorContext offers one.
    return ctx._engine.now // 1000
