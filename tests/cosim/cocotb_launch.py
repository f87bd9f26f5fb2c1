"""Launch cocotb tests from pytest on Icarus and Verilator."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from amc.model.macro import AnalogMacro
from amc.rtl.params import ControllerParams
from amc.tb.amaranth_backend import run_amaranth
from amc.tb.controller_model import ControllerModel
from amc.tb.driver import AmcDriver
from amc.tb.cocotb_runner import build, run_test
from amc.tb.toolchain import SIMULATORS, SimulatorNotFound, prepare_simulator

_BUILDS: dict[tuple[str, str], Path] = {}


def simulator_params():
    """pytest parameters for both simulators, each in its own xdist group so one worker builds it."""
    return [pytest.param(sim, marks=[pytest.mark.cocotb, pytest.mark.xdist_group(sim)], id=sim)
            for sim in SIMULATORS]


def launch(simulator: str, params: ControllerParams, module: str, test_name: str, build_root: Path, *,
           extra_env: dict | None = None, folder_suffix: str = ""):
    """Build (once per simulator and parameter set) and run one cocotb test; fail on any failure."""
    try:
        prepare_simulator(simulator)
    except SimulatorNotFound as error:
        pytest.fail(f"{simulator} is required for the co-simulation regression: {error}")
    key = (simulator, repr(params))
    if key not in _BUILDS:
        _BUILDS[key] = build(simulator, params, build_root)
    folder = re.sub(r"[^A-Za-z0-9_.=-]+", "_", f"{module.rsplit('.', 1)[-1]}-{test_name}{folder_suffix}")
    run = run_test(simulator, params, module, test_name, build_root / "tests" / simulator / folder,
                   build_dir=_BUILDS[key], extra_env=extra_env)
    assert run.tests >= 1
    assert not run.failures, "\n".join(run.failures) + f"\nlog: {run.test_dir / 'sim.log'}"
    assert run.dump_path is not None and run.dump_path.stat().st_size > 0, "no FST waveform written"
    assert run.gtkw_path is not None
    return run


def run_in_process(backend: str, params: ControllerParams, job):
    """Run ``job(driver, macro, seed)`` on the model-only or the Amaranth backend and return its result.

    The cocotb modules export the same jobs, so the agreement tests compare
    these results with what Icarus and Verilator produce.
    """
    macro = AnalogMacro(params.macro)
    seed = params.macro.seed
    if backend == "amaranth":
        return run_amaranth(params, macro, lambda driver: job(driver, macro, seed)).result

    async def main():
        driver = AmcDriver(ControllerModel(params, macro), params)
        await driver.connect()
        return await job(driver, macro, seed)

    return asyncio.run(main())
