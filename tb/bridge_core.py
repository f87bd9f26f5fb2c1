"""Simulator-independent core of the analog bridge.

The bridge lets the analog model answer the controller RTL: it turns events on
the controller's analog-side ports (DAC load, enable, ADC start, disable) into
`AnalogMacro` calls and tells the simulator adapter what to drive back and
when. The cocotb adapter (`amc.tb.cocotb_bridge`), the Amaranth adapter
(`amc.tb.amaranth_bridge`) and the model-only backend all use this class, so
they compute identical ADC codes for the same seed.

Timing rule: an analog delay is rounded up to whole clock cycles, and the
answer is driven half a clock period before the rising edge on which the
controller samples it. No answer ever changes on a clock edge, so no simulator
has a race to resolve.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..model.switch_matrix import SwitchState, decode_switch_state
from ..rtl.params import ControllerParams

if TYPE_CHECKING:
    from ..model.macro import AnalogMacro

__all__ = ["AnalogBridgeCore", "AdcAnswer", "FaultInjection", "BridgeEventLog"]

log = logging.getLogger(__name__)


@dataclass
class FaultInjection:
    """Hardware faults the bridge can emulate, for the watchdog tests."""

    ready_never: bool = False
    """The op-amp bias never reports ready (the controller must time out)."""

    adc_hang: bool = False
    """The ADC raises busy and never completes a conversion."""


@dataclass(frozen=True)
class AdcAnswer:
    code_bits: int
    """ADC code as an unsigned bit pattern of ``adc_bits`` bits (two's complement)."""
    overrange: bool
    delay_ps: int
    """Delay from the start edge to driving ``valid``, in picoseconds."""


@dataclass
class BridgeEventLog:
    """Counts and times of the events the bridge handled."""

    wakeups: int = 0
    """Python wake-ups of the simulator adapter (incremented by the adapter)."""
    dac_loads: int = 0
    enables: list[int] = field(default_factory=list)
    """Enable times in picoseconds."""
    samples: list[tuple[int, int, int]] = field(default_factory=list)
    """(time_ps, channel, code) of every ADC sample."""
    pulses: int = 0
    """Programming pulses applied."""


class AnalogBridgeCore:
    """Translate analog-side port events into calls on an `AnalogMacro`.

    Parameters
    ----------
    macro : AnalogMacro
        The analog model that answers.
    params : ControllerParams
        Controller parameters (clock period, sizes, converter widths).
    faults : FaultInjection, optional
        Faults to emulate; none by default.
    """

    def __init__(self, macro: AnalogMacro, params: ControllerParams, faults: FaultInjection | None = None):
        self.macro = macro
        self.params = params
        self.faults = faults if faults is not None else FaultInjection()
        self.log = BridgeEventLog()
        self.last_state: SwitchState | None = None
        period = params.clock_period_ps
        self._ready_delay_ps = params.bias_ready_cycles * period - period // 2
        self._adc_delay_ps = params.adc_latency_cycles * period - period // 2

    def describe(self) -> str:
        """Return a one-line description of the bridge configuration, for start-up logs."""
        p = self.params
        return (
            f"analog bridge: {p.rows}x{p.cols} x{p.n_arrays} arrays, clock {p.clock_period_ps} ps, "
            f"ready after {p.bias_ready_cycles} cycles, ADC latency {p.adc_latency_cycles} cycles, "
            f"seed {self.macro.config.seed}, non-idealities: {self.macro.config.nonideal.describe()}"
        )

    def on_dac_load(self, channel: int, code_bits: int) -> None:
        """Latch a DAC code; `code_bits` is the raw two's complement bit pattern."""
        self.log.dac_loads += 1
        bits = self.params.dac_bits
        code = code_bits - (1 << bits) if code_bits >> (bits - 1) else code_bits
        self.macro.load_dac(channel, code)

    def on_enable(self, time_ps: int, conn: int, array_onehot: int, row_en: int, col_en: int) -> int | None:
        """Start an analog operation; return the delay to raise ``ready`` in ps, or None to never raise it."""
        self.log.enables.append(time_ps)
        p = self.params
        state = decode_switch_state(conn, array_onehot, row_en, col_en, p.rows, p.cols, p.n_arrays)
        self.last_state = state
        self.macro.enable(time_ps, state)
        if self.faults.ready_never:
            return None
        return self._ready_delay_ps

    def on_adc_start(self, time_ps: int, channel: int) -> AdcAnswer | None:
        """Sample op-amp output `channel`; return the answer, or None if the ADC hangs."""
        if self.faults.adc_hang:
            return None
        sample = self.macro.sample(time_ps, channel)
        self.log.samples.append((time_ps, channel, sample.code))
        bits = self.params.adc_bits
        return AdcAnswer(
            code_bits=sample.code & ((1 << bits) - 1),
            overrange=bool(sample.overrange),
            delay_ps=self._adc_delay_ps,
        )

    def on_pulse(self, time_ps: int, conn: int, array_onehot: int, row_en: int, col_en: int, polarity: int,
                 amplitude: int, width_cycles: int) -> None:
        """Apply a programming pulse to the cell the switch word selects."""
        p = self.params
        state = decode_switch_state(conn, array_onehot, row_en, col_en, p.rows, p.cols, p.n_arrays)
        self.log.pulses += 1
        self.macro.apply_pulse(time_ps, state, int(polarity), int(amplitude), width_cycles * p.clock_period_ps)

    def on_disable(self, time_ps: int) -> None:
        """End the analog operation; the op-amp outputs hold their values."""
        self.macro.disable(time_ps)
