"""End-to-end regression (tb/regress_macro.py) on Icarus and Verilator, and backend agreement."""

from __future__ import annotations

import asyncio
import json

import pytest

from amc.model.macro import AnalogMacro
from amc.rtl.params import ControllerParams
from amc.tb.amaranth_backend import run_amaranth
from amc.tb.controller_model import ControllerModel
from amc.tb.driver import AmcDriver
from amc.tb.regress_macro import CODES_ENV, cross_backend_job

from .cocotb_launch import launch, simulator_params

MODULE = "amc.tb.regress_macro"
TESTS = ["mvm_random", "inv_random", "inv_ridge_regression", "early_sampling", "adc_clipping"]


@pytest.mark.parametrize("simulator", simulator_params())
@pytest.mark.parametrize("test_name", TESTS)
def test_macro(simulator, test_name, build_root):
    launch(simulator, ControllerParams(), MODULE, test_name, build_root)


def _model_codes(params):
    macro = AnalogMacro(params.macro)

    async def main():
        driver = AmcDriver(ControllerModel(params, macro), params)
        await driver.connect()
        return await cross_backend_job(driver, macro, params.macro.seed)

    return asyncio.run(main())


def _amaranth_codes(params):
    macro = AnalogMacro(params.macro)
    run = run_amaranth(params, macro, lambda driver: cross_backend_job(driver, macro, params.macro.seed))
    return run.result


@pytest.mark.cocotb
@pytest.mark.parametrize("seed", [0, 5])
def test_backends_give_identical_codes(seed, build_root, tmp_path):
    """Model-only, Amaranth simulator, Icarus and Verilator read the same ADC codes for one seed."""
    params = ControllerParams(macro=ControllerParams().macro.replace(seed=seed))
    codes = {"model": _model_codes(params), "amaranth": _amaranth_codes(params)}
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
    first = _model_codes(ControllerParams())
    second = _model_codes(ControllerParams(macro=ControllerParams().macro.replace(seed=5)))
    assert first != second
