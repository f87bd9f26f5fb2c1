"""Hardware cost estimate of the K-FAC inversions: the AMC macro against a digital processor.

The estimator takes the inversion log of a training run (`InversionRecord`s:
factor order N, right-hand-side columns solved, analog passes per column,
settling information from the analog backend) and charges each inversion

- on the AMC macro: programming the new factor into the array, then one DAC
  update, the settling of the INV circuit and N ADC conversions per analog
  operation. Energy comes from the op-amps, converters, array read current
  and programming pulses. Digital work around the macro (residuals
  of iterative refinement, equilibration) is charged on the digital processor.
- on the digital processor: the floating-point operations of the same
  inversion (Cholesky factorization and inverse or triangular solves) at an
  effective throughput and power.

Every number is a field of `AMCCostParams`, `DigitalProcessorParams` or the
macro's `MacroConfig`, with its unit and source in the field metadata; the
printed report lists them all. docs/cost_model.md derives each formula.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Iterable

from ..model.config import MacroConfig
from .kfac import InversionRecord

__all__ = [
    "AMCCostParams",
    "DigitalProcessorParams",
    "CostEstimate",
    "REPORTED_RATIOS",
    "estimate_cost",
    "inversion_record",
    "digital_flops",
    "format_parameters",
    "format_estimate",
    "set_parameter",
]

REPORTED_RATIOS = {"throughput": 5.88, "energy_efficiency": 6.9}
"""Gains of the AMC second-order trainer over digital processors on a larger task,
reported by Zhang et al., arXiv:2512.05342 (abstract)."""


def _param(default, unit: str, source: str):
    return field(default=default, metadata={"unit": unit, "source": source})


@dataclass(frozen=True)
class AMCCostParams:
    """Per-component cost numbers of the AMC macro that `MacroConfig` does not hold."""

    opamp_power_W: float = _param(
        1e-3, "W",
        "assumption: static power of one op-amp with 10 MHz GBW driving a ~10 kOhm array load; "
        "about 1 mA at 1 V supply")
    dac_energy_J: float = _param(
        1e-12, "J per conversion",
        "assumption: one code update of an 8-bit DAC channel, including its output buffer")
    adc_fom_J: float = _param(
        10e-15, "J per conversion step",
        "Walden figure of merit; SAR ADCs at 1-10 MS/s reached 2-10 fJ per step in the ADC performance "
        "survey of B. Murmann as summarized by B. E. Jonsson (converterpassion.wordpress.com, 2012-2013); "
        "10 fJ is a conservative value")
    adc_count: int = _param(
        1, "converters",
        "controller interface of this project (docs/architecture.md): one ADC behind the channel multiplexer, "
        "so the N outputs of one solve are converted one after the other")
    cell_voltage_rms_V: float = _param(
        0.3, "V",
        "assumption: RMS voltage across a cell during an operation; the op-amp outputs span the 1 V "
        "converter full scale")
    program_pulses_per_cell: float = _param(
        10.0, "pulses",
        "used without write-verify statistics (back-door programming); assumption: mean SET/RESET pulses of "
        "an iterative write-verify to a target level, near the model's write-verify mean; Wan et al., "
        "'A compute-in-memory chip based on resistive random-access memory', Nature 608:504 (2022), "
        "Extended Data Fig. 3 shows the pulse-count distribution of such a scheme")
    program_verify_time_s: float = _param(
        110e-9, "s",
        "assumption: verify read after each pulse, one DAC update and one ADC conversion with the "
        "MacroConfig defaults (10 ns + 100 ns); the pulse itself is ProgrammingParams.pulse_width_s")
    program_pulse_energy_J: float = _param(
        20e-12, "J per pulse",
        "assumption: 2 V x 100 uA x 100 ns, a typical RRAM SET/RESET pulse")
    program_parallel_cells: int = _param(
        1, "cells",
        "assumption: cells programmed at the same time (1 is cell-by-cell write-verify; a row-parallel "
        "scheme would use the column count)")
    settle_relative_error: float | None = _param(
        None, "fraction",
        "relative settling error at which the ADC samples; None uses half an ADC LSB of full scale, "
        "2^-adc_bits")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.name == "settle_relative_error":
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not (value > 0) \
                    or not math.isfinite(value):
                raise ValueError(
                    f"AMCCostParams.{f.name} = {value!r} is invalid: use a finite number above zero "
                    f"(unit {f.metadata['unit']})"
                )
        if self.settle_relative_error is not None and self.settle_relative_error >= 1:
            raise ValueError(
                f"AMCCostParams.settle_relative_error = {self.settle_relative_error!r} is invalid: use a fraction "
                "below 1 or None"
            )


@dataclass(frozen=True)
class DigitalProcessorParams:
    """Digital processor that performs the same inversions."""

    peak_flops_per_s: float = _param(
        19.5e12, "FLOP/s",
        "NVIDIA A100 SXM4 FP64 Tensor Core peak (NVIDIA A100 datasheet, as listed by the Paderborn PC2 "
        "documentation page 'NVIDIA A100 40GB with NVLINK')")
    power_W: float = _param(400.0, "W", "NVIDIA A100 SXM4 maximum thermal design power (same source)")
    utilization: float = _param(
        0.1, "fraction of peak",
        "assumption: achieved fraction of peak for dense factorizations of order 10-1000; small matrices "
        "reach a few percent to tens of percent of peak")
    call_overhead_s: float = _param(
        0.0, "s per inversion",
        "assumption: launch and synchronization time per inversion; 0 assumes inversions are batched")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            minimum_ok = value >= 0 if f.name == "call_overhead_s" else value > 0
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not minimum_ok \
                    or not math.isfinite(value):
                raise ValueError(
                    f"DigitalProcessorParams.{f.name} = {value!r} is invalid: use a finite number "
                    f"{'of 0 or more' if f.name == 'call_overhead_s' else 'above zero'} (unit {f.metadata['unit']})"
                )
        if self.utilization > 1:
            raise ValueError(f"DigitalProcessorParams.utilization = {self.utilization!r} is invalid: at most 1")


def set_parameter(params, assignment: str):
    """Return a copy of a parameter dataclass with one ``name=value`` assignment applied.

    Raises ValueError naming the field list when the name is unknown or the
    value is not a number.
    """
    name, sep, text = assignment.partition("=")
    name = name.strip()
    names = [f.name for f in dataclasses.fields(params)]
    if not sep or name not in names:
        raise ValueError(
            f"cost parameter {assignment!r} is invalid: use NAME=VALUE with NAME one of {', '.join(names)}"
        )
    kind = type(getattr(params, name))
    try:
        value = int(text) if kind is int else float(text)
    except ValueError:
        raise ValueError(f"cost parameter {name} = {text!r} is not a number") from None
    return dataclasses.replace(params, **{name: value})


def digital_flops(size: int, columns: int, mode: str) -> tuple[float, float]:
    """Floating-point operations of the digital equivalent of one inversion, as (setup, per-use).

    "inverse": Cholesky factorization (N^3/3) and inverse from the factor
    (2N^3/3), the LAPACK xPOTRF + xPOTRI pair; the inverse is the result, so
    all N^3 count as use and the setup is 0. "solve": the Cholesky
    factorization is the setup (N^3/3), reused by the two triangular solves
    per column (2 N^2 per column).
    """
    n = float(size)
    if mode == "inverse":
        return 0.0, n**3
    return n**3 / 3, 2 * n * n * columns


def inversion_record(record: InversionRecord, *, apply_mode: str) -> dict:
    """Return the fields of one record that the estimate uses (for tests and CSV)."""
    return {
        "size": record.size,
        "columns": record.columns_solved,
        "passes": record.passes,
        "mode": apply_mode,
        "lambda_min": record.info.get("lambda_min"),
        "settle_time_s": record.info.get("settle_time_s"),
        "differential": bool(record.info.get("differential", True)),
        "mean_conductance_S": record.info.get("mean_conductance_S"),
        "operations": record.info.get("operations"),
        "refined_columns": record.info.get("refined_columns"),
        "programming_pulses": record.info.get("programming_pulses"),
        "programming_time_s": record.info.get("programming_time_s"),
    }


@dataclass
class CostEstimate:
    """Totals over a set of inversions, in seconds and joules."""

    inversions: int
    columns: int
    amc_time_s: dict[str, float]
    """Time per component: "programming", "dac", "settling", "adc", "host digital"."""
    amc_energy_J: dict[str, float]
    """Energy per component: "programming", "op-amps", "dac", "adc", "array", "host digital"."""
    digital_time_s: float
    digital_energy_J: float
    digital_flops: float
    digital_setup_flops: float
    """Part of `digital_flops` that a kept factorization would save (solve mode: the Cholesky factorizations)."""
    digital_power_W: float
    digital_rate_flops_per_s: float
    settle_time_range_s: tuple[float, float]
    sizes: dict[int, int]
    """Number of inversions per factor order."""

    @property
    def amc_total_time_s(self) -> float:
        return sum(self.amc_time_s.values())

    @property
    def amc_total_energy_J(self) -> float:
        return sum(self.amc_energy_J.values())

    @property
    def throughput_ratio(self) -> float:
        """Digital time over AMC time for the same inversions (above 1: AMC faster)."""
        return self.digital_time_s / self.amc_total_time_s

    @property
    def energy_ratio(self) -> float:
        """Digital energy over AMC energy (above 1: AMC more efficient)."""
        return self.digital_energy_J / self.amc_total_energy_J

    def without_programming(self) -> "CostEstimate":
        """Return the estimate with the AMC programming left out and the digital side unchanged.

        This is the usual view of one-step analog inversion (programming
        free); it favours the macro, since the digital side still pays for
        every factorization.
        """
        time = dict(self.amc_time_s, programming=0.0)
        energy = dict(self.amc_energy_J, programming=0.0)
        return dataclasses.replace(self, amc_time_s=time, amc_energy_J=energy)

    def without_setup(self) -> "CostEstimate":
        """Return the estimate with both setups left out: AMC programming and digital factorization.

        In solve mode this compares solves on a kept factor on both sides.
        An explicit inverse has no reusable digital step, so there it equals
        `without_programming`.
        """
        warm = self.without_programming()
        saved = self.digital_setup_flops / self.digital_rate_flops_per_s
        digital_time = self.digital_time_s - saved
        return dataclasses.replace(warm, digital_time_s=digital_time, digital_energy_J=digital_time * self.digital_power_W,
                                   digital_flops=self.digital_flops - self.digital_setup_flops, digital_setup_flops=0.0)


def _settle_time(entry: dict, config: MacroConfig, eps: float) -> float:
    if entry["settle_time_s"] is not None:
        return float(entry["settle_time_s"])
    lam = entry["lambda_min"]
    if lam is None or lam <= 0:
        raise ValueError(
            f"inversion of order {entry['size']} has no settling time or positive lambda_min in its record; "
            "estimate the cost from the inversion log of an analog backend"
        )
    return math.log(1 / eps) / (2 * math.pi * config.opamp.gbw_Hz * lam)


def estimate_cost(
    records: Iterable[InversionRecord],
    config: MacroConfig,
    *,
    apply_mode: str = "inverse",
    amc: AMCCostParams = AMCCostParams(),
    digital: DigitalProcessorParams = DigitalProcessorParams(),
    refinement_host_flops: bool = True,
) -> CostEstimate:
    """Estimate the AMC and digital cost of the inversions in ``records``.

    Parameters
    ----------
    records : iterable of InversionRecord
        Inversion log of an analog K-FAC run (`KFAC.inversion_log`).
    config : MacroConfig
        Macro of the run: DAC/ADC timing and bits, op-amp GBW, conductance window.
    apply_mode : {"inverse", "solve"}
        How the optimizer used the factors (`KFAC.apply_mode`).
    refinement_host_flops : bool
        Charge the residual of each refinement pass (2 N^2 per column) and the
        equilibration (2 N^2 per factor) to the digital processor.
    """
    eps = amc.settle_relative_error or 2.0 ** (-config.adc.bits)
    digital_rate = digital.peak_flops_per_s * digital.utilization
    time = dict.fromkeys(("programming", "dac", "settling", "adc", "host digital"), 0.0)
    energy = dict.fromkeys(("programming", "op-amps", "dac", "adc", "array", "host digital"), 0.0)
    total_flops = setup_flops = 0.0
    inversions = columns_total = 0
    settle_min, settle_max = math.inf, 0.0
    sizes: dict[int, int] = {}
    adc_energy = amc.adc_fom_J * 2.0 ** config.adc.bits
    g_mean_default = (config.array.g_min_S + config.array.g_max_S) / 2

    for record in records:
        entry = inversion_record(record, apply_mode=apply_mode)
        n, columns, passes = entry["size"], entry["columns"], entry["passes"]
        inversions += 1
        columns_total += columns
        sizes[n] = sizes.get(n, 0) + 1
        halves = 2 if entry["differential"] else 1
        cells = halves * n * n

        if entry["programming_pulses"] is not None:
            # Write-verify in the model: its pulse count, and its time for cell-by-cell programming.
            pulses = entry["programming_pulses"]
            time["programming"] += entry["programming_time_s"] / amc.program_parallel_cells
        else:
            pulses = cells * amc.program_pulses_per_cell
            time["programming"] += pulses / amc.program_parallel_cells * (config.programming.pulse_width_s
                                                                          + amc.program_verify_time_s)
        energy["programming"] += pulses * amc.program_pulse_energy_J

        settle = _settle_time(entry, config, eps)
        settle_min, settle_max = min(settle_min, settle), max(settle_max, settle)
        # Analog operations as counted by the backend (auto-ranging repeats and
        # refinement passes included), else one per column and pass.
        operations = entry["operations"] if entry["operations"] is not None else columns * passes
        adc_time = math.ceil(n / amc.adc_count) * config.adc.conversion_time_s
        time["dac"] += operations * config.dac.conversion_time_s
        time["settling"] += operations * settle
        time["adc"] += operations * adc_time
        # Op-amps and array draw power from the DAC update until the last sample.
        active = operations * (config.dac.conversion_time_s + settle + adc_time)
        opamps = n * halves  # line op-amps, plus one inverter per line for a signed matrix
        energy["op-amps"] += opamps * amc.opamp_power_W * active
        energy["dac"] += operations * n * amc.dac_energy_J
        energy["adc"] += operations * n * adc_energy
        g_mean = entry["mean_conductance_S"] or g_mean_default
        energy["array"] += cells * g_mean * amc.cell_voltage_rms_V**2 * active

        if refinement_host_flops:
            # Equilibration (2 N^2) and one residual b - A x (2 N^2) per refined column.
            refined = entry["refined_columns"] if entry["refined_columns"] is not None else (passes - 1) * columns
            host = 2.0 * n * n + refined * 2.0 * n * n
            time["host digital"] += host / digital_rate
            energy["host digital"] += host / digital_rate * digital.power_W

        setup, use = digital_flops(n, columns, apply_mode)
        setup_flops += setup
        total_flops += setup + use

    if inversions == 0:
        raise ValueError("the inversion log is empty: train with a K-FAC optimizer on an analog backend first")
    digital_time = total_flops / digital_rate + inversions * digital.call_overhead_s
    return CostEstimate(
        inversions=inversions,
        columns=columns_total,
        amc_time_s=time,
        amc_energy_J=energy,
        digital_time_s=digital_time,
        digital_energy_J=digital_time * digital.power_W,
        digital_flops=total_flops,
        digital_setup_flops=setup_flops,
        digital_power_W=digital.power_W,
        digital_rate_flops_per_s=digital_rate,
        settle_time_range_s=(settle_min, settle_max),
        sizes=dict(sorted(sizes.items())),
    )


def format_parameters(amc: AMCCostParams, digital: DigitalProcessorParams, config: MacroConfig) -> str:
    """Return every parameter of the estimate with its value, unit and source, one per line."""
    lines = ["AMC macro (MacroConfig, sources in amc.model.config):"]
    macro_values = (
        ("dac.conversion_time_s", config.dac.conversion_time_s, "s"),
        ("adc.conversion_time_s", config.adc.conversion_time_s, "s"),
        ("adc.bits", config.adc.bits, "bits"),
        ("opamp.gbw_Hz", config.opamp.gbw_Hz, "Hz"),
        ("programming.pulse_width_s", config.programming.pulse_width_s, "s"),
        ("array.g_min_S .. g_max_S", f"{config.array.g_min_S:.3g} .. {config.array.g_max_S:.3g}", "S"),
        ("array.rows x cols", f"{config.array.rows} x {config.array.cols}", "cells"),
    )
    for name, value, unit in macro_values:
        lines.append(f"  {name:<28} {value!s:>12} {unit}")
    for title, params in (("AMC components (AMCCostParams):", amc),
                          ("Digital processor (DigitalProcessorParams):", digital)):
        lines.append(title)
        for f in dataclasses.fields(params):
            value = getattr(params, f.name)
            shown = "auto" if value is None else f"{value:.4g}"
            lines.append(f"  {f.name:<28} {shown:>12} {f.metadata['unit']:<22} {f.metadata['source']}")
    return "\n".join(lines)


def _si(value: float, unit: str) -> str:
    """Format a time or energy with an SI prefix, e.g. 3.2e-6 -> '3.2 us'."""
    if value == 0:
        return f"0 {unit}"
    for factor, prefix in ((1.0, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value / 1e-15:.3g} f{unit}"


def format_estimate(estimate: CostEstimate, amc: AMCCostParams, digital: DigitalProcessorParams,
                    config: MacroConfig) -> str:
    """Return the estimate, its breakdown, the ratios beside the reported ones, and all parameters."""
    lines = [
        f"Hardware cost of the {estimate.inversions} K-FAC inversions ({estimate.columns} right-hand-side columns; "
        "factor orders " + ", ".join(f"{n}x{n}: {count}" for n, count in estimate.sizes.items()) + ")",
        f"  settling time per solve {_si(estimate.settle_time_range_s[0], 's')} .. "
        f"{_si(estimate.settle_time_range_s[1], 's')}",
        "  AMC time:   " + ", ".join(f"{k} {_si(v, 's')}" for k, v in estimate.amc_time_s.items())
        + f"; total {_si(estimate.amc_total_time_s, 's')}",
        "  AMC energy: " + ", ".join(f"{k} {_si(v, 'J')}" for k, v in estimate.amc_energy_J.items())
        + f"; total {_si(estimate.amc_total_energy_J, 'J')}",
        f"  digital:    {estimate.digital_flops:.3g} FLOP, {_si(estimate.digital_time_s, 's')}, "
        f"{_si(estimate.digital_energy_J, 'J')}",
    ]
    reported_t, reported_e = REPORTED_RATIOS["throughput"], REPORTED_RATIOS["energy_efficiency"]
    free = estimate.without_programming()
    kept = estimate.without_setup()
    lines += [
        f"  throughput ratio (digital time / AMC time):   {estimate.throughput_ratio:.3g}x; "
        f"programming free: {free.throughput_ratio:.3g}x; both setups excluded: {kept.throughput_ratio:.3g}x; "
        f"reported {reported_t}x",
        f"  energy-efficiency ratio (digital / AMC energy): {estimate.energy_ratio:.3g}x; "
        f"programming free: {free.energy_ratio:.3g}x; both setups excluded: {kept.energy_ratio:.3g}x; "
        f"reported {reported_e}x",
        "  (programming free: AMC programming left out, digital side unchanged; both setups excluded: also the "
        "digital factorizations, which only solve mode can reuse)",
        "  (reported: Zhang et al., arXiv:2512.05342, on a larger task than this one)",
        format_parameters(amc, digital, config),
    ]
    return "\n".join(lines)
