"""Digital parameters of the controller, derived from one `MacroConfig`.

The analog macro's geometry and converter widths come from
`amc.model.config.MacroConfig`; this module adds what only the digital side
has (clock, bus and counter widths) and derives every width the RTL, the
register map and the testbenches use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..model.config import ConfigError, MacroConfig
from ..model.programming import verify_read_code, verify_settle_time_s, write_verify_settings

__all__ = ["ControllerParams", "bits_for", "params_to_dict", "params_from_dict"]


def bits_for(count: int) -> int:
    """Return the number of bits that can hold every value 0 .. count."""
    return max(1, int(count).bit_length())


@dataclass(frozen=True)
class ControllerParams:
    """Parameters of the digital controller.

    Parameters
    ----------
    macro : MacroConfig
        The analog macro the controller runs; sizes and converter widths come from it.
    clock_period_ps : int
        Period of the controller clock ``clk`` in picoseconds. Default 10 000 ps
        (100 MHz), an assumption: the source papers do not state the clock.
    counter_width : int
        Width of the settle and watchdog counters, in bits (24 bits: 168 ms at 100 MHz).
    default_settle_cycles : int
        Reset value of the SETTLE_CYCLES register, in clock cycles.
    default_watchdog_cycles : int
        Reset value of the WATCHDOG_CYCLES register: the longest wait for the
        analog ready signal or an ADC conversion before the controller gives up.
    """

    macro: MacroConfig = field(default_factory=MacroConfig)
    clock_period_ps: int = 10_000
    counter_width: int = 24
    default_settle_cycles: int = 1000
    default_watchdog_cycles: int = 4096

    DATA_WIDTH = 32
    """AXI4-Lite data width in bits (fixed by the register map)."""


    def __post_init__(self) -> None:
        if not isinstance(self.macro, MacroConfig):
            raise ConfigError(f"ControllerParams.macro must be a MacroConfig, got {type(self.macro).__name__}")
        for name in ("clock_period_ps", "counter_width", "default_settle_cycles", "default_watchdog_cycles"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"ControllerParams.{name} = {value!r} is invalid: use a positive integer")
        if self.clock_period_ps % 2:
            raise ConfigError(
                f"ControllerParams.clock_period_ps = {self.clock_period_ps} is invalid: use an even number of "
                "picoseconds so the clock has a whole-picosecond half period"
            )
        if self.counter_width > 31:
            raise ConfigError(f"ControllerParams.counter_width = {self.counter_width} is invalid: at most 31 bits")
        limit = (1 << self.counter_width) - 1
        for name in ("default_settle_cycles", "default_watchdog_cycles"):
            if getattr(self, name) > limit:
                raise ConfigError(
                    f"ControllerParams.{name} = {getattr(self, name)} does not fit the {self.counter_width}-bit counter"
                )
        if self.adc_latency_cycles < 2:
            raise ConfigError(
                f"AdcParams.conversion_time_s = {self.macro.adc.conversion_time_s!r} s is shorter than two clock "
                f"periods of {self.clock_period_ps} ps: the controller must see the converter busy for at least "
                "one clock edge; use a longer conversion time or a faster clock"
            )
        if self.n_arrays > 255:
            raise ConfigError(f"ArrayParams.n_arrays = {self.n_arrays} is invalid: the ARRAY register stores at most 255")
        if self.lines > 256:
            raise ConfigError(
                f"ArrayParams rows/cols = {self.rows}/{self.cols}: the register map has room for at most 256 "
                "DAC and ADC channels; use arrays of at most 256 lines"
            )

    # Geometry, from the macro configuration.

    @property
    def rows(self) -> int:
        return self.macro.array.rows

    @property
    def cols(self) -> int:
        return self.macro.array.cols

    @property
    def lines(self) -> int:
        """Number of DAC channels, op-amps and ADC channels."""
        return self.macro.array.lines

    @property
    def n_arrays(self) -> int:
        return self.macro.array.n_arrays

    @property
    def dac_bits(self) -> int:
        return self.macro.dac.bits

    @property
    def adc_bits(self) -> int:
        return self.macro.adc.bits

    # Derived widths.

    @property
    def channel_width(self) -> int:
        """Width of a DAC or ADC channel index."""
        return bits_for(self.lines - 1)

    @property
    def count_width(self) -> int:
        """Width of an active row or column count (0 .. lines)."""
        return bits_for(self.lines)

    @property
    def array_width(self) -> int:
        """Width of an array index."""
        return bits_for(self.n_arrays - 1)

    @property
    def row_width(self) -> int:
        """Width of a row index."""
        return bits_for(self.rows - 1)

    @property
    def col_width(self) -> int:
        """Width of a column index."""
        return bits_for(self.cols - 1)

    @property
    def cells(self) -> int:
        """Cells of one half-array, the depth of the write-verify target and result buffers."""
        return self.rows * self.cols

    @property
    def cell_index_width(self) -> int:
        return bits_for(self.cells - 1)

    @property
    def cell_window_bytes(self) -> int:
        """Bytes of the address window of one per-cell buffer (a power of two)."""
        return 4 * (1 << bits_for(self.cells - 1))

    @property
    def target_base(self) -> int:
        """Byte address of the write-verify target buffer."""
        return max(0x1000, self.cell_window_bytes)

    @property
    def result_base(self) -> int:
        """Byte address of the write-verify per-cell result buffer."""
        return self.target_base + self.cell_window_bytes

    @property
    def addr_width(self) -> int:
        """AXI4-Lite byte address width in bits, enough for the per-cell buffers."""
        return bits_for(self.result_base + self.cell_window_bytes - 1)

    @property
    def amplitude_bits(self) -> int:
        return self.macro.programming.amplitude_bits

    @property
    def mask_words(self) -> int:
        """Number of 32-bit words of the output channel mask."""
        return math.ceil(self.lines / self.DATA_WIDTH)

    # Timing, in clock cycles. The analog bridge rounds analog delays up to whole
    # cycles, so the controller and the model-only backend see them on the same edge.

    def cycles_for(self, seconds: float) -> int:
        """Return the number of whole clock cycles that cover `seconds` (at least 1)."""
        period_s = self.clock_period_ps * 1e-12
        return max(1, math.ceil(round(seconds / period_s, 9)))

    @property
    def adc_latency_cycles(self) -> int:
        return self.cycles_for(self.macro.adc.conversion_time_s)

    @property
    def bias_ready_cycles(self) -> int:
        return self.cycles_for(self.macro.circuit.bias_settle_time_s)

    @property
    def clock_hz(self) -> float:
        return 1e12 / self.clock_period_ps

    # Reset values of the write-verify registers, from ProgrammingParams
    # through the model's programming helpers, so the model-only programming
    # API and the controller start from the same settings.

    @property
    def default_set_start_code(self) -> int:
        return write_verify_settings(self.macro).set_start

    @property
    def default_set_step_code(self) -> int:
        return write_verify_settings(self.macro).set_step

    @property
    def default_reset_start_code(self) -> int:
        return write_verify_settings(self.macro).reset_start

    @property
    def default_reset_step_code(self) -> int:
        return write_verify_settings(self.macro).reset_step

    @property
    def default_pulse_width_cycles(self) -> int:
        return self.cycles_for(self.macro.programming.pulse_width_s)

    @property
    def default_read_code(self) -> int:
        """DAC code of the verify read voltage."""
        return verify_read_code(self.macro)

    @property
    def default_verify_settle_cycles(self) -> int:
        """Settle cycles of a verify read (see `amc.model.programming.verify_settle_time_s`)."""
        return self.cycles_for(verify_settle_time_s(self.macro))


def params_to_dict(params: ControllerParams) -> dict:
    """Return `params` as plain dictionaries (JSON-serializable)."""
    from ..model.config import config_to_dict

    return {
        "macro": config_to_dict(params.macro),
        "clock_period_ps": params.clock_period_ps,
        "counter_width": params.counter_width,
        "default_settle_cycles": params.default_settle_cycles,
        "default_watchdog_cycles": params.default_watchdog_cycles,
    }


def params_from_dict(values: dict) -> ControllerParams:
    """Rebuild `ControllerParams` from `params_to_dict` output."""
    from ..model.config import config_from_dict

    values = dict(values)
    macro = config_from_dict(values.pop("macro"))
    return ControllerParams(macro=macro, **values)
