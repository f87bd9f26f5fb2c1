"""Controller regression (tb/regress_controller.py) on Icarus and Verilator."""

from __future__ import annotations

import pytest

from amc.rtl.params import ControllerParams

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
