"""Switch-matrix configuration unit.

Maps (mode, signed, array, active rows, active columns) to the registered
switch-control word. The connection flags of each mode come from the mode
table in `amc.model.switch_matrix`, so adding a mode there adds it here.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..model.switch_matrix import CONN_WIDTH, MODES, Conn
from .interfaces import COUNT_FIELD_WIDTH, SwitchSignature, operation_layout
from .params import ControllerParams

__all__ = ["SwitchConfig"]


class SwitchConfig(wiring.Component):
    """Switch-control word register.

    Parameters
    ----------
    params : ControllerParams
        Controller parameters; the word has ``rows + cols + n_arrays`` line and
        array bits plus the connection flags.

    Attributes
    ----------
    op : In(operation_layout)
        Operation whose switches to close.
    apply : In(1)
        Strobe: load the word for ``op`` on the next clock edge.
    clear : In(1)
        Strobe: open every switch on the next clock edge (wins over ``apply``).
    sw : Out(SwitchSignature)
        The registered switch-control word.
    known : Out(1)
        Combinational: ``op.mode`` is a code of the mode table.
    """

    def __init__(self, params: ControllerParams):
        self._params = params
        super().__init__({
            "op": In(operation_layout(params)),
            "apply": In(1),
            "clear": In(1),
            "sw": Out(SwitchSignature(params)),
            "known": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._params

        conn = Signal(CONN_WIDTH)
        cell = Signal()
        with m.Switch(self.op.mode):
            for entry in MODES:
                with m.Case(entry.code):
                    m.d.comb += [conn.eq(int(entry.conn)), cell.eq(int(entry.cell)), self.known.eq(1)]
            with m.Default():
                m.d.comb += [conn.eq(0), self.known.eq(0)]

        option_conn = (conn | Mux(self.op.signed, int(Conn.NEG_INVERTERS), 0)
                       | Mux(cell & self.op.half, int(Conn.HALF_NEG), 0))
        # One-hot array select. Line enables are one-hot on the selected cell in
        # single-cell modes, and thermometer-coded otherwise: line i is enabled
        # when i < the active count.
        array_onehot = Cat(self.op.array == k for k in range(p.n_arrays))
        row_en = Cat(Mux(cell, self.op.cell_row == i, Const(i, COUNT_FIELD_WIDTH) < self.op.rows)
                     for i in range(p.rows))
        col_en = Cat(Mux(cell, self.op.cell_col == i, Const(i, COUNT_FIELD_WIDTH) < self.op.cols)
                     for i in range(p.cols))

        with m.If(self.clear):
            m.d.sync += [
                self.sw.conn.eq(0),
                self.sw.array.eq(0),
                self.sw.row_en.eq(0),
                self.sw.col_en.eq(0),
            ]
        with m.Elif(self.apply):
            m.d.sync += [
                self.sw.conn.eq(option_conn),
                self.sw.array.eq(array_onehot),
                self.sw.row_en.eq(row_en),
                self.sw.col_en.eq(col_en),
            ]
        return m
