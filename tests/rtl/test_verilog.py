"""Verilog generation: deterministic, path-free, lint-clean, and the CLI's error handling."""

from __future__ import annotations

import subprocess
import sys

import pytest

from amc.model.config import ArrayParams, MacroConfig
from amc.model.switch_matrix import mode_table_markdown
from amc.rtl.params import ControllerParams
from amc.rtl.regmap import RegisterMap
from amc.rtl.verilog import convert, generate, lint
from amc.tb.toolchain import SimulatorNotFound, prepare_simulator

from ..conftest import REPO_ROOT

SMALL = ControllerParams(macro=MacroConfig(array=ArrayParams(rows=8, cols=6, n_arrays=2)))


def test_verilog_is_deterministic():
    assert convert(SMALL) == convert(SMALL)


def test_verilog_has_no_paths():
    text = convert(SMALL)
    assert str(REPO_ROOT) not in text
    assert "/home/" not in text and "/tmp/" not in text
    assert "src = " not in text


def test_verilog_ports_follow_parameters():
    text = convert(SMALL)
    assert "output [7:0] sw__row_en;" in text
    assert "output [5:0] sw__col_en;" in text
    assert "output [1:0] sw__array;" in text
    assert f"input [{SMALL.addr_width - 1}:0] axil__awaddr;" in text


@pytest.mark.parametrize("params", [ControllerParams(), SMALL], ids=["default", "small"])
def test_verilog_lint_clean(params, tmp_path):
    try:
        prepare_simulator("verilator")
    except SimulatorNotFound as error:
        pytest.skip(str(error))
    files = generate(params, tmp_path)
    result = lint(files.verilog)
    assert result.returncode == 0, result.stderr


def test_generate_writes_every_file(tmp_path):
    files = generate(SMALL, tmp_path)
    for path in files.all():
        assert path.exists()
        assert path.stat().st_size > 0
    assert files.mode_table.read_text() == mode_table_markdown()
    assert "IDLE" in files.state_filter.read_text()


def test_generate_keeps_unchanged_files(tmp_path):
    files = generate(SMALL, tmp_path)
    before = files.verilog.stat().st_mtime_ns
    generate(SMALL, tmp_path)
    assert files.verilog.stat().st_mtime_ns == before


def test_committed_docs_are_current():
    """docs/registers.md and docs/mode_table.md are generated; regenerate with `make docs`."""
    assert (REPO_ROOT / "docs" / "mode_table.md").read_text() == mode_table_markdown()
    assert (REPO_ROOT / "docs" / "registers.md").read_text() == RegisterMap(ControllerParams()).markdown()


def _amc(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "amc", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_verilog_writes_files(tmp_path):
    out = tmp_path / "v"
    result = _amc("verilog", "--rows", "8", "--cols", "8", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert (out / "amc_controller.v").exists()
    assert (out / "registers.md").exists()


@pytest.mark.parametrize("args, message", [
    (("--rows", "0"), "ArrayParams.rows = 0 is invalid"),
    (("--levels", "1"), "ArrayParams.levels = 1 is invalid"),
    (("--dac-bits", "0"), "DacParams.bits = 0 is invalid"),
    (("--g-min", "50", "--g-max", "10"), "must be below g_max_S"),
    (("--rows", "300", "--cols", "300"), "at most 256"),
])
def test_cli_verilog_rejects_bad_parameters(args, message, tmp_path):
    out = tmp_path / "v"
    result = _amc("verilog", *args, "-o", str(out))
    assert result.returncode == 2
    assert message in result.stderr
    assert not out.exists()
