"""A deterministic stand-in for the analog macro, for controller unit tests.

Controller tests check sequencing, not analog behaviour: this fake returns a
code that encodes the channel and the DAC inputs, so a test can tell which
conversion produced which word.
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
    dac: dict = field(default_factory=dict)
    events: list = field(default_factory=list)
    enable_time: int | None = None

    def load_dac(self, channel, code):
        self.dac[channel] = code
        self.events.append(("dac", channel, code))

    def enable(self, time_ps, state):
        self.enable_time = time_ps
        self.events.append(("enable", time_ps, state.mode.name, state.signed, state.array,
                            int(state.row_enable.sum()), int(state.col_enable.sum())))

    def sample(self, time_ps, channel):
        code = self.expected_code(channel)
        self.events.append(("sample", time_ps - self.enable_time, channel, code))
        return FakeSample(code=code, overrange=channel in self.overrange_channels)

    def disable(self, time_ps):
        self.events.append(("disable", time_ps - self.enable_time))

    def expected_code(self, channel):
        """Code for `channel`: the channel number minus the sum of DAC codes, wrapped to the ADC range."""
        bits = self.config.adc.bits
        value = channel - sum(self.dac.values())
        half = 1 << (bits - 1)
        return (value + half) % (2 * half) - half
