"""End-to-end regression (tb/regress_macro.py) on Icarus and Verilator, and backend agreement."""

from __future__ import annotations

import json

import pytest

from amc.rtl.params import ControllerParams
from amc.tb.regress_macro import CODES_ENV, cross_backend_job

from .cocotb_launch import launch, run_in_process, simulator_params

MODULE = "amc.tb.regress_macro"
TESTS = ["mvm_random", "mvm_real", "inv_random", "inv_ridge_regression", "early_sampling", "adc_clipping"]


@pytest.mark.parametrize("simulator", simulator_params())
@pytest.mark.parametrize("test_name", TESTS)
def test_macro(simulator, test_name, build_root):
    launch(simulator, ControllerParams(), MODULE, test_name, build_root)


@pytest.mark.cocotb
@pytest.mark.parametrize("seed", [0, 5])
def test_backends_give_identical_codes(seed, build_root, tmp_path):
    """Model-only, Amaranth simulator, Icarus and Verilator read the same ADC codes for one seed."""
    params = ControllerParams(macro=ControllerParams().macro.replace(seed=seed))
    codes = {backend: run_in_process(backend, params, cross_backend_job) for backend in ("model", "amaranth")}
    for simulator in ("icarus", "verilator"):
        path = tmp_path / f"{simulator}.json"
        launch(simulator, params, MODULE, "cross_backend_codes", build_root, extra_env={CODES_ENV: str(path)},
               folder_suffix=f"seed{seed}")
        codes[simulator] = json.loads(path.read_text())
    assert codes["model"], "the job produced no codes"
    for backend in ("amaranth", "icarus", "verilator"):
        assert codes[backend] == codes["model"], f"{backend} codes differ from the model-only backend"


def test_seeds_change_codes():
    """A different seed changes the non-ideal codes (so the agreement above is not trivial)."""
    first = run_in_process("model", ControllerParams(), cross_backend_job)
    second = run_in_process("model", ControllerParams(macro=ControllerParams().macro.replace(seed=5)),
                            cross_backend_job)
    assert first != second
