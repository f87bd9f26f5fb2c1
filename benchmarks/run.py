"""Co-simulation benchmark: writes benchmarks/results/cosim.md and cosim.png.

Measures, in one run on this machine:

1. simulated cycles per wall second of a trivial 16-bit counter and of the
   controller (holding a long settle wait) on Icarus, Verilator and the
   Amaranth simulator;
2. wall time, simulated cycles and Python wake-ups of the analog bridge per
   INV solve for N = 8, 16, 32 on the model-only, Amaranth, Icarus and
   Verilator backends;
3. the model-only INV (`amc.model.solve.ProgrammedSolver`) against
   `numpy.linalg.solve` for N up to 64;
4. on-chip write-verify of a full 32x32 and 64x64 half-array on Verilator and
   Icarus: wall time, simulated cycles per second, pulses, wake-ups per pulse.

Targets: the controller at no less than half the counter's cycles per second
on each simulator; wake-ups that grow with N, not with cycles; model-only INV
within 10x of numpy.linalg.solve for N up to 64; O(1) wake-ups per pulse; a
64x64 array programmed in under 60 s on Verilator.

Run with ``make bench`` (or ``python -m benchmarks.run``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out
from amaranth.sim import Simulator
from threadpoolctl import threadpool_limits

from amc.model.config import ArrayParams, MacroConfig
from amc.model.macro import AnalogMacro
from amc.model.solve import ProgrammedSolver
from amc.rtl.params import ControllerParams
from amc.tb.amaranth_backend import run_amaranth
from amc.tb.bench_cocotb import CYCLES_ENV, RESULT_ENV, _diagonal_images
from amc.tb.cocotb_runner import build, build_verilog, run_test
from amc.tb.host import run_matrix_job
from amc.tb.jobs import make_job

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
SIMULATORS = ("icarus", "verilator")


class Counter(wiring.Component):
    """Trivial reference design: a free-running 16-bit counter."""

    def __init__(self):
        super().__init__({"count": Out(16)})

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.count.eq(self.count + 1)
        return m


def _progress(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def stable_matrix(n: int, seed: int) -> np.ndarray:
    """A signed, diagonally dominant n x n matrix (stable INV circuit)."""
    rng = np.random.default_rng(seed)
    matrix = rng.uniform(-0.4, 0.4, size=(n, n))
    matrix[np.diag_indices(n)] = np.abs(matrix).sum(axis=1) + rng.uniform(0.5, 1.0, size=n)
    return matrix


def measure_cocotb_speed(build_root: Path, cycles: int) -> dict:
    """Cycles per second of the counter and of the controller on both HDL simulators."""
    figures = {}
    counter_v = build_root / "counter" / "counter.v"
    counter_v.parent.mkdir(parents=True, exist_ok=True)
    counter_v.write_text(verilog.convert(Counter(), name="counter", emit_src=False))
    params = ControllerParams()
    for simulator in SIMULATORS:
        result_path = build_root / f"speed-{simulator}.json"
        counter_build = build_root / f"counter-{simulator}"
        build_verilog(simulator, counter_v, "counter", counter_build, waves=False,
                      public_ports=["clk", "rst", "count"])
        run_test(simulator, params, "amc.tb.bench_cocotb", "counter_speed", build_root / f"counter-run-{simulator}",
                 build_dir=counter_build, waves=False, toplevel="counter",
                 extra_env={RESULT_ENV: str(result_path), CYCLES_ENV: str(cycles)})
        counter = json.loads(result_path.read_text())
        controller_build = build(simulator, params, build_root, waves=False, worker="bench")
        run_test(simulator, params, "amc.tb.bench_cocotb", "controller_speed",
                 build_root / f"controller-run-{simulator}", build_dir=controller_build, waves=False,
                 extra_env={RESULT_ENV: str(result_path), CYCLES_ENV: str(cycles)})
        controller = json.loads(result_path.read_text())
        figures[simulator] = {
            "counter_cps": counter["cycles"] / counter["wall_s"],
            "controller_cps": controller["cycles"] / controller["wall_s"],
            "controller_wakeups": controller["wakeups"],
        }
        _progress(f"{simulator}: counter {figures[simulator]['counter_cps']:.0f} cycles/s, "
                  f"controller {figures[simulator]['controller_cps']:.0f} cycles/s")
    return figures


def measure_amaranth_speed(cycles: int) -> dict:
    """Cycles per second of the counter and of the controller in the Amaranth simulator."""
    period = 10e-9
    sim = Simulator(Counter())
    sim.add_clock(period)
    started = time.perf_counter()
    sim.run_until(cycles * period)
    counter_cps = cycles / (time.perf_counter() - started)

    params = ControllerParams()
    macro = AnalogMacro(params.macro)
    macro.program_backdoor(0, *_diagonal_images(params))
    timing = {}

    async def main(driver):
        request = driver.request("INV", array=0, rows=4, cols=4, inputs=[10, -10, 20, -20], signed=False,
                                 settle_cycles=cycles)
        first = driver.bus.now_cycles()
        started = time.perf_counter()
        await driver.run(request)
        timing["wall"] = time.perf_counter() - started
        timing["cycles"] = driver.bus.now_cycles() - first

    run = run_amaranth(params, macro, main)
    figures = {"counter_cps": counter_cps, "controller_cps": timing["cycles"] / timing["wall"],
               "controller_wakeups": run.wakeups}
    _progress(f"amaranth: counter {counter_cps:.0f} cycles/s, controller {figures['controller_cps']:.0f} cycles/s")
    return figures


def measure_solves(sizes, work_dir: Path, repeats: int) -> list[dict]:
    """Wall time, cycles and wake-ups per INV solve, per backend and size."""
    rows = []
    params = ControllerParams()
    rng = np.random.default_rng(1)
    for n in sizes:
        matrix = stable_matrix(n, seed=n)
        rhs = rng.uniform(-1, 1, size=n)
        # The backdoor programs the matrix so these figures time the solve;
        # write-verify programming has its own section.
        job = make_job("solve", matrix, rhs, programming="backdoor")
        for backend, simulator in (("model", None), ("amaranth", None), ("cosim", "icarus"),
                                   ("cosim", "verilator")):
            walls, inner = [], []
            report = None
            for repeat in range(repeats):
                started = time.perf_counter()
                report = run_matrix_job(job, params, backend=backend, simulator=simulator or "icarus",
                                        waves=False, work_dir=work_dir / f"{backend}-{simulator}-{n}-{repeat}")
                walls.append(time.perf_counter() - started)
                inner.append(report.result.get("wall_time_s", walls[-1]))
            label = backend if simulator is None else simulator
            reference = np.linalg.solve(matrix, rhs)
            error = float(np.linalg.norm(report.values - reference) / np.linalg.norm(reference))
            rows.append({
                "backend": label, "n": n, "wall_s": statistics.median(walls),
                "in_sim_s": statistics.median(inner), "sim_cycles": report.sim_cycles,
                "op_cycles": sum(report.result["op_cycles"]), "settle_cycles": report.result["settle_cycles"],
                "wakeups": report.wakeups, "bus_transactions": report.bus_transactions, "error": error,
                "codes": report.codes,
            })
            _progress(f"N={n:>2} {label:>9}: {rows[-1]['wall_s']:.3f} s, {report.sim_cycles} cycles, "
                      f"{report.wakeups} wake-ups, error {error:.3g}")
    return rows


MODEL_CASES = (
    ("ideal", "ideal", "step"),
    ("ideal, predict", "ideal", "predict"),
    ("no read noise, predict", "no read noise", "predict"),
    ("default, predict", "default", "predict"),
)
"""(label, device configuration, ranging policy) of the model-only timings."""


def measure_model_vs_numpy(sizes, repeats: int) -> list[dict]:
    """Time per solve of ProgrammedSolver (matrix programmed once) against numpy.linalg.solve.

    Single right-hand sides per call, then N right-hand sides in one call
    (per column), each against numpy on the same work.
    """
    rows = []
    for n in sizes:
        base = MacroConfig(array=ArrayParams(rows=max(64, n), cols=max(64, n)))
        configs = {"ideal": base.ideal(), "default": base,
                   "no read noise": base.replace(nonideal=_without_read_noise(base))}
        matrix = stable_matrix(n, seed=100 + n)
        rng = np.random.default_rng(n)
        vectors = [rng.uniform(-1, 1, size=n) for _ in range(repeats)]
        batch = rng.uniform(-1, 1, size=(n, n))
        row = {"n": n, "numpy_s": _per_call(lambda b: np.linalg.solve(matrix, b), vectors),
               "numpy_batch_s": _per_call(lambda B: np.linalg.solve(matrix, B), [batch] * 20) / n}
        for label, devices, ranging in MODEL_CASES:
            solver = ProgrammedSolver(matrix, configs[devices], ranging=ranging)
            solver.solve(vectors[0])
            row[label] = _per_call(solver.solve, vectors)
            row[label + ", batch"] = _per_call(solver.solve, [batch] * 5) / n
        rows.append(row)
        _progress(f"model vs numpy N={n}: numpy {row['numpy_s'] * 1e6:.1f} us, model ideal "
                  f"{row['ideal'] * 1e6:.0f} us (step), {row['ideal, predict'] * 1e6:.0f} us (predict)")
    return rows


def _per_call(function, arguments) -> float:
    """Return the mean wall time of `function` over `arguments`, in seconds."""
    started = time.perf_counter()
    for argument in arguments:
        function(argument)
    return (time.perf_counter() - started) / len(arguments)


def measure_write_verify(build_root: Path, sizes, simulators) -> list[dict]:
    """Write-verify of a full half-array per size and simulator (random 16-level targets)."""
    rows = []
    for size in sizes:
        params = ControllerParams(macro=MacroConfig(array=ArrayParams(rows=size, cols=size)))
        for simulator in simulators:
            result_path = build_root / f"wv-{simulator}-{size}.json"
            build_dir = build(simulator, params, build_root, waves=False, worker="bench")
            started = time.perf_counter()
            run_test(simulator, params, "amc.tb.bench_cocotb", "write_verify_speed",
                     build_root / f"wv-run-{simulator}-{size}", build_dir=build_dir, waves=False,
                     extra_env={RESULT_ENV: str(result_path)})
            total = time.perf_counter() - started
            figures = json.loads(result_path.read_text())
            figures.update({"size": size, "simulator": simulator, "total_s": total})
            rows.append(figures)
            _progress(f"write-verify {size}x{size} on {simulator}: {figures['wall_s']:.1f} s, "
                      f"{figures['pulses']} pulses, {figures['wakeups'] / max(figures['pulses'], 1):.1f} "
                      f"wake-ups per pulse, {figures['sim_cycles'] / figures['wall_s']:.0f} cycles/s")
    return rows


def _without_read_noise(config: MacroConfig):
    import dataclasses

    nonideal = config.nonideal
    return dataclasses.replace(nonideal, read_noise=dataclasses.replace(nonideal.read_noise, enabled=False))


def plot(speed: dict, solves: list[dict], model_rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    names = list(speed)
    x = np.arange(len(names))
    ax.bar(x - 0.2, [speed[k]["counter_cps"] for k in names], 0.4, label="trivial counter")
    ax.bar(x + 0.2, [speed[k]["controller_cps"] for k in names], 0.4, label="AMC controller")
    ax.set_xticks(x, names)
    ax.set_yscale("log")
    ax.set_ylabel("simulated cycles per wall second")
    ax.set_title("Simulator speed")
    ax.legend()

    ax = axes[1]
    for backend in dict.fromkeys(row["backend"] for row in solves):
        points = [(row["n"], row["in_sim_s"]) for row in solves if row["backend"] == backend]
        ax.plot(*zip(*points), marker="o", label=backend)
    ax.set_xlabel("N")
    ax.set_ylabel("wall time per INV solve [s]")
    ax.set_yscale("log")
    ax.set_title("Solve through the controller")
    ax.legend()

    ax = axes[2]
    sizes = [row["n"] for row in model_rows]
    for key in ("numpy_s", "ideal", "ideal, predict", "default, predict"):
        ax.plot(sizes, [row[key] * 1e6 for row in model_rows], marker="o",
                label="numpy.linalg.solve" if key == "numpy_s" else f"model ({key})")
    ax.set_xlabel("N")
    ax.set_ylabel("time per solve [us]")
    ax.set_yscale("log")
    ax.set_title("Model-only INV vs numpy")
    ax.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_page(speed, solves, model_rows, wv_rows, path: Path, elapsed: float) -> None:
    cpu = platform.processor() or platform.machine()
    lines = [
        "# Co-simulation benchmark",
        "",
        f"Written by `make bench` (benchmarks/run.py) on {time.strftime('%Y-%m-%d')}: {os.cpu_count()} CPU cores "
        f"({cpu}), Python {platform.python_version()}, {platform.system()}; the run took {elapsed:.0f} s. "
        "Figures from one run; repeat runs on a shared machine vary by about 10-20 %.",
        "",
        "![benchmark plots](cosim.png)",
        "",
        "## Simulated cycles per wall second",
        "",
        "The counter is a free-running 16-bit counter; the controller holds the settle wait of a long INV",
        "operation, so neither involves Python per cycle. Target: controller at least half the counter.",
        "",
        "| simulator | trivial counter | controller | ratio | target met |",
        "|---|---|---|---|---|",
    ]
    for name, row in speed.items():
        ratio = row["controller_cps"] / row["counter_cps"]
        lines.append(f"| {name} | {row['counter_cps']:,.0f} | {row['controller_cps']:,.0f} | {ratio:.2f} | "
                     f"{'yes' if ratio >= 0.5 else 'no'} |")
    lines += [
        "",
        "## INV solve through the controller",
        "",
        "Signed, diagonally dominant N x N matrix, default non-idealities, automatic settle time, one",
        "solve per run (load, start, read back; the matrix goes in through the programming backdoor so",
        "the figures time the solve alone). *In-simulation* is the wall time from reset to",
        "the last register read inside the simulator process; *total* adds the simulator start-up (process",
        "launch, and the Verilog generation check). Wake-ups count the analog bridge's Python callbacks.",
        "",
        "| N | backend | in-simulation [s] | total [s] | simulated cycles | op cycles | bridge wake-ups | "
        "bus transactions | relative error |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in solves:
        lines.append(f"| {row['n']} | {row['backend']} | {row['in_sim_s']:.3f} | {row['wall_s']:.3f} | "
                     f"{row['sim_cycles']} | {row['op_cycles']} | {row['wakeups']} | {row['bus_transactions']} | "
                     f"{row['error']:.3g} |")
    same = {}
    for row in solves:
        same.setdefault(row["n"], set()).add(tuple(row["codes"]))
    agree = all(len(codes) == 1 for codes in same.values())
    lines += [
        "",
        f"ADC codes identical on all four backends for every N: **{'yes' if agree else 'no'}**.",
        "",
        "Wake-ups per solve grow with N (DAC loads, ADC conversions) and not with the simulated cycles:",
        "the settle wait adds cycles but no wake-ups (see the controller row of the first table, which",
        "simulates a long settle wait with a handful of wake-ups).",
        "",
        "## Model-only INV against numpy.linalg.solve",
        "",
        "`ProgrammedSolver` maps and analyses the matrix once, then each solve quantizes b with the DAC,",
        "evaluates the transient at the sample times (with a proof that no output reaches a rail) and",
        "converts with the ADC. Time per solve after the first, one BLAS thread. *step* is the",
        "hardware-like auto-ranging (about three operations per INV solve); *predict* starts at the input",
        "scale the circuit's steady state calls for (one operation, an oracle no controller has). *Batch*",
        "passes N right-hand sides in one call and is compared per column with numpy.linalg.solve on the",
        "same N columns. Target: within 10x of numpy.linalg.solve for N up to 64.",
        "",
        "| N | numpy [us] | ideal, step [us] | ideal, predict [us] | ratio | no read noise, predict [us] | "
        "default, predict [us] | batch: numpy per column [us] | batch: ideal, predict per column [us] |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in model_rows:
        lines.append(
            f"| {row['n']} | {row['numpy_s'] * 1e6:.1f} | {row['ideal'] * 1e6:.0f} | "
            f"{row['ideal, predict'] * 1e6:.0f} | {row['ideal, predict'] / row['numpy_s']:.1f} | "
            f"{row['no read noise, predict'] * 1e6:.0f} | {row['default, predict'] * 1e6:.0f} | "
            f"{row['numpy_batch_s'] * 1e6:.2f} | {row['ideal, predict, batch'] * 1e6:.1f} |")
    lines += [
        "",
        "With read noise on (the default devices), every operation draws new conductances and",
        "factorizes its own circuit, so it costs an O(N^3) analysis per solve. The remaining cost at",
        "small N is the fixed Python work per call (input checks, conversions, result record).",
        "",
        "## On-chip write-verify of a full half-array",
        "",
        "Random targets on the 16 levels of the default 1-100 uS window, default cell model and",
        "write-verify settings, default non-idealities. The wall time runs from the WV_CTRL start to",
        "the last result read inside the simulator; wake-ups count the analog bridge's Python callbacks",
        "(verify reads and pulses). Targets: O(1) wake-ups per pulse; 64x64 under 60 s on Verilator.",
        "",
        "| array | simulator | wall [s] | simulated cycles | cycles/s | pulses | failed cells | "
        "wake-ups per pulse | target met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in wv_rows:
        if row["simulator"] == "verilator" and row["size"] == 64:
            target = "yes" if row["wall_s"] < 60 else "no"
        else:
            target = "n/a"
        lines.append(
            f"| {row['size']}x{row['size']} | {row['simulator']} | {row['wall_s']:.1f} | {row['sim_cycles']:,} | "
            f"{row['sim_cycles'] / row['wall_s']:,.0f} | {row['pulses']:,} | {row['failed']} | "
            f"{row['wakeups'] / max(row['pulses'], 1):.2f} | {target} |")
    lines.append("")
    path.write_text("\n".join(lines))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=100_000, help="cycles of the speed runs (default 100000)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32], help="N of the solve runs")
    parser.add_argument("--model-sizes", type=int, nargs="+", default=[8, 16, 32, 64],
                        help="N of the model-versus-numpy runs")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per solve measurement (median)")
    parser.add_argument("--wv-sizes", type=int, nargs="*", default=[32, 64],
                        help="array sizes of the write-verify runs (default 32 64)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="results folder")
    args = parser.parse_args(argv)

    # One BLAS thread: the model's matrices are small, and on a 2-core machine
    # shared with the simulators extra BLAS threads only add contention.
    threadpool_limits(1)
    started = time.perf_counter()
    build_root = Path("build/bench").resolve()
    build_root.mkdir(parents=True, exist_ok=True)
    _progress("measuring simulator speed")
    speed = measure_cocotb_speed(build_root, args.cycles)
    speed["amaranth"] = measure_amaranth_speed(args.cycles // 4)
    _progress("measuring solves")
    solves = measure_solves(args.sizes, build_root / "solves", args.repeats)
    _progress("measuring the model against numpy")
    model_rows = measure_model_vs_numpy(args.model_sizes, repeats=200)
    _progress("measuring write-verify")
    wv_rows = measure_write_verify(build_root, args.wv_sizes, ("verilator", "icarus"))
    args.output.mkdir(parents=True, exist_ok=True)
    plot(speed, solves, model_rows, args.output / "cosim.png")
    elapsed = time.perf_counter() - started
    write_page(speed, solves, model_rows, wv_rows, args.output / "cosim.md", elapsed)
    (args.output / "cosim.json").write_text(json.dumps(
        {"speed": speed, "solves": [{k: v for k, v in row.items() if k != "codes"} for row in solves],
         "model_vs_numpy": model_rows, "write_verify": wv_rows}, indent=2))
    _progress(f"wrote {args.output / 'cosim.md'} and cosim.png in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
