"""One host API over the three backends: model only, Amaranth simulator, cocotb.

`run_matrix_job` programs a matrix and solves or multiplies through the
controller on the chosen backend and returns a `JobReport`. The same seed
gives the same ADC codes on every backend.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..model.config import MacroConfig
from ..model.macro import AnalogMacro
from ..rtl.params import ControllerParams
from .amaranth_backend import run_amaranth
from .cocotb_job import JOB_ENV, RESULT_ENV
from .cocotb_runner import build, default_build_root, run_test
from .controller_model import ControllerModel
from .driver import AmcDriver
from .jobs import make_job, run_job
from .toolchain import SIMULATORS, prepare_simulator

__all__ = ["BACKENDS", "JobReport", "run_matrix_job", "solve", "multiply"]

log = logging.getLogger(__name__)

BACKENDS = ("model", "amaranth", "cosim")
"""Backends: register-level model, Amaranth simulator, cocotb on an HDL simulator."""


@dataclass
class JobReport:
    """Result of one matrix job and how it ran."""

    backend: str
    simulator: str | None
    result: dict
    """Output of `amc.tb.jobs.run_job`: values, codes, settle cycles, runs."""
    sim_cycles: int
    """Simulated clock cycles from reset to the end (model backend: nominal bus and operation cycles)."""
    clock_period_ps: int
    wall_time_s: float
    wakeups: int
    """Python wake-ups of the analog bridge (0 for the model backend)."""
    bus_transactions: int
    wave_path: Path | None = None
    gtkw_path: Path | None = None
    extra: dict = field(default_factory=dict)

    @property
    def values(self) -> np.ndarray:
        """Solution (solve) or product (multiply) in problem units, decoded from the ADC codes."""
        return np.asarray(self.result["values"], dtype=float)

    @property
    def x(self) -> np.ndarray:
        """The same as `values`, under the name `amc.model.solve.AnalogResult` uses."""
        return self.values

    @property
    def codes(self) -> list[int]:
        return self.result["codes"]

    @property
    def sim_time_s(self) -> float:
        return self.sim_cycles * self.clock_period_ps * 1e-12


def run_matrix_job(job: dict, params: ControllerParams | None = None, *, backend: str = "model",
                   simulator: str = "icarus", waves: bool = False, work_dir: Path | None = None) -> JobReport:
    """Run a job (see `amc.tb.jobs.make_job`) on `backend` and return its report.

    Parameters
    ----------
    backend : {"model", "amaranth", "cosim"}
    simulator : {"icarus", "verilator"}
        HDL simulator of the cosim backend.
    waves : bool
        Write a waveform: FST (cosim) or VCD (amaranth), each with a GTKWave save file.
    work_dir : Path, optional
        Folder for waveforms and simulator files; a temporary folder by default.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    params = params if params is not None else ControllerParams()
    if backend == "cosim":
        if simulator not in SIMULATORS:
            raise ValueError(f"unknown simulator {simulator!r}; choose one of: {', '.join(SIMULATORS)}")
        return _run_cosim(job, params, simulator, waves, work_dir)
    if backend == "amaranth":
        return _run_amaranth(job, params, waves, work_dir)
    return _run_model(job, params)


def _run_model(job: dict, params: ControllerParams) -> JobReport:
    macro = AnalogMacro(params.macro)
    bus = ControllerModel(params, macro)
    started = time.perf_counter()

    async def main():
        driver = AmcDriver(bus, params)
        await driver.connect()
        return await run_job(driver, macro, job)

    result = asyncio.run(main())
    return JobReport(backend="model", simulator=None, result=result, sim_cycles=bus.now_cycles(),
                     clock_period_ps=params.clock_period_ps, wall_time_s=time.perf_counter() - started,
                     wakeups=0, bus_transactions=bus.transactions)


