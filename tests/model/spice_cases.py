"""Loading and setting up the ngspice reference cases for the analog model tests."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from amc.model.circuits import build_circuit
from amc.model.config import ArrayParams, CircuitParams, MacroConfig, NonIdealities, OpAmpParams
from amc.model.statespace import CircuitAnalysis
from amc.model.switch_matrix import SwitchState, mode_by_name

REPO_ROOT = Path(__file__).resolve().parents[2]
SPICE_DIR = Path(os.environ.get("AMC_SPICE_REFERENCE", REPO_ROOT.parent / "shared" / "reference" / "spice"))
"""ngspice reference runs (netlist and JSON result per case), kept beside the checkout.
The environment variable AMC_SPICE_REFERENCE points elsewhere."""

SPICE_CASES = sorted(path.stem for path in SPICE_DIR.glob("*.json")) if SPICE_DIR.is_dir() else []

MICROSIEMENS = 1e-6


def spice_params(cases=None):
    """Return pytest parameters for the reference cases, or one skipped parameter if they are missing."""
    names = SPICE_CASES if cases is None else [name for name in cases if name in SPICE_CASES]
    if names:
        return names
    reason = f"ngspice reference runs not found in {SPICE_DIR}; set AMC_SPICE_REFERENCE to their folder"
    return [pytest.param(None, marks=pytest.mark.skip(reason=reason))]


def load_case(name: str) -> dict:
    with open(SPICE_DIR / f"{name}.json") as handle:
        return json.load(handle)


def case_config(case: dict, **overrides) -> MacroConfig:
    """Return a MacroConfig with the reference circuit's op-amp, resistors and size, ideal devices."""
    n = case["N"]
    opamp = case["opamp"]
    return MacroConfig(
        array=ArrayParams(rows=n, cols=n, g_min_S=1e-6, g_max_S=100e-6),
        opamp=OpAmpParams(open_loop_gain=opamp["A0"], gbw_Hz=opamp["GBW_Hz"], rail_V=opamp["rail_V"]),
        circuit=CircuitParams(
            g_in_S=case.get("G_in_uS", 100.0) * MICROSIEMENS,
            g_f_S=case.get("G_f_uS", 100.0) * MICROSIEMENS,
            g_inverter_S=case.get("G_inverter_uS", 100.0) * MICROSIEMENS,
        ),
        nonideal=NonIdealities.ideal(),
        **overrides,
    )


def case_signed(case: dict) -> bool:
    return case["kind"] == "INV_signed"


def case_mode_name(case: dict) -> str:
    return "MVM" if case["kind"] == "MVM" else "INV"


def case_images(case: dict) -> tuple[np.ndarray, np.ndarray]:
    """Return the (positive, negative) conductance images in siemens; unsigned cases get g_min negatives."""
    if case_signed(case):
        return (np.array(case["matrix_pos_uS"]) * MICROSIEMENS, np.array(case["matrix_neg_uS"]) * MICROSIEMENS)
    positive = np.array(case["matrix_uS"]) * MICROSIEMENS
    return positive, np.full_like(positive, 1e-6)


def case_inputs(case: dict) -> np.ndarray:
    """Return the source voltages of the case (V_in for INV, x for MVM), in volts."""
    return np.array(case["V_in_V"] if "V_in_V" in case else case["x_V"], dtype=float)


def case_state(case: dict) -> SwitchState:
    n = case["N"]
    enabled = np.ones(n, dtype=bool)
    return SwitchState(mode=mode_by_name(case_mode_name(case)), signed=case_signed(case), array=0,
                       row_enable=enabled, col_enable=enabled.copy())


def case_analysis(case: dict) -> CircuitAnalysis:
    g_pos, g_neg = case_images(case)
    return CircuitAnalysis(build_circuit(case_state(case), g_pos, g_neg, case_config(case)))


def complex_pairs(pairs) -> np.ndarray:
    values = np.array(pairs, dtype=float)
    return values[:, 0] + 1j * values[:, 1]


def relative_error(actual, expected) -> float:
    """Return max|actual - expected| / max|expected|."""
    actual = np.asarray(actual, dtype=float)
    expected = np.asarray(expected, dtype=float)
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))
