"""Analog bridge for cocotb: the analog model answers the controller on Icarus or Verilator.

Four coroutines wait for edges of ``dac__load``, ``analog__enable``,
``adc__start`` and ``pulse__active`` and for timers of their own answers; none
waits on the clock, so Python wakes up a few times per DAC channel, ADC
conversion and programming pulse, not per cycle.
"""

from __future__ import annotations

import cocotb
from cocotb.simtime import get_sim_time
from cocotb.triggers import FallingEdge, RisingEdge, Timer

from .bridge_core import AnalogBridgeCore

__all__ = ["CocotbAnalogBridge"]


def _now_ps() -> int:
    return round(get_sim_time("ps"))


class CocotbAnalogBridge:
    """Connect an `AnalogBridgeCore` to the controller's analog-side ports."""

    def __init__(self, dut, core: AnalogBridgeCore):
        self.dut = dut
        self.core = core
        self._tasks = []

    def drive_idle(self) -> None:
        """Drive every analog-side input of the controller to its idle value.

        Verilator is two-state and Icarus reads undriven inputs as Z, so every
        input is driven from time 0.
        """
        dut = self.dut
        dut.analog__ready.value = 0
        dut.adc__busy.value = 0
        dut.adc__valid.value = 0
        dut.adc__code.value = 0
        dut.adc__overrange.value = 0

    def start(self) -> None:
        self.drive_idle()
        self._tasks = [
            cocotb.start_soon(self._dac_loop()),
            cocotb.start_soon(self._enable_loop()),
            cocotb.start_soon(self._adc_loop()),
            cocotb.start_soon(self._pulse_loop()),
        ]

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks = []

    async def _dac_loop(self) -> None:
        dut, core = self.dut, self.core
        while True:
            await RisingEdge(dut.dac__load)
            core.log.wakeups += 1
            core.on_dac_load(int(dut.dac__chan.value), int(dut.dac__code.value))

    async def _enable_loop(self) -> None:
        dut, core = self.dut, self.core
        while True:
            await RisingEdge(dut.analog__enable)
            core.log.wakeups += 1
            delay = core.on_enable(
                _now_ps(), int(dut.sw__conn.value), int(dut.sw__array.value),
                int(dut.sw__row_en.value), int(dut.sw__col_en.value),
            )
            ready_task = cocotb.start_soon(self._raise_ready(delay)) if delay is not None else None
            await FallingEdge(dut.analog__enable)
            core.log.wakeups += 1
            if ready_task is not None and not ready_task.done():
                ready_task.cancel()
            core.on_disable(_now_ps())
            dut.analog__ready.value = 0

    async def _pulse_loop(self) -> None:
        dut, core = self.dut, self.core
        while True:
            await RisingEdge(dut.pulse__active)
            core.log.wakeups += 1
            core.on_pulse(
                _now_ps(), int(dut.sw__conn.value), int(dut.sw__array.value), int(dut.sw__row_en.value),
                int(dut.sw__col_en.value), int(dut.pulse__polarity.value), int(dut.pulse__amplitude.value),
                int(dut.pulse__width.value),
            )

    async def _raise_ready(self, delay_ps: int) -> None:
        await Timer(delay_ps, unit="ps")
        self.core.log.wakeups += 1
        self.dut.analog__ready.value = 1

    async def _adc_loop(self) -> None:
        dut, core = self.dut, self.core
        while True:
            await RisingEdge(dut.adc__start)
            core.log.wakeups += 1
            answer = core.on_adc_start(_now_ps(), int(dut.adc__chan.value))
            dut.adc__busy.value = 1
            dut.adc__valid.value = 0
            if answer is None:
                continue
            await Timer(answer.delay_ps, unit="ps")
            core.log.wakeups += 1
            dut.adc__code.value = answer.code_bits
            dut.adc__overrange.value = int(answer.overrange)
            dut.adc__busy.value = 0
            dut.adc__valid.value = 1
