"""Write-verify regression (tb/regress_write_verify.py) on Icarus and Verilator, and backend agreement."""

from __future__ import annotations

import json

import numpy as np
import pytest

from amc.rtl.params import ControllerParams
from amc.tb.regress_write_verify import STATE_ENV, programmed_state_job

from .cocotb_launch import launch, run_in_process, simulator_params

MODULE = "amc.tb.regress_write_verify"
TESTS = [
    "converge_random_targets",
    "converge_real_cells",
    "stuck_cells_fail",
    "tolerance_edges/tolerance=0",
    "tolerance_edges/tolerance=2",
    "region_and_reprogram",
    "abort_mid_array",
]


@pytest.mark.parametrize("simulator", simulator_params())
@pytest.mark.parametrize("test_name", TESTS)
def test_write_verify(simulator, test_name, build_root):
    launch(simulator, ControllerParams(), MODULE, test_name, build_root)


@pytest.mark.cocotb
def test_backends_give_identical_programmed_states(build_root, tmp_path):
    """Model-only, Amaranth, Icarus and Verilator program the same conductances with the same pulses."""
    params = ControllerParams()
    states = {backend: run_in_process(backend, params, programmed_state_job) for backend in ("model", "amaranth")}
    for simulator in ("icarus", "verilator"):
        path = tmp_path / f"{simulator}.json"
        launch(simulator, params, MODULE, "program_matrix", build_root, extra_env={STATE_ENV: str(path)})
        states[simulator] = json.loads(path.read_text())
    reference = states["model"]
    assert sum(map(np.sum, reference["pulses"])) > 0, "write-verify applied no pulse"
    for backend in ("amaranth", "icarus", "verilator"):
        state = states[backend]
        for key in ("pulses", "failed", "cycles", "codes"):
            assert state[key] == reference[key], f"{backend}: {key} differs from the model-only backend"
        assert state["g_pos"] == reference["g_pos"], f"{backend}: programmed conductances differ"
        assert state["g_neg"] == reference["g_neg"], f"{backend}: programmed conductances differ"
