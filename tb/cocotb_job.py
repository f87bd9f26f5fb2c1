"""cocotb test that runs one matrix job: the co-simulation path of `amc.tb.host`.

The host writes the job as JSON and names it in ``AMC_JOB_PATH``; the test
writes its result to ``AMC_RESULT_PATH``.
"""

from __future__ import annotations

import json
import os
import time

import cocotb

from .cocotb_env import AmcTestbench
from .jobs import run_job

JOB_ENV = "AMC_JOB_PATH"
RESULT_ENV = "AMC_RESULT_PATH"


@cocotb.test()
async def matrix_job(dut):
    """Program a matrix and solve or multiply, as the job file describes."""
    with open(os.environ[JOB_ENV]) as handle:
        job = json.load(handle)
    tb = AmcTestbench(dut)
    started = time.perf_counter()
    driver = await tb.start()
    result = await run_job(driver, tb.macro, job)
    result["wall_time_s"] = time.perf_counter() - started
    result["sim_cycles"] = tb.bus.now_cycles()
    result["wakeups"] = tb.core.log.wakeups
    result["bus_transactions"] = tb.bus.transactions
    with open(os.environ[RESULT_ENV], "w") as handle:
        json.dump(result, handle)
