"""Measure the agreement of the circuit model with ngspice reference runs.

A reference case is a JSON file written next to its ngspice netlist. It
contains the circuit (conductances in microsiemens, op-amp gain, GBW and rails, input
voltages) and the ngspice results: the .op outputs ``spice.op_V``, a
transient from zero state ``spice.tran_time_s`` / ``spice.tran_V``, and the
1 % and 0.1 % settling times (or ``spice.t_first_rail_s`` for unstable
circuits). Run ``python -m amc.model.spice_agreement FOLDER`` to print one
table row per case.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .circuits import build_circuit
from .config import ArrayParams, CircuitParams, MacroConfig, NonIdealities, OpAmpParams
from .statespace import CircuitAnalysis
from .switch_matrix import SwitchState, mode_by_name
from .trajectory import simulate_saturating

__all__ = ["ReferenceCase", "load_reference_case", "measure_agreement", "main"]

MICROSIEMENS = 1e-6


@dataclass(frozen=True)
class ReferenceCase:
    """One ngspice reference circuit set up for the model."""

    name: str
    data: dict
    """The parsed JSON file."""

    config: MacroConfig
    """Op-amp, resistors and array size of the netlist, ideal devices."""

    state: SwitchState
    g_pos_S: np.ndarray
    g_neg_S: np.ndarray
    inputs_V: np.ndarray
    """Source voltages: V_in for INV cases, x for MVM cases, in volts."""

    def analysis(self) -> CircuitAnalysis:
        """Return the analysis of the case's circuit."""
        return CircuitAnalysis(build_circuit(self.state, self.g_pos_S, self.g_neg_S, self.config))


def load_reference_case(path: str | Path) -> ReferenceCase:
    """Read a reference JSON file and build the matching model set-up."""
    path = Path(path)
    with open(path) as handle:
        data = json.load(handle)
    n = int(data["N"])
    opamp = data["opamp"]
    config = MacroConfig(
        array=ArrayParams(rows=n, cols=n, g_min_S=1e-6, g_max_S=100e-6),
        opamp=OpAmpParams(open_loop_gain=opamp["A0"], gbw_Hz=opamp["GBW_Hz"], rail_V=opamp["rail_V"]),
        circuit=CircuitParams(
            g_in_S=data.get("G_in_uS", 100.0) * MICROSIEMENS,
            g_f_S=data.get("G_f_uS", 100.0) * MICROSIEMENS,
            g_inverter_S=data.get("G_inverter_uS", 100.0) * MICROSIEMENS,
        ),
        nonideal=NonIdealities.ideal(),
    )
    signed = data["kind"] == "INV_signed"
    if signed:
        g_pos = np.array(data["matrix_pos_uS"]) * MICROSIEMENS
        g_neg = np.array(data["matrix_neg_uS"]) * MICROSIEMENS
    else:
        g_pos = np.array(data["matrix_uS"]) * MICROSIEMENS
        g_neg = np.full_like(g_pos, config.array.g_min_S)
    enabled = np.ones(n, dtype=bool)
    state = SwitchState(mode=mode_by_name("MVM" if data["kind"] == "MVM" else "INV"), signed=signed, array=0,
                        row_enable=enabled, col_enable=enabled.copy())
    inputs = np.array(data["V_in_V"] if "V_in_V" in data else data["x_V"], dtype=float)
    return ReferenceCase(name=data.get("case", path.stem), data=data, config=config, state=state,
                         g_pos_S=g_pos, g_neg_S=g_neg, inputs_V=inputs)


def _relative(actual, expected) -> float:
    actual = np.asarray(actual, dtype=float)
    expected = np.asarray(expected, dtype=float)
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


def measure_agreement(case: ReferenceCase) -> dict[str, float | str | None]:
    """Return the model-versus-ngspice figures of one case.

    Keys: ``op`` (steady state vs .op, relative to max |.op|), ``wave``
    (linear response vs the transient, relative to max |v|; before the first
    rail for unstable cases), ``wave_saturating`` (saturating model vs the
    whole transient), ``settle_1pct`` and ``settle_0p1pct`` (ngspice settling
    time over the exact linear one), ``pole_1pct``, ``pole_0p1pct``,
    ``formula_1pct`` and ``formula_0p1pct`` (ngspice over the slowest-pole
    and eigenvalue-formula estimates),
    ``verdict`` (stable, or the failing stability rule). The reference sample
    at t = 0 is left out of the waveform figures because it is already
    nonzero in the reference files although the transient starts from zero.
    """
    analysis = case.analysis()
    n_out = analysis.circuit.n_outputs
    spice = case.data["spice"]
    x0 = np.zeros(analysis.circuit.n_states)
    figures: dict[str, float | str | None] = {}

    steady = analysis.steady_state(case.inputs_V)[:n_out]
    figures["op"] = _relative(steady, spice["op_V"])

    times = np.array(spice["tran_time_s"])
    expected = np.array(spice["tran_V"])
    keep = times > 0
    if spice.get("t_first_rail_s") is not None:
        keep &= times < spice["t_first_rail_s"]
    linear = analysis.response(times[keep], x0, case.inputs_V)[:, :n_out]
    figures["wave"] = _relative(linear, expected[keep])
    saturating = simulate_saturating(analysis, x0, case.inputs_V, times).output_V[:, :n_out]
    figures["wave_saturating"] = _relative(saturating[1:], expected[1:])

    reference = float(np.max(np.abs(spice["op_V"])))
    for eps, key in ((1e-2, "1pct"), (1e-3, "0p1pct")):
        measured = spice.get(f"settle_{key}_s")
        exact = analysis.settle_time(eps, x0, case.inputs_V, reference)
        figures[f"settle_{key}"] = None if measured is None or exact is None else measured / exact
    for eps, key in ((1e-2, "1pct"), (1e-3, "0p1pct")):
        estimates = analysis.settle_estimates(eps)
        measured = spice.get(f"settle_{key}_s")
        figures[f"pole_{key}"] = None if measured is None else measured / estimates.slowest_pole_s
        figures[f"formula_{key}"] = None if measured is None else measured / estimates.formula_s

    report = analysis.stability
    figures["verdict"] = "stable" if report.stable else f"unstable ({report.rule})"
    return figures


def _format(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:.2g}" if value < 0.1 else f"{value:.6f}"


def main(argv: list[str] | None = None) -> int:
    """Print the agreement table of every ``*.json`` case in a folder."""
    parser = argparse.ArgumentParser(prog="python -m amc.model.spice_agreement", description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="folder with the reference <case>.json files")
    arguments = parser.parse_args(argv)
    paths = sorted(arguments.folder.glob("*.json"))
    if not paths:
        print(f"error: no *.json reference cases found in {arguments.folder}", file=sys.stderr)
        return 2
    columns = ["op", "wave", "wave_saturating", "settle_1pct", "settle_0p1pct", "pole_1pct", "pole_0p1pct",
               "formula_1pct", "formula_0p1pct", "verdict"]
    print("| case | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for path in paths:
        case = load_reference_case(path)
        figures = measure_agreement(case)
        print(f"| {case.name} | " + " | ".join(_format(figures[c]) for c in columns) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
