"""Typed parameters of the analog matrix computing (AMC) macro.

Every hardware knob is a field with a unit in its name or docstring, a default,
and the source of that default. Where no publication fixes a value, the default
is marked as an assumption. `MacroConfig` is the single source of sizes and
widths: the controller parameters in ``amc.rtl.params`` derive from it, and the
testbenches read them from there or from the controller's identification
registers.

Sources named below:

- [GRAMC] "General-purpose and reconfigurable analog matrix computing",
  arXiv:2501.01586 (DATE 2025): reconfigurable macro, 16 conductance levels.
- [PNAS19] Sun et al., "Solving matrix equations in one step with cross-point
  resistive arrays", PNAS 116(10):4123, 2019: INV circuit and its equations.
- [NatElec25] Zuo, Sun et al., "Precise and scalable analogue matrix equation
  solving using resistive random-access memory chips", Nature Electronics 2025:
  8 levels over 0.5-35 uS, low-resolution converters.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

__all__ = [
    "ConfigError",
    "ArrayParams",
    "OpAmpParams",
    "DacParams",
    "AdcParams",
    "CircuitParams",
    "ProgrammingError",
    "ReadNoise",
    "StuckCells",
    "NonIdealities",
    "CellParams",
    "ProgrammingParams",
    "MacroConfig",
    "config_to_dict",
    "config_from_dict",
]


class ConfigError(ValueError):
    """An invalid or ambiguous macro parameter."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _check_int(owner: str, name: str, value, minimum: int, fix: str) -> None:
    _require(
        isinstance(value, int) and not isinstance(value, bool),
        f"{owner}.{name} must be an integer, got {value!r} ({type(value).__name__})",
    )
    _require(value >= minimum, f"{owner}.{name} = {value} is invalid: {fix}")


def _check_positive(owner: str, name: str, value, unit: str) -> None:
    _require(
        isinstance(value, (int, float)) and not isinstance(value, bool),
        f"{owner}.{name} must be a number in {unit}, got {value!r}",
    )
    _require(
        value > 0 and value == value and value != float("inf"),
        f"{owner}.{name} = {value!r} {unit} is invalid: it must be a finite value above zero",
    )


@dataclass(frozen=True)
class ArrayParams:
    """Geometry and conductance window of the RRAM crossbar arrays.

    Each of the ``n_arrays`` arrays is a differential pair of ``rows x cols``
    1T1R cell arrays (a positive and a negative half), so a signed matrix
    occupies one array and the negative half is driven through inverting
    amplifiers. An unsigned matrix uses the positive half only.
    """

    rows: int = 32
    """Row lines per array. [GRAMC] built 128x128; 32 is an assumption that keeps
    gate-level simulation fast while covering the N = 8-32 problems of interest."""

    cols: int = 32
    """Column lines per array (assumption, as ``rows``)."""

    n_arrays: int = 4
    """Arrays in the macro. Four is the smallest count that holds the four block
    matrices of a one-stage BlockAMC solve (assumption)."""

    g_min_S: float = 1e-6
    """Lowest programmable cell conductance in siemens (assumption: the 1-100 uS
    window of the ngspice reference circuits; [NatElec25] reports 0.5-35 uS)."""

    g_max_S: float = 100e-6
    """Highest programmable cell conductance in siemens (assumption, see g_min_S)."""

    levels: int = 16
    """Number of distinct programmable conductance levels, equally spaced from
    g_min_S to g_max_S. [GRAMC] reports 16 levels (4 bits)."""

    def __post_init__(self) -> None:
        owner = "ArrayParams"
        _check_int(owner, "rows", self.rows, 1, "an array needs at least one row line")
        _check_int(owner, "cols", self.cols, 1, "an array needs at least one column line")
        _check_int(owner, "n_arrays", self.n_arrays, 1, "the macro needs at least one array")
        _check_positive(owner, "g_min_S", self.g_min_S, "S")
        _check_positive(owner, "g_max_S", self.g_max_S, "S")
        _require(
            self.g_min_S < self.g_max_S,
            f"ArrayParams.g_min_S = {self.g_min_S!r} S must be below g_max_S = {self.g_max_S!r} S; "
            "swap them or widen the conductance window",
        )
        _check_int(
            owner, "levels", self.levels, 2,
            "a cell needs at least 2 conductance levels (use 2 for binary cells)",
        )

    @property
    def level_step_S(self) -> float:
        """Conductance step between adjacent levels, in siemens."""
        return (self.g_max_S - self.g_min_S) / (self.levels - 1)

    @property
    def lines(self) -> int:
        """Number of op-amps, DACs and ADC channels: one per row or column line,
        whichever set is larger, so every mode can sense or drive every line."""
        return max(self.rows, self.cols)


