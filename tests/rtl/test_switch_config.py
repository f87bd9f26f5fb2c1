"""Switch-matrix configuration unit: the word follows the mode table."""

from __future__ import annotations

import pytest

from amc.model.switch_matrix import MODES, Conn
from amc.rtl.params import ControllerParams
from amc.rtl.switch_config import SwitchConfig

from .sim_helpers import simulate

PARAMS = ControllerParams()


def _expected(entry, signed, array, rows, cols, cell_row, cell_col, half):
    conn = int(entry.conn) | (int(Conn.NEG_INVERTERS) if signed else 0)
    if entry.cell:
        conn |= int(Conn.HALF_NEG) if half else 0
        return conn, 1 << array, 1 << cell_row, 1 << cell_col
    return conn, 1 << array, (1 << rows) - 1, (1 << cols) - 1


@pytest.mark.parametrize("entry", MODES, ids=lambda e: e.name)
@pytest.mark.parametrize("signed", [False, True])
def test_switch_word_matches_mode_table(entry, signed):
    dut = SwitchConfig(PARAMS)
    cases = [(0, 1, 1, 0, 0, 0), (1, 5, 7, 3, 6, 1), (3, PARAMS.rows, PARAMS.cols, PARAMS.rows - 1, 0, 1),
             (2, 32, 17, 0, PARAMS.cols - 1, 0)]
    seen = []

    async def bench(ctx):
        for array, rows, cols, cell_row, cell_col, half in cases:
            ctx.set(dut.op.cell_row, cell_row)
            ctx.set(dut.op.cell_col, cell_col)
            ctx.set(dut.op.half, half)
            ctx.set(dut.op.mode, entry.code)
            ctx.set(dut.op.signed, int(signed))
            ctx.set(dut.op.array, array)
            ctx.set(dut.op.rows, rows)
            ctx.set(dut.op.cols, cols)
            ctx.set(dut.apply, 1)
            await ctx.tick()
            ctx.set(dut.apply, 0)
            seen.append((ctx.get(dut.sw.conn), ctx.get(dut.sw.array), ctx.get(dut.sw.row_en),
                         ctx.get(dut.sw.col_en), ctx.get(dut.known)))

    simulate(dut, bench)
    for case, got in zip(cases, seen):
        assert got[:4] == _expected(entry, signed, *case)
        assert got[4] == 1


def test_switch_clear_opens_everything():
    dut = SwitchConfig(PARAMS)
    seen = {}

    async def bench(ctx):
        ctx.set(dut.op.mode, 2)
        ctx.set(dut.op.rows, 8)
        ctx.set(dut.op.cols, 8)
        ctx.set(dut.apply, 1)
        await ctx.tick()
        seen["applied"] = ctx.get(dut.sw.conn)
        ctx.set(dut.clear, 1)
        await ctx.tick()
        seen["cleared"] = (ctx.get(dut.sw.conn), ctx.get(dut.sw.array), ctx.get(dut.sw.row_en),
                           ctx.get(dut.sw.col_en))

    simulate(dut, bench)
    assert seen["applied"] == int(MODES[2].conn)
    assert seen["cleared"] == (0, 0, 0, 0)


def test_switch_unknown_mode_flagged():
    dut = SwitchConfig(PARAMS)
    seen = []

    async def bench(ctx):
        for code in range(16):
            ctx.set(dut.op.mode, code)
            await ctx.delay(1e-9)
            seen.append(ctx.get(dut.known))

    simulate(dut, bench)
    known_codes = {entry.code for entry in MODES}
    assert seen == [int(code in known_codes) for code in range(16)]
