"""Operation check: RTL and the model-only backend reject the same configurations."""

from __future__ import annotations

import random

import pytest

from amc.rtl.op_check import OperationCheck
from amc.rtl.params import ControllerParams
from amc.rtl.regmap import InvalidReason
from amc.tb.controller_model import ControllerModel
from amc.tb.fake_macro import FakeMacro

from .sim_helpers import simulate

PARAMS = ControllerParams()
FULL = PARAMS.rows


def _op(mode=2, signed=0, array=0, rows=4, cols=4, settle=10, watchdog=100, mask=0xF):
    return dict(mode=mode, signed=signed, array=array, rows=rows, cols=cols, settle=settle,
                watchdog=watchdog, out_mask=mask)


CASES = [
    (_op(), InvalidReason.NONE),
    (_op(mode=0, rows=3, cols=5, mask=0b111), InvalidReason.NONE),
    (_op(mode=1, rows=3, cols=5, mask=0b11111), InvalidReason.NONE),
    (_op(mode=7), InvalidReason.UNKNOWN_MODE),
    (_op(mode=3), InvalidReason.ENGINE_MODE),
    (_op(mode=4, rows=0, mask=0), InvalidReason.ENGINE_MODE),
    (_op(mode=15), InvalidReason.UNKNOWN_MODE),
    (_op(array=PARAMS.n_arrays), InvalidReason.ARRAY_OUT_OF_RANGE),
    (_op(array=255), InvalidReason.ARRAY_OUT_OF_RANGE),
    (_op(rows=0, cols=0), InvalidReason.ROWS_OUT_OF_RANGE),
    (_op(rows=FULL + 1, cols=FULL + 1), InvalidReason.ROWS_OUT_OF_RANGE),
    (_op(mode=0, cols=0), InvalidReason.COLS_OUT_OF_RANGE),
    (_op(mode=0, cols=FULL + 1), InvalidReason.COLS_OUT_OF_RANGE),
    (_op(rows=4, cols=5), InvalidReason.NOT_SQUARE),
    (_op(mask=0), InvalidReason.EMPTY_OUTPUT_MASK),
    (_op(mask=0b10000), InvalidReason.MASK_BEYOND_OUTPUTS),
    (_op(mode=0, rows=3, cols=5, mask=0b1000), InvalidReason.MASK_BEYOND_OUTPUTS),
    (_op(settle=0), InvalidReason.ZERO_SETTLE),
    (_op(watchdog=0), InvalidReason.ZERO_WATCHDOG),
    (_op(mode=9, rows=0, mask=0), InvalidReason.UNKNOWN_MODE),
]


def _rtl_reasons(ops):
    dut = OperationCheck(PARAMS)
    reasons = []

    async def bench(ctx):
        for op in ops:
            for name, value in op.items():
                ctx.set(getattr(dut.op, name), value)
            await ctx.delay(1e-9)
            reasons.append((ctx.get(dut.valid), ctx.get(dut.reason)))

    simulate(dut, bench)
    return reasons


def _model_reason(op):
    model = ControllerModel(PARAMS, FakeMacro(PARAMS.macro))
    regs = model.regs
    model.write_now(regs["MODE"].offset, op["mode"] | op["signed"] << 8)
    model.write_now(regs["ARRAY"].offset, op["array"])
    model.write_now(regs["ROWS_ACTIVE"].offset, op["rows"])
    model.write_now(regs["COLS_ACTIVE"].offset, op["cols"])
    model.write_now(regs["SETTLE_CYCLES"].offset, op["settle"])
    model.write_now(regs["WATCHDOG_CYCLES"].offset, op["watchdog"])
    for k in range(PARAMS.mask_words):
        model.write_now(regs.mask_register(k).offset, op["out_mask"] >> (32 * k) & 0xFFFF_FFFF)
    return model._check()


@pytest.mark.parametrize("op, reason", CASES, ids=[f"{r.name}-{i}" for i, (_, r) in enumerate(CASES)])
def test_check_reason(op, reason):
    [(valid, code)] = _rtl_reasons([op])
    assert code == reason
    assert valid == (reason is InvalidReason.NONE)


def test_check_matches_model_on_random_ops():
    rng = random.Random(7)
    ops = []
    for _ in range(300):
        rows = rng.choice([0, 1, 2, 5, FULL, FULL + 1, 40])
        cols = rng.choice([0, 1, 3, rows, FULL, FULL + 3])
        ops.append(_op(
            mode=rng.choice([0, 1, 2, 2, 3, 12]), signed=rng.randint(0, 1),
            array=rng.choice([0, 1, PARAMS.n_arrays - 1, PARAMS.n_arrays, 200]),
            rows=rows, cols=cols, settle=rng.choice([0, 1, 500]), watchdog=rng.choice([0, 1, 4096]),
            mask=rng.choice([0, 1, 0b1010, (1 << 33) - 1 & ((1 << PARAMS.lines) - 1), rng.getrandbits(PARAMS.lines)]),
        ))
    rtl = _rtl_reasons(ops)
    for op, (_, code) in zip(ops, rtl):
        assert code == _model_reason(op), op