@dataclass(frozen=True)
class OpAmpParams:
    """Single-pole operational amplifier used as TIA, solver or inverter."""

    open_loop_gain: float = 1e5
    """DC open-loop gain A0 (dimensionless). Assumption, equal to the ngspice
    reference circuits."""

    gbw_Hz: float = 10e6
    """Gain-bandwidth product in hertz (assumption, as the ngspice references)."""

    rail_V: float = 1.5
    """Output saturates at +/- rail_V volts (assumption, as the ngspice references)."""

    def __post_init__(self) -> None:
        _check_positive("OpAmpParams", "open_loop_gain", self.open_loop_gain, "(V/V)")
        _check_positive("OpAmpParams", "gbw_Hz", self.gbw_Hz, "Hz")
        _check_positive("OpAmpParams", "rail_V", self.rail_V, "V")

    @property
    def pole_rad_per_s(self) -> float:
        """Open-loop pole 2 pi GBW / A0, in rad/s."""
        return 2.0 * 3.141592653589793 * self.gbw_Hz / self.open_loop_gain


@dataclass(frozen=True)
class DacParams:
    """Input digital-to-analog converters, one per line, two's complement codes."""

    bits: int = 8
    """Resolution in bits. The source papers do not state it; 8 is an assumption
    in line with the low-resolution converters of [NatElec25]."""

    full_scale_V: float = 1.0
    """Output range is -full_scale_V .. +full_scale_V * (1 - 2^(1-bits)) volts (assumption)."""

    conversion_time_s: float = 10e-9
    """Settling time of a DAC output after a code change, in seconds (assumption)."""

    def __post_init__(self) -> None:
        _check_int("DacParams", "bits", self.bits, 2, "use at least 2 bits (a sign bit and one magnitude bit)")
        _require(self.bits <= 16, f"DacParams.bits = {self.bits} is invalid: at most 16 bits fit a register field")
        _check_positive("DacParams", "full_scale_V", self.full_scale_V, "V")
        _check_positive("DacParams", "conversion_time_s", self.conversion_time_s, "s")

    @property
    def lsb_V(self) -> float:
        """Voltage step of one code, in volts."""
        return self.full_scale_V / (1 << (self.bits - 1))

    @property
    def code_min(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def code_max(self) -> int:
        return (1 << (self.bits - 1)) - 1


@dataclass(frozen=True)
class AdcParams:
    """Output analog-to-digital converters behind a channel multiplexer."""

    bits: int = 8
    """Resolution in bits (assumption, as DacParams.bits)."""

    full_scale_V: float = 1.0
    """Input range -full_scale_V .. +full_scale_V volts; inputs beyond it clip and
    set the over-range flag (assumption)."""

    conversion_time_s: float = 100e-9
    """Time from the start strobe to a valid code, in seconds. The sample is taken
    at the start strobe (sample-and-hold). Assumption: 10 MS/s SAR converter."""

    def __post_init__(self) -> None:
        _check_int("AdcParams", "bits", self.bits, 2, "use at least 2 bits (a sign bit and one magnitude bit)")
        _require(self.bits <= 16, f"AdcParams.bits = {self.bits} is invalid: at most 16 bits fit a register field")
        _check_positive("AdcParams", "full_scale_V", self.full_scale_V, "V")
        _check_positive("AdcParams", "conversion_time_s", self.conversion_time_s, "s")

    @property
    def lsb_V(self) -> float:
        """Voltage step of one code, in volts."""
        return self.full_scale_V / (1 << (self.bits - 1))

    @property
    def code_min(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def code_max(self) -> int:
        return (1 << (self.bits - 1)) - 1


@dataclass(frozen=True)
class CircuitParams:
    """Fixed resistors of the switch matrix and the analog enable timing."""

    g_in_S: float = 100e-6
    """Input conductance from a DAC into a row line in INV mode, in siemens
    (assumption, as the ngspice references)."""

    g_f_S: float = 100e-6
    """TIA feedback conductance in MVM modes, in siemens (assumption, as the ngspice references)."""

    g_inverter_S: float = 100e-6
    """Input and feedback conductance of each unity-gain inverter, in siemens
    (assumption, as the ngspice references)."""

    bias_settle_time_s: float = 50e-9
    """Delay from the analog enable to the op-amp bias-ready signal, in seconds (assumption)."""

    def __post_init__(self) -> None:
        for name in ("g_in_S", "g_f_S", "g_inverter_S"):
            _check_positive("CircuitParams", name, getattr(self, name), "S")
        _check_positive("CircuitParams", "bias_settle_time_s", self.bias_settle_time_s, "s")


@dataclass(frozen=True)
class CellParams:
    """Response of a 1T1R RRAM cell to programming pulses.

    SET raises the conductance by an amount that grows with the gate
    (compliance) voltage above ``set_threshold_V``; RESET lowers it by an amount
    that grows with the source-line voltage above ``reset_threshold_V``. Both
    shrink near the window edge they move toward. `amc.model.rram_cell` gives
    the equations, including the pulse-width and saturation exponents.

    No source states these numbers for the reconfigurable macro, so every
    default is an assumption. The gains were chosen so that write-verify with
    the `ProgrammingParams` defaults reaches any of 16 levels over 1-100 uS
    (the level count of [GRAMC]) in a few to about 25 pulses. On 32 x 32
    arrays of random levels it needs 9.6 pulses per cell on average, and only
    stuck cells fail (docs/model.md gives the measurement).
    """

    set_threshold_V: float = 0.6
    """Gate voltage below which a SET pulse leaves the cell unchanged, in volts (assumption)."""

    set_gain_S_per_V: float = 40e-6
    """Conductance gained per SET pulse per volt of gate overdrive, for a cell at g_min and a pulse of
    ``reference_width_s``, in S/V (assumption). The first pulse of the default ramp (0.7 V, 0.1 V
    overdrive) adds 4 uS, about 5 verify codes, to a cell at g_min. With 25e-6 S/V write-verify
    needed about 12 pulses per cell on average and up to 26."""

    reset_threshold_V: float = 0.6
    """Source-line voltage below which a RESET pulse leaves the cell unchanged, in volts (assumption)."""

    reset_gain_S_per_V: float = 40e-6
    """Conductance lost per RESET pulse per volt of source-line overdrive, for a cell at g_max and a pulse
    of ``reference_width_s``, in S/V (assumption: symmetric with SET)."""

    reference_width_s: float = 100e-9
    """Pulse width at which the gains above apply, in seconds (assumption). Other widths scale each
    step by (width / reference_width_s)^0.5 (`amc.model.rram_cell.WIDTH_EXPONENT`)."""

    cycle_sigma_rel: float = 0.2
    """Cycle-to-cycle spread: relative standard deviation of each pulse's conductance change (assumption)."""

    device_sigma_rel: float = 0.1
    """Device-to-device spread: relative standard deviation of each cell's gains, drawn once (assumption)."""

    initial_fraction: float = 0.0
    """Conductance of a fresh cell as a fraction of the window above g_min (0: formed and reset to g_min).
    `AnalogMacro` starts every free cell there; `program_backdoor` overwrites it."""

    def __post_init__(self) -> None:
        for name in ("set_threshold_V", "set_gain_S_per_V", "reset_threshold_V", "reset_gain_S_per_V",
                     "reference_width_s"):
            _check_positive("CellParams", name, getattr(self, name), "(see its unit)")
        for name in ("cycle_sigma_rel", "device_sigma_rel"):
            value = getattr(self, name)
            _require(isinstance(value, (int, float)) and 0.0 <= value < 1.0,
                     f"CellParams.{name} = {value!r} is invalid: use a fraction in [0, 1)")
        _require(isinstance(self.initial_fraction, (int, float)) and 0.0 <= self.initial_fraction <= 1.0,
                 f"CellParams.initial_fraction = {self.initial_fraction!r} is invalid: use a fraction in [0, 1]")


@dataclass(frozen=True)
class ProgrammingParams:
    """Pulse drivers, verify read and the write-verify defaults.

    The pulse amplitude is a code of ``amplitude_bits`` bits; the gate driver
    (SET) and the source-line driver (RESET) turn it into volts with their LSB.
    A verify read drives the selected row with ``read_V`` through a DAC and
    senses the selected column with a TIA of feedback ``g_verify_S``, so the
    ADC reads ``-read_V * G / g_verify_S``.
    """

    amplitude_bits: int = 8
    """Resolution of the pulse amplitude code, in bits (assumption)."""

    gate_lsb_V: float = 0.01
    """Gate-driver voltage per amplitude code step, in volts (assumption: 0-2.55 V)."""

    source_line_lsb_V: float = 0.01
    """Source-line driver voltage per amplitude code step, in volts (assumption: 0-2.55 V)."""

    read_V: float = -0.2
    """Row voltage of a verify read, in volts; negative so the inverting TIA gives a positive output.
    0.2 V is a common non-disturbing RRAM read voltage (assumption)."""

    g_verify_S: float = 22e-6
    """Feedback conductance of the verify TIA, in siemens: g_max reads at about 0.9 of the ADC full
    scale with the defaults (assumption)."""

    set_start_V: float = 0.7
    """Gate voltage of the first SET pulse after a polarity change, in volts (assumption)."""

    set_step_V: float = 0.02
    """Gate-voltage increase per consecutive SET pulse, in volts (assumption)."""

    reset_start_V: float = 0.7
    """Source-line voltage of the first RESET pulse after a polarity change, in volts (assumption)."""

    reset_step_V: float = 0.02
    """Source-line voltage increase per consecutive RESET pulse, in volts (assumption)."""

    pulse_width_s: float = 100e-9
    """Width of every programming pulse, in seconds (assumption)."""

    tolerance_codes: int = 1
    """A cell passes when its verify code is within this many ADC codes of the target."""

    max_pulses: int = 40
    """Pulses after which a cell that has not passed is marked failed (assumption)."""

    def __post_init__(self) -> None:
        _check_int("ProgrammingParams", "amplitude_bits", self.amplitude_bits, 2, "use at least 2 bits")
        _require(self.amplitude_bits <= 12,
                 f"ProgrammingParams.amplitude_bits = {self.amplitude_bits} is invalid: at most 12 bits fit the register")
        for name in ("gate_lsb_V", "source_line_lsb_V", "g_verify_S", "set_start_V", "set_step_V",
                     "reset_start_V", "reset_step_V", "pulse_width_s"):
            _check_positive("ProgrammingParams", name, getattr(self, name), "(see its unit)")
        _require(isinstance(self.read_V, (int, float)) and self.read_V != 0 and abs(self.read_V) < 10,
                 f"ProgrammingParams.read_V = {self.read_V!r} is invalid: use a non-zero read voltage in volts")
        _check_int("ProgrammingParams", "tolerance_codes", self.tolerance_codes, 0, "use 0 or more ADC codes")
        _check_int("ProgrammingParams", "max_pulses", self.max_pulses, 1, "allow at least one pulse per cell")
        _require(self.max_pulses <= 255,
                 f"ProgrammingParams.max_pulses = {self.max_pulses} is invalid: at most 255 fit the register")
        top = (1 << self.amplitude_bits) - 1
        for name, lsb in (("set_start_V", self.gate_lsb_V), ("reset_start_V", self.source_line_lsb_V)):
            _require(getattr(self, name) / lsb <= top,
                     f"ProgrammingParams.{name} = {getattr(self, name)!r} V exceeds the driver range "
                     f"{top * lsb:.3g} V; lower it or raise the LSB")

    def amplitude_code(self, volts: float, lsb_V: float) -> int:
        """Return the nearest amplitude code for `volts`, clipped to the code range."""
        return int(min(max(round(volts / lsb_V), 0), (1 << self.amplitude_bits) - 1))


@dataclass(frozen=True)
class ProgrammingError:
    """Cell conductance error left after programming."""

    enabled: bool = True
    sigma_rel: float = 0.02
    """Standard deviation of the programmed conductance relative to the
    conductance window g_max - g_min (assumption: no source fixes it; 2 % of the
    window is about a third of one of 16 levels)."""

    def __post_init__(self) -> None:
        _require(isinstance(self.enabled, bool), f"ProgrammingError.enabled must be True or False, got {self.enabled!r}")
        _require(
            isinstance(self.sigma_rel, (int, float)) and 0.0 <= self.sigma_rel < 1.0,
            f"ProgrammingError.sigma_rel = {self.sigma_rel!r} is invalid: use a fraction in [0, 1), "
            "or enabled=False to switch the error off",
        )


@dataclass(frozen=True)
class ReadNoise:
    """Conductance fluctuation during each analog operation."""

    enabled: bool = True
    sigma_rel: float = 0.005
    """Standard deviation of each cell's conductance during one operation, relative
    to its programmed value, drawn anew at every analog enable (assumption)."""

    def __post_init__(self) -> None:
        _require(isinstance(self.enabled, bool), f"ReadNoise.enabled must be True or False, got {self.enabled!r}")
        _require(
            isinstance(self.sigma_rel, (int, float)) and 0.0 <= self.sigma_rel < 1.0,
            f"ReadNoise.sigma_rel = {self.sigma_rel!r} is invalid: use a fraction in [0, 1), "
            "or enabled=False to switch the noise off",
        )


@dataclass(frozen=True)
class StuckCells:
    """Cells that do not respond to programming."""

    enabled: bool = True
    fraction: float = 0.001
    """Probability that a cell is stuck (assumption)."""

    on_fraction: float = 0.5
    """Share of stuck cells stuck at g_max (the rest stick at g_min), assumption."""

    def __post_init__(self) -> None:
        _require(isinstance(self.enabled, bool), f"StuckCells.enabled must be True or False, got {self.enabled!r}")
        _require(
            isinstance(self.fraction, (int, float)) and 0.0 <= self.fraction <= 1.0,
            f"StuckCells.fraction = {self.fraction!r} is invalid: use a probability in [0, 1]",
        )
        _require(
            isinstance(self.on_fraction, (int, float)) and 0.0 <= self.on_fraction <= 1.0,
            f"StuckCells.on_fraction = {self.on_fraction!r} is invalid: use a probability in [0, 1]",
        )


@dataclass(frozen=True)
class NonIdealities:
    """Device non-idealities; each one is switchable and all draw from one seed."""

    programming: ProgrammingError = field(default_factory=ProgrammingError)
    read_noise: ReadNoise = field(default_factory=ReadNoise)
    stuck: StuckCells = field(default_factory=StuckCells)
    quantize_levels: bool = True
    """Round each target conductance to the nearest of ArrayParams.levels levels.
    False models an analog (continuous) cell, the ideal-device reference."""

    @classmethod
    def ideal(cls) -> "NonIdealities":
        """Return a set with every non-ideality switched off, including level quantization."""
        return cls(
            programming=ProgrammingError(enabled=False),
            read_noise=ReadNoise(enabled=False),
            stuck=StuckCells(enabled=False),
            quantize_levels=False,
        )

    def describe(self) -> str:
        """Return a one-line summary of what is switched on."""
        parts = []
        if self.quantize_levels:
            parts.append("level quantization")
        if self.programming.enabled and self.programming.sigma_rel > 0:
            parts.append(f"programming error {self.programming.sigma_rel:.3g} of window")
        if self.read_noise.enabled and self.read_noise.sigma_rel > 0:
            parts.append(f"read noise {self.read_noise.sigma_rel:.3g} relative")
        if self.stuck.enabled and self.stuck.fraction > 0:
            parts.append(f"stuck cells {self.stuck.fraction:.3g}")
        return ", ".join(parts) if parts else "none (ideal devices)"


@dataclass(frozen=True)
class MacroConfig:
    """Complete parameter set of one AMC macro and its random seed."""

    array: ArrayParams = field(default_factory=ArrayParams)
    opamp: OpAmpParams = field(default_factory=OpAmpParams)
    dac: DacParams = field(default_factory=DacParams)
    adc: AdcParams = field(default_factory=AdcParams)
    circuit: CircuitParams = field(default_factory=CircuitParams)
    nonideal: NonIdealities = field(default_factory=NonIdealities)
    cell: CellParams = field(default_factory=CellParams)
    programming: ProgrammingParams = field(default_factory=ProgrammingParams)
    seed: int = 0
    """Seed of every random source in the model (stuck-cell map, programming
    error, read noise). The same seed gives the same results."""

    def __post_init__(self) -> None:
        _check_int("MacroConfig", "seed", self.seed, 0, "use a non-negative integer seed")
        for name, kind in (
            ("array", ArrayParams), ("opamp", OpAmpParams), ("dac", DacParams),
            ("adc", AdcParams), ("circuit", CircuitParams), ("nonideal", NonIdealities),
            ("cell", CellParams), ("programming", ProgrammingParams),
        ):
            value = getattr(self, name)
            _require(
                isinstance(value, kind),
                f"MacroConfig.{name} must be a {kind.__name__}, got {type(value).__name__}",
            )

    def replace(self, **changes) -> "MacroConfig":
        """Return a copy with top-level fields replaced (dataclasses.replace)."""
        return dataclasses.replace(self, **changes)

    def ideal(self) -> "MacroConfig":
        """Return a copy with every device non-ideality switched off."""
        return self.replace(nonideal=NonIdealities.ideal())


def config_to_dict(config: MacroConfig) -> dict:
    """Return `config` as nested plain dictionaries (JSON-serializable)."""
    return dataclasses.asdict(config)


def config_from_dict(values: dict) -> MacroConfig:
    """Rebuild a `MacroConfig` from `config_to_dict` output; unknown keys raise ConfigError."""
    def build(kind, data):
        if not isinstance(data, dict):
            raise ConfigError(f"{kind.__name__} must be given as a mapping, got {type(data).__name__}")
        names = {item.name: item for item in dataclasses.fields(kind)}
        unknown = set(data) - set(names)
        if unknown:
            raise ConfigError(f"unknown {kind.__name__} field(s) {sorted(unknown)}; valid: {sorted(names)}")
        kwargs = {}
        for name, value in data.items():
            nested = _NESTED.get((kind, name))
            kwargs[name] = build(nested, value) if nested is not None else value
        return kind(**kwargs)

    return build(MacroConfig, values)


_NESTED = {
    (MacroConfig, "array"): ArrayParams,
    (MacroConfig, "opamp"): OpAmpParams,
    (MacroConfig, "dac"): DacParams,
    (MacroConfig, "adc"): AdcParams,
    (MacroConfig, "circuit"): CircuitParams,
    (MacroConfig, "nonideal"): NonIdealities,
    (MacroConfig, "cell"): CellParams,
    (MacroConfig, "programming"): ProgrammingParams,
    (NonIdealities, "programming"): ProgrammingError,
    (NonIdealities, "read_noise"): ReadNoise,
    (NonIdealities, "stuck"): StuckCells,
}
