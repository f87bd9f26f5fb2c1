"""Build the controller for Icarus or Verilator and run cocotb tests with cocotb's Python runner.

Each call of `run_test` runs one cocotb test in its own folder, with its own
results file, FST waveform and GTKWave save file. A run that executed zero
tests raises `ZeroTestsError`: cocotb's runner reports success for it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

from cocotb_tools.runner import VerilatorControlFile, get_runner

from ..rtl.controller import controller_signature
from ..rtl.params import ControllerParams, params_to_dict
from ..rtl.verilog import TOP_NAME, generate
from .cocotb_env import PARAMS_ENV
from .toolchain import prepare_simulator
from .waves import write_gtkw

__all__ = ["TIMESCALE", "CocotbRun", "ZeroTestsError", "build", "build_verilog", "run_test", "default_build_root"]

log = logging.getLogger(__name__)

TIMESCALE = ("1ns", "1ps")
"""Verilog timescale of the simulation; Amaranth output has none and Icarus needs one."""

VERILATOR_BUILD_ARGS = (
    # Warnings Verilator treats as fatal on Amaranth output (see amc.rtl.verilog.LINT_WAIVERS).
    "-Wno-WIDTH", "-Wno-CASEINCOMPLETE",
    # cocotb's runner passes --public-flat-rw, which keeps every internal
    # signal visible and made the controller simulate 2.4 times slower here.
    # The testbenches use only the top-level ports, which a control file
    # (`verilator_control_file`) makes public.
    "--no-public-flat-rw",
    "-O3", "--x-assign", "fast", "--x-initial", "fast",
)
"""Extra Verilator arguments of every build."""


def _runner(simulator: str):
    """Return cocotb's runner for `simulator`, logging only errors unless this module logs INFO."""
    runner = get_runner(simulator)
    # cocotb's runner sets its logger to INFO itself and reports a cached
    # build as a warning; follow this module's level instead.
    runner.log.setLevel(logging.INFO if log.isEnabledFor(logging.INFO) else logging.ERROR)
    return runner


class ZeroTestsError(RuntimeError):
    """A cocotb run executed no test."""


@dataclass
class CocotbRun:
    """Outcome of one cocotb test run."""

    simulator: str
    test_name: str
    test_dir: Path
    results_xml: Path
    tests: int
    failures: list[str] = field(default_factory=list)
    dump_path: Path | None = None
    gtkw_path: Path | None = None

    @property
    def passed(self) -> bool:
        return self.tests > 0 and not self.failures


def default_build_root() -> Path:
    """Return the build folder: $AMC_BUILD_DIR, or build/ in the current folder."""
    return Path(os.environ.get("AMC_BUILD_DIR", "build")).resolve()


