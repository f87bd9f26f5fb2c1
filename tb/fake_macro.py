"""A deterministic stand-in for the analog macro, for controller tests.

Controller tests check sequencing, not analog behaviour. For host modes this
fake returns a code that encodes the channel and the DAC inputs, so a test can
tell which conversion produced which word. For write-verify it keeps one
integer verify code per cell: a SET pulse raises it and a RESET pulse lowers
it by a step that grows with the amplitude, and a VERIFY read returns it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model.config import MacroConfig


@dataclass
class FakeSample:
    code: int
    overrange: bool
    volts: float = 0.0


@dataclass
class FakeMacro:
    config: MacroConfig = field(default_factory=MacroConfig)
    overrange_channels: frozenset = frozenset()
    stuck_cells: frozenset = frozenset()
    """(array, half, row, col) of cells that ignore pulses."""
    dac: dict = field(default_factory=dict)
    events: list = field(default_factory=list)
    cells: dict = field(default_factory=dict)
    """Verify code per (array, half, row, col); absent cells read 0."""
    enable_time: int | None = None
    _state: object = None

    def load_dac(self, channel, code):
        self.dac[channel] = code
        self.events.append(("dac", channel, code))

    def enable(self, time_ps, state):
        self.enable_time = time_ps
        self._state = state
        self.events.append(("enable", time_ps, state.mode.name, state.signed, state.array,
                            int(state.row_enable.sum()), int(state.col_enable.sum())))

    def sample(self, time_ps, channel):
        if self._state is not None and self._state.mode.name == "VERIFY":
            code = self.cells.get(self._cell_key(self._state), 0)
        else:
            code = self.expected_code(channel)
        self.events.append(("sample", time_ps - self.enable_time, channel, code))
        return FakeSample(code=code, overrange=channel in self.overrange_channels)

    def apply_pulse(self, time_ps, state, polarity, amplitude, width_ps):
        key = self._cell_key(state)
        self.events.append(("pulse", state.cell, polarity, amplitude, width_ps))
        if key in self.stuck_cells:
            return
        step = self.pulse_step(amplitude)
        code = self.cells.get(key, 0) + (step if polarity else -step)
        top = self.config.adc.code_max
        self.cells[key] = max(min(code, top), -top - 1)

    def disable(self, time_ps):
        self.events.append(("disable", time_ps - self.enable_time))

    @staticmethod
    def pulse_step(amplitude: int) -> int:
        """Code change of one pulse: 1 up to amplitude 70, then one more per 4 amplitude codes."""
        return 1 + max(0, amplitude - 70) // 4

    @staticmethod
    def _cell_key(state):
        row, col = state.cell
        return (state.array, int(state.half_negative), row, col)

    def expected_code(self, channel):
        """Code for `channel`: the channel number minus the sum of DAC codes, wrapped to the ADC range."""
        bits = self.config.adc.bits
        value = channel - sum(self.dac.values())
        half = 1 << (bits - 1)
        return (value + half) % (2 * half) - half
