"""Validation of an operation before the sequencer runs it.

The checks and their order match `InvalidReason`; the first failing check
gives the reason code, so the host can name the fault.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..model.switch_matrix import MODES, LineSet
from .interfaces import COUNT_FIELD_WIDTH, operation_layout
from .params import ControllerParams
from .regmap import InvalidReason

__all__ = ["OperationCheck"]


class OperationCheck(wiring.Component):
    """Combinational configuration check.

    Attributes
    ----------
    op : In(operation_layout)
        The operation to check.
    valid : Out(1)
        1 when every check passes.
    reason : Out(8)
        `InvalidReason` code of the first failing check, 0 when valid.
    """

    def __init__(self, params: ControllerParams):
        self._params = params
        super().__init__({
            "op": In(operation_layout(params)),
            "valid": Out(1),
            "reason": Out(8),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._params
        op = self.op

        known = Signal()
        engine = Signal()
        square = Signal()
        outputs = Signal(COUNT_FIELD_WIDTH)
        with m.Switch(op.mode):
            for entry in MODES:
                with m.Case(entry.code):
                    m.d.comb += [
                        known.eq(1),
                        engine.eq(int(not entry.host)),
                        square.eq(int(entry.square)),
                        outputs.eq(op.rows if entry.outputs is LineSet.ROWS else op.cols),
                    ]

        # A channel beyond the active outputs of the mode has no op-amp connected.
        beyond = Cat(Const(i, COUNT_FIELD_WIDTH) >= outputs for i in range(p.lines))

        checks = [
            (~known, InvalidReason.UNKNOWN_MODE),
            (engine, InvalidReason.ENGINE_MODE),
            (op.array >= p.n_arrays, InvalidReason.ARRAY_OUT_OF_RANGE),
            ((op.rows == 0) | (op.rows > p.rows), InvalidReason.ROWS_OUT_OF_RANGE),
            ((op.cols == 0) | (op.cols > p.cols), InvalidReason.COLS_OUT_OF_RANGE),
            (square & (op.rows != op.cols), InvalidReason.NOT_SQUARE),
            (op.out_mask == 0, InvalidReason.EMPTY_OUTPUT_MASK),
            ((op.out_mask & beyond) != 0, InvalidReason.MASK_BEYOND_OUTPUTS),
            (op.settle == 0, InvalidReason.ZERO_SETTLE),
            (op.watchdog == 0, InvalidReason.ZERO_WATCHDOG),
        ]
        m.d.comb += [self.valid.eq(1), self.reason.eq(InvalidReason.NONE)]
        # Later assignments win in Amaranth, so walk the checks backwards to
        # report the first failing one.
        for failed, reason in reversed(checks):
            with m.If(failed):
                m.d.comb += [self.valid.eq(0), self.reason.eq(int(reason))]
        return m