def _run_amaranth(job: dict, params: ControllerParams, waves: bool, work_dir: Path | None) -> JobReport:
    macro = AnalogMacro(params.macro)
    vcd = None
    if waves:
        folder = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="amc-amaranth-"))
        vcd = folder / "amaranth.vcd"
    started = time.perf_counter()

    async def main(driver):
        return await run_job(driver, macro, job)

    run = run_amaranth(params, macro, main, vcd_path=vcd)
    return JobReport(backend="amaranth", simulator=None, result=run.result, sim_cycles=run.cycles,
                     clock_period_ps=params.clock_period_ps, wall_time_s=time.perf_counter() - started,
                     wakeups=run.wakeups, bus_transactions=run.bus_transactions, wave_path=vcd,
                     gtkw_path=vcd.with_suffix(".gtkw") if vcd is not None else None)


def _run_cosim(job: dict, params: ControllerParams, simulator: str, waves: bool, work_dir: Path | None) -> JobReport:
    prepare_simulator(simulator)
    folder = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="amc-cosim-"))
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    job_path = folder / "job.json"
    result_path = folder / "result.json"
    job_path.write_text(json.dumps(job))
    if result_path.exists():
        result_path.unlink()
    started = time.perf_counter()
    build_dir = build(simulator, params, default_build_root(), waves=waves)
    build_time = time.perf_counter() - started
    run = run_test(simulator, params, "amc.tb.cocotb_job", "matrix_job", folder / simulator,
                   build_dir=build_dir, waves=waves,
                   extra_env={JOB_ENV: str(job_path), RESULT_ENV: str(result_path)})
    if run.failures or not result_path.exists():
        raise RuntimeError(
            f"the co-simulation on {simulator} failed: {'; '.join(run.failures) or 'no result written'}; "
            f"see {run.test_dir / 'sim.log'}"
        )
    result = json.loads(result_path.read_text())
    return JobReport(
        backend="cosim", simulator=simulator, result=result, sim_cycles=result["sim_cycles"],
        clock_period_ps=params.clock_period_ps, wall_time_s=time.perf_counter() - started,
        wakeups=result["wakeups"], bus_transactions=result["bus_transactions"], wave_path=run.dump_path,
        gtkw_path=run.gtkw_path, extra={"build_time_s": build_time, "test_dir": str(run.test_dir)},
    )


def _controller_params(config: MacroConfig | ControllerParams | None) -> ControllerParams:
    if config is None:
        return ControllerParams()
    if isinstance(config, MacroConfig):
        return ControllerParams(macro=config)
    if isinstance(config, ControllerParams):
        return config
    raise TypeError(f"config must be a MacroConfig or ControllerParams, got {type(config).__name__}")


def solve(A, b, config: MacroConfig | ControllerParams | None = None, *, backend: str = "model",
          simulator: str = "icarus", waves: bool = False, settle_cycles: int | None = None,
          work_dir: Path | None = None, programming: str = "write-verify",
          differential: bool | None = None) -> JobReport:
    """Solve A x = b with the INV circuit through the controller on `backend`.

    The leading arguments match the model-only `amc.model.solve.solve(A, b,
    config)`; `config` may also be `ControllerParams` to set the clock and
    counters. `programming` is "write-verify" (the on-chip engine) or
    "backdoor" (target conductances set directly in the model); `differential`
    forces the signed (True) or unsigned (False) mapping, None chooses from
    the signs of A. The report's ``x`` is the solution.
    """
    job = make_job("solve", A, b, settle_cycles=settle_cycles, programming=programming, differential=differential)
    return run_matrix_job(job, _controller_params(config), backend=backend, simulator=simulator, waves=waves,
                          work_dir=work_dir)


def multiply(A, x, config: MacroConfig | ControllerParams | None = None, *, transpose: bool = False,
             backend: str = "model", simulator: str = "icarus", waves: bool = False,
             settle_cycles: int | None = None, work_dir: Path | None = None, programming: str = "write-verify",
             differential: bool | None = None) -> JobReport:
    """Compute A x (or A^T x) with the MVM circuit through the controller on `backend` (options as `solve`)."""
    job = make_job("multiply_t" if transpose else "multiply", A, x, settle_cycles=settle_cycles,
                   programming=programming, differential=differential)
    return run_matrix_job(job, _controller_params(config), backend=backend, simulator=simulator, waves=waves,
                          work_dir=work_dir)
