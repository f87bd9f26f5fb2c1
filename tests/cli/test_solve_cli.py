"""``amc solve``: the default problem on every backend, and clear errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy.io import mmwrite


def _amc(*args, cwd):
    return subprocess.run([sys.executable, "-m", "amc", *args], capture_output=True, text=True, cwd=cwd)


def _value(stdout: str, label: str) -> str:
    for line in stdout.splitlines():
        if line.startswith(label):
            return line[len(label):].strip()
    raise AssertionError(f"no line {label!r} in:\n{stdout}")


@pytest.mark.parametrize("backend", ["model", "amaranth"])
def test_solve_default_ideal_within_converter_limit(backend, tmp_path):
    result = _amc("solve", "--backend", backend, "--ideal", "--output", "r.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    error = float(_value(result.stdout, "relative error").split()[0])
    limit = float(_value(result.stdout, "converters alone").split()[0])
    # With ideal devices the analog solve is as good as a digital solve with
    # the same DAC and ADC quantization, within a few ADC steps.
    assert error <= limit * 1.2 + 0.01
    payload = json.loads((tmp_path / "r.json").read_text())
    assert payload["relative_error"] == pytest.approx(error, rel=1e-3)
    assert len(payload["x"]) == 10


def test_solve_default_nonideal_reports_error(tmp_path):
    result = _amc("solve", "--backend", "model", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "programming error" in _value(result.stdout, "non-idealities")
    assert float(_value(result.stdout, "relative error").split()[0]) > 0


@pytest.mark.cocotb
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_solve_cosim_writes_waves(simulator, tmp_path):
    result = _amc("solve", "--simulator", simulator, "--ideal", "--work-dir", "w", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    wave = _value(result.stdout, "waveform")
    assert wave.endswith("dump.fst")
    assert (tmp_path / "w" / simulator / "dump.gtkw").exists()
    assert float(_value(result.stdout, "relative error").split()[0]) < 0.06


def _write(tmp_path, name, array):
    path = tmp_path / name
    if name.endswith(".npy"):
        np.save(path, array)
    else:
        mmwrite(str(path), array)
    return path


BAD_INPUTS = [
    ("nonsquare", lambda p: ["--matrix", _write(p, "a.npy", np.ones((3, 4)))], "not square"),
    ("mismatched", lambda p: ["--matrix", _write(p, "a.npy", np.eye(3) * 2),
                              "--rhs", _write(p, "b.npy", np.ones(4))], "b has 4 entries but A is 3 x 3"),
    ("nan", lambda p: ["--matrix", _write(p, "a.npy", np.array([[1.0, np.nan], [0.0, 1.0]]))], "nan"),
    ("inf", lambda p: ["--matrix", _write(p, "a.npy", np.array([[1.0, 0.0], [np.inf, 1.0]]))], "inf"),
    ("singular", lambda p: ["--matrix", _write(p, "a.npy", np.array([[1.0, 2.0], [2.0, 4.0]]))], "singular"),
    ("unstable", lambda p: ["--matrix", _write(p, "a.npy", np.array([[0.2, 1.0], [1.0, 0.2]]))], "unstable"),
    ("too large", lambda p: ["--matrix", _write(p, "a.npy", np.eye(40) * 2)], "block solving is not supported yet"),
    ("pickle", lambda p: ["--matrix", _write(p, "a.npy", np.array([{"a": 1}], dtype=object))], "needs pickle"),
    ("bad mtx", lambda p: ["--matrix", _bad_mtx(p)], "not valid Matrix Market"),
    ("missing", lambda p: ["--matrix", p / "none.npy"], "not found"),
    ("extension", lambda p: ["--matrix", _write(p, "a.npy", np.eye(2)).rename(p / "a.txt")], "use .mtx or .npy"),
    ("simulator", lambda p: ["--simulator", "xcelium"], "invalid choice: 'xcelium'"),
    ("levels", lambda p: ["--levels", "0"], "ArrayParams.levels = 0 is invalid"),
]


def _bad_mtx(tmp_path):
    path = tmp_path / "bad.mtx"
    path.write_text("%%MatrixMarket matrix array real general\n2 2\n1.0\n")
    return path


@pytest.mark.parametrize("make_args, message", [case[1:] for case in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_solve_rejects_bad_input(make_args, message, tmp_path):
    args = [str(a) for a in make_args(tmp_path)]
    result = _amc("solve", "--backend", "model", *args, "--output", "r.json", "--work-dir", "w", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message.lower() in result.stderr.lower()
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "r.json").exists()
    assert not (tmp_path / "w").exists()


def test_solve_unknown_backend_rejected(tmp_path):
    result = _amc("solve", "--backend", "spice", cwd=tmp_path)
    assert result.returncode == 2
    assert "invalid choice: 'spice'" in result.stderr


def test_solve_reads_matrix_market(tmp_path):
    matrix = np.array([[4.0, -1.0, 0.5], [-1.0, 3.0, 0.2], [0.5, 0.2, 2.0]])
    path = _write(tmp_path, "a.mtx", matrix)
    result = _amc("solve", "--backend", "model", "--ideal", "--matrix", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert float(_value(result.stdout, "relative error").split()[0]) < 0.05