def _params_key(params: ControllerParams) -> str:
    text = json.dumps(params_to_dict(params), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def build(simulator: str, params: ControllerParams, build_root: Path | None = None, *,
          waves: bool = True, worker: str | None = None) -> Path:
    """Generate the Verilog and build the simulation model; return the build folder.

    Builds are cached per simulator, parameter set, wave setting and pytest-xdist
    worker, and are skipped when the Verilog did not change.
    """
    prepare_simulator(simulator)
    root = Path(build_root) if build_root is not None else default_build_root()
    worker = worker or os.environ.get("PYTEST_XDIST_WORKER", "main")
    key = _params_key(params)
    files = generate(params, root / f"rtl-{key}")
    build_dir = root / f"sim-{simulator}-{key}-{'waves' if waves else 'nowaves'}-{worker}"
    ports = ["clk", "rst", *("__".join(str(part) for part in path)
                             for path, member in controller_signature(params).members.flatten() if member.is_port)]
    build_verilog(simulator, files.verilog, TOP_NAME, build_dir, waves=waves, public_ports=ports)
    return build_dir


def verilator_control_file(path: Path, toplevel: str, ports) -> Path:
    """Write a Verilator control file that makes the ports of `toplevel` public for VPI access."""
    lines = ["`verilator_config\n"]
    lines += [f'public_flat_rw -module "{toplevel}" -var "{port}"\n' for port in ports]
    text = "".join(lines)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def build_verilog(simulator: str, verilog: Path, toplevel: str, build_dir: Path, *, waves: bool = True,
                  public_ports=None) -> None:
    """Build one Verilog file for `simulator` into `build_dir` with the project's flags.

    Verilator models make `public_ports` of the top module visible to cocotb,
    or all of its ports and signals (``--public-depth 1``) when None.
    """
    prepare_simulator(simulator)
    sources = [verilog]
    build_args = list(VERILATOR_BUILD_ARGS) if simulator == "verilator" else []
    if simulator == "verilator":
        if public_ports is None:
            build_args += ["--public-depth", "1"]
        else:
            control = verilator_control_file(Path(verilog).with_name(f"{toplevel}.public.vlt"), toplevel,
                                             public_ports)
            sources.insert(0, VerilatorControlFile(control))
        if waves:
            build_args.append("--trace-fst")
    runner = _runner(simulator)
    runner.build(
        sources=sources,
        hdl_toplevel=toplevel,
        build_dir=build_dir,
        build_args=build_args,
        timescale=TIMESCALE,
        waves=waves,
        log_file=Path(build_dir) / "build.log",
    )


def run_test(simulator: str, params: ControllerParams, test_module: str, test_name: str, test_dir: Path, *,
             build_dir: Path | None = None, waves: bool = True, extra_env: dict | None = None,
             seed: int = 0, toplevel: str = TOP_NAME) -> CocotbRun:
    """Run cocotb test `test_name` of module `test_module` in `test_dir`.

    Raises
    ------
    ZeroTestsError
        The run executed no test (wrong name or an import error in the module).
    """
    if build_dir is None:
        build_dir = build(simulator, params, waves=waves)
    test_dir = Path(test_dir).resolve()
    test_dir.mkdir(parents=True, exist_ok=True)
    results_xml = test_dir / "results.xml"
    if results_xml.exists():
        results_xml.unlink()
    dump_path = test_dir / "dump.fst"
    plusargs = [f"+dumpfile_path={dump_path}"] if simulator == "icarus" and waves else []
    env = {PARAMS_ENV: json.dumps(params_to_dict(params))}
    env.update(extra_env or {})
    runner = _runner(simulator)
    try:
        runner.test(
            test_module=test_module,
            hdl_toplevel=toplevel,
            hdl_toplevel_lang="verilog",
            test_filter=rf"\.{re.escape(test_name)}(/|$)",
            build_dir=build_dir,
            test_dir=test_dir,
            results_xml=str(results_xml),
            waves=waves,
            plusargs=plusargs,
            extra_env=env,
            timescale=TIMESCALE,
            seed=seed,
            log_file=test_dir / "sim.log",
        )
    except SystemExit:
        # The runner exits when a test failed or no results file was written;
        # the results file (or its absence) shows which.
        pass

    tests, failures, end_ns = _read_results(results_xml)
    run = CocotbRun(simulator=simulator, test_name=test_name, test_dir=test_dir, results_xml=results_xml,
                    tests=tests, failures=failures)
    if tests == 0:
        raise ZeroTestsError(
            f"cocotb ran no test named {test_name!r} from {test_module} on {simulator}; "
            f"see {test_dir / 'sim.log'}"
        )
    if waves and dump_path.exists() and toplevel == TOP_NAME:
        run.dump_path = dump_path
        run.gtkw_path = write_gtkw(test_dir / "dump.gtkw", dump_path, params, simulator,
                                   duration_ps=round(end_ns * 1000) if end_ns else None)
    return run


def _read_results(results_xml: Path) -> tuple[int, list[str], float]:
    """Return the test count, the failure messages and the last simulation time (ns) of a JUnit results file."""
    if not results_xml.exists():
        return 0, [], 0.0
    root = ElementTree.parse(results_xml).getroot()
    tests = 0
    failures = []
    end_ns = 0.0
    for case in root.iter("testcase"):
        tests += 1
        for failure in list(case.iter("failure")) + list(case.iter("error")):
            failures.append(f"{case.get('name')}: {failure.get('message', '')}")
        for prop in case.iter("property"):
            # cocotb records each test's end time in its sim_time_unit, "ns" here (TIMESCALE).
            if prop.get("name") == "sim_time_stop":
                end_ns = max(end_ns, float(prop.get("value")))
    return tests, failures, end_ns
