"""Run an Amaranth testbench on a component; shared by the controller block tests."""

from __future__ import annotations

from amaranth.sim import Simulator

CLOCK_PERIOD_S = 10e-9


def simulate(dut, *testbenches, processes=(), clock: bool = True) -> None:
    """Simulate `dut` until every testbench returns, with a 100 MHz clock unless `clock` is False."""
    sim = Simulator(dut)
    if clock:
        sim.add_clock(CLOCK_PERIOD_S, if_exists=True)
    for process in processes:
        sim.add_process(process)
    for bench in testbenches:
        sim.add_testbench(bench)
    sim.run()
