"""Analog bridge for the Amaranth simulator.

A background testbench that waits only for events on the controller's
analog-side ports (DAC load, enable edges, ADC start, pulse start) and for the
deadlines of its own answers, and hands them to `AnalogBridgeCore`.
"""

from __future__ import annotations

import heapq

from .amaranth_axil import sim_time_ps
from .bridge_core import AnalogBridgeCore

__all__ = ["AmaranthAnalogBridge"]


class AmaranthAnalogBridge:
    """Bridge between an `AmcController` in the Amaranth simulator and an `AnalogBridgeCore`."""

    def __init__(self, dut, core: AnalogBridgeCore):
        self.dut = dut
        self.core = core

    async def testbench(self, ctx) -> None:
        """Run forever; add with ``sim.add_testbench(bridge.testbench, background=True)``."""
        dut, core = self.dut, self.core
        ctx.set(dut.analog.ready, 0)
        ctx.set(dut.adc.busy, 0)
        ctx.set(dut.adc.valid, 0)
        ctx.set(dut.adc.code, 0)
        ctx.set(dut.adc.overrange, 0)
        # Pending answers: (deadline_ps, sequence, action, argument).
        pending: list[tuple[int, int, str, object]] = []
        sequence = 0

        while True:
            trigger = (ctx.posedge(dut.dac.load).posedge(dut.analog.enable)
                       .negedge(dut.analog.enable).posedge(dut.adc.start).posedge(dut.pulse.active))
            if pending:
                wait_ps = pending[0][0] - sim_time_ps(ctx)
                trigger = trigger.delay(max(wait_ps, 0) * 1e-12)
            results = await trigger
            core.log.wakeups += 1
            now = sim_time_ps(ctx)
            load, enable_rise, enable_fall, start, pulse = results[:5]

            if load:
                core.on_dac_load(ctx.get(dut.dac.chan), ctx.get(dut.dac.code))
            if enable_rise:
                delay = core.on_enable(now, ctx.get(dut.sw.conn), ctx.get(dut.sw.array),
                                       ctx.get(dut.sw.row_en), ctx.get(dut.sw.col_en))
                if delay is not None:
                    heapq.heappush(pending, (now + delay, sequence, "ready", None))
                    sequence += 1
            if enable_fall:
                core.on_disable(now)
                ctx.set(dut.analog.ready, 0)
                pending = [item for item in pending if item[2] != "ready"]
                heapq.heapify(pending)
            if start:
                answer = core.on_adc_start(now, ctx.get(dut.adc.chan))
                ctx.set(dut.adc.busy, 1)
                ctx.set(dut.adc.valid, 0)
                if answer is not None:
                    heapq.heappush(pending, (now + answer.delay_ps, sequence, "adc", answer))
                    sequence += 1

            if pulse:
                core.on_pulse(now, ctx.get(dut.sw.conn), ctx.get(dut.sw.array), ctx.get(dut.sw.row_en),
                              ctx.get(dut.sw.col_en), ctx.get(dut.pulse.polarity), ctx.get(dut.pulse.amplitude),
                              ctx.get(dut.pulse.width))

            while pending and pending[0][0] <= now:
                _, _, action, argument = heapq.heappop(pending)
                if action == "ready":
                    ctx.set(dut.analog.ready, 1)
                else:
                    ctx.set(dut.adc.code, argument.code_bits)
                    ctx.set(dut.adc.overrange, int(argument.overrange))
                    ctx.set(dut.adc.busy, 0)
                    ctx.set(dut.adc.valid, 1)
