"""Controller regression (tb/regress_controller.py) on Icarus and Verilator."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from amc.rtl.params import ControllerParams
from amc.tb.cocotb_runner import ZeroTestsError

from amc.tb.regress_controller import INVALID_CHANGES

from .cocotb_launch import launch, simulator_params

MODULE = "amc.tb.regress_controller"
TESTS = [
    "identification",
    "register_access/backpressure=False",
    "register_access/backpressure=True",
    "bad_address/backpressure=False",
    "bad_address/backpressure=True",
    *(f"invalid_config/reason={reason.name}" for reason in INVALID_CHANGES),
    "sequencer_timing/backpressure=False",
    "sequencer_timing/backpressure=True",
    "abort",
    "watchdog/fault=READY_NEVER",
    "watchdog/fault=ADC_HANG",
    "adc_clip",
]


@pytest.mark.parametrize("simulator", simulator_params())
@pytest.mark.parametrize("test_name", TESTS)
def test_controller(simulator, test_name, build_root):
    launch(simulator, ControllerParams(), MODULE, test_name, build_root)


@pytest.mark.parametrize("simulator", simulator_params())
def test_zero_tests_run_fails(simulator, build_root):
    """A test name that matches nothing must fail, not pass silently."""
    with pytest.raises(ZeroTestsError, match="ran no test named 'no_such_test'"):
        launch(simulator, ControllerParams(), MODULE, "no_such_test", build_root)


@pytest.mark.parametrize("simulator", simulator_params())
def test_wave_view_names_dumped_signals(simulator, build_root):
    """Every trace of the GTKWave save file exists in the FST dump, state filters included."""
    fst2vcd = shutil.which("fst2vcd")
    if fst2vcd is None:
        pytest.skip("fst2vcd (Debian package gtkwave) is not installed; `make setup` installs it")
    run = launch(simulator, ControllerParams(), MODULE, "identification", build_root)
    header = subprocess.run([fst2vcd, str(run.dump_path)], capture_output=True, text=True, check=True).stdout
    header = header.split("$enddefinitions", 1)[0]
    scopes = []
    dumped = set()
    for line in header.splitlines():
        words = line.split()
        if words[:2] == ["$scope", "module"]:
            scopes.append(words[2])
        elif words[:1] == ["$upscope"]:
            scopes.pop()
        elif words[:1] == ["$var"]:
            dumped.add(".".join(scopes + [words[4]]))
    traces = []
    for line in run.gtkw_path.read_text().splitlines():
        if line.startswith(("[", "@", "-", "*", "^")) or not line.strip():
            continue
        name = line.split("} ", 1)[-1]
        traces.append(re.sub(r"\[\d+:\d+\]$", "", name))
    assert len(traces) > 40
    missing = [name for name in traces if name not in dumped]
    assert not missing, f"save file names signals missing from the dump: {missing[:5]}"
    for state_filter in ("seq_state.filter", "wv_state.filter"):
        assert "IDLE" in (run.gtkw_path.parent / state_filter).read_text()
