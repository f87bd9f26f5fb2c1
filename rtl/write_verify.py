"""On-chip write-verify engine: programs a region of an array cell by cell.

For each cell of the region, in row-major order:

1. read the target code from the target buffer;
2. verify read: a VERIFY operation on the sequencer returns the cell's ADC code;
3. if the code is within ``tolerance`` of the target, the cell passes; if
   ``max_pulses`` pulses were applied, it fails;
4. otherwise apply one pulse through a PROGRAM operation: SET if the code is
   below the target, RESET if above. The first pulse after a change of
   polarity (or the first of a cell) uses the start amplitude; each further
   pulse of the same polarity adds the step amplitude, up to the largest code.
   Then go to 2;
5. record the pulse count and pass or fail in the result buffer.

The engine issues its operations on the sequencer's command stream, like the
register file does for host operations, so the analog side sees verify reads
and pulses as ordinary operations. `amc.model.write_verify` implements the
same algorithm for the model-only backend.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..model.switch_matrix import mode_by_name
from .interfaces import PULSE_WIDTH_BITS, operation_layout, result_layout
from .params import ControllerParams

__all__ = ["WvState", "WriteVerifyEngine", "wv_config_layout", "RESULT_ENTRY_BITS", "Polarity"]

RESULT_ENTRY_BITS = 10
"""Width of a result-buffer entry: pulse count in bits 7:0, pass in bit 8, fail in bit 9."""


class Polarity(enum.Enum, shape=2):
    NONE = 0
    SET = 1
    RESET = 2


class WvState(enum.Enum, shape=4):
    IDLE = 0
    CELL_BEGIN = 1
    TARGET = 2
    READ_ISSUE = 3
    READ_WAIT = 4
    DECIDE = 5
    PULSE_ISSUE = 6
    PULSE_WAIT = 7
    RECORD = 8
    NEXT = 9
    FINISH = 10


def wv_config_layout(params: ControllerParams) -> data.StructLayout:
    """Layout of the write-verify configuration registers."""
    return data.StructLayout({
        "array": unsigned(8),
        "half": unsigned(1),
        "row_first": unsigned(8),
        "row_last": unsigned(8),
        "col_first": unsigned(8),
        "col_last": unsigned(8),
        "set_start": unsigned(params.amplitude_bits),
        "set_step": unsigned(params.amplitude_bits),
        "reset_start": unsigned(params.amplitude_bits),
        "reset_step": unsigned(params.amplitude_bits),
        "width": unsigned(PULSE_WIDTH_BITS),
        "tolerance": unsigned(8),
        "max_pulses": unsigned(8),
        "read_code": unsigned(params.dac_bits),
        "settle": unsigned(params.counter_width),
        "watchdog": unsigned(params.counter_width),
    })


class WriteVerifyEngine(wiring.Component):
    """Write-verify state machine.

    Attributes
    ----------
    cfg : In(wv_config_layout)
        Configuration, stable while busy (the register file rejects writes then).
    start, abort : In(1)
        Strobes.
    busy : Out(1)
    done : Out(1)
        One-cycle strobe at the end of a run, finished or aborted.
    aborted, seq_fault : Out(1)
        Status of the last run: aborted by the host; stopped because a verify
        read timed out (the sequencer's error flags say which).
    cells_done, cells_failed, pulses, cycles : Out
        Counters of the current or last run.
    cmd : Out(stream.Signature(operation_layout))
    rsp : In(stream.Signature(result_layout, always_ready=True))
        Sequencer ports; the register file routes ``rsp`` here while busy.
    target_rd : read port on the target buffer (ADC codes).
    result_wr : write port on the result buffer.
    state : Out(WvState)
    """

    def __init__(self, params: ControllerParams):
        self._params = params
        p = params
        super().__init__({
            "cfg": In(wv_config_layout(p)),
            "start": In(1),
            "abort": In(1),
            "busy": Out(1),
            "done": Out(1),
            "aborted": Out(1),
            "seq_fault": Out(1),
            "cells_done": Out(p.cell_index_width + 1),
            "cells_failed": Out(p.cell_index_width + 1),
            "pulses": Out(32),
            "cycles": Out(32),
            "cmd": Out(stream.Signature(operation_layout(p))),
            "rsp": In(stream.Signature(result_layout(p), always_ready=True)),
            "target_rd": In(memory.ReadPort.Signature(addr_width=p.cell_index_width, shape=p.adc_bits)),
            "result_wr": In(memory.WritePort.Signature(addr_width=p.cell_index_width, shape=RESULT_ENTRY_BITS)),
            "state": Out(WvState),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._params
        S = WvState
        cfg = self.cfg
        state = self.state

        row = Signal(8)
        col = Signal(8)
        target = Signal(signed(p.adc_bits))
        code = Signal(signed(p.adc_bits))
        cell_pulses = Signal(8)
        last = Signal(Polarity)
        set_amp = Signal(p.amplitude_bits)
        reset_amp = Signal(p.amplitude_bits)
        polarity = Signal()
        amplitude = Signal(p.amplitude_bits)
        passed = Signal()
        abort_pending = Signal()
        amp_max = (1 << p.amplitude_bits) - 1

        index = Signal(p.cell_index_width)
        m.d.comb += [
            index.eq(row * p.cols + col),
            self.busy.eq(state != S.IDLE),
            self.target_rd.en.eq(1),
            self.target_rd.addr.eq(index),
            self.result_wr.addr.eq(index),
        ]

        with m.If(self.busy):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        with m.If(self.abort & self.busy):
            m.d.sync += abort_pending.eq(1)

        # Operation issued on the command stream: a verify read or a pulse of
        # the current cell.
        op = self.cmd.payload
        verify = mode_by_name("VERIFY").code
        program = mode_by_name("PROGRAM").code
        m.d.comb += [
            op.mode.eq(Mux(state == S.PULSE_ISSUE, program, verify)),
            op.array.eq(cfg.array),
            op.half.eq(cfg.half),
            op.rows.eq(1),
            op.cols.eq(1),
            op.out_mask.eq(1),
            op.cell_row.eq(row),
            op.cell_col.eq(col),
            op.dac_code.eq(cfg.read_code),
            op.settle.eq(cfg.settle),
            op.watchdog.eq(cfg.watchdog),
            op.polarity.eq(polarity),
            op.amplitude.eq(amplitude),
            op.width.eq(cfg.width),
            self.cmd.valid.eq(((state == S.READ_ISSUE) | (state == S.PULSE_ISSUE)) & ~abort_pending),
        ]

        # Next amplitudes: restart after a polarity change, step otherwise.
        set_next = Signal(p.amplitude_bits)
        reset_next = Signal(p.amplitude_bits)
        set_sum = set_amp + cfg.set_step
        reset_sum = reset_amp + cfg.reset_step
        m.d.comb += [
            set_next.eq(Mux(last == Polarity.SET, Mux(set_sum > amp_max, amp_max, set_sum), cfg.set_start)),
            reset_next.eq(Mux(last == Polarity.RESET, Mux(reset_sum > amp_max, amp_max, reset_sum),
                              cfg.reset_start)),
        ]
        difference = Signal(signed(p.adc_bits + 2))
        m.d.comb += difference.eq(code - target)
        magnitude = Mux(difference < 0, -difference, difference)

        with m.Switch(state):
            with m.Case(S.IDLE):
                with m.If(self.start):
                    m.d.sync += [
                        row.eq(cfg.row_first),
                        col.eq(cfg.col_first),
                        self.cells_done.eq(0),
                        self.cells_failed.eq(0),
                        self.pulses.eq(0),
                        self.cycles.eq(1),
                        self.aborted.eq(0),
                        self.seq_fault.eq(0),
                        abort_pending.eq(0),
                        state.eq(S.CELL_BEGIN),
                    ]

            with m.Case(S.CELL_BEGIN):
                m.d.sync += [cell_pulses.eq(0), last.eq(Polarity.NONE), state.eq(S.TARGET)]
                with m.If(abort_pending):
                    m.d.sync += [self.aborted.eq(1), state.eq(S.FINISH)]

            with m.Case(S.TARGET):
                m.d.sync += [target.eq(self.target_rd.data), state.eq(S.READ_ISSUE)]

            with m.Case(S.READ_ISSUE):
                with m.If(abort_pending):
                    m.d.sync += [self.aborted.eq(1), state.eq(S.FINISH)]
                with m.Elif(self.cmd.ready):
                    m.d.sync += state.eq(S.READ_WAIT)

            with m.Case(S.READ_WAIT):
                with m.If(self.rsp.valid):
                    result = self.rsp.payload
                    m.d.sync += [code.eq(result.code), state.eq(S.DECIDE)]
                    with m.If(result.settle_timeout | result.conv_timeout):
                        m.d.sync += [self.seq_fault.eq(1), state.eq(S.FINISH)]
                    with m.Elif(result.aborted | abort_pending):
                        m.d.sync += [self.aborted.eq(1), state.eq(S.FINISH)]

            with m.Case(S.DECIDE):
                with m.If(magnitude <= cfg.tolerance):
                    m.d.sync += [passed.eq(1), state.eq(S.RECORD)]
                with m.Elif(cell_pulses >= cfg.max_pulses):
                    m.d.sync += [passed.eq(0), state.eq(S.RECORD)]
                with m.Elif(difference < 0):
                    m.d.sync += [polarity.eq(1), amplitude.eq(set_next), set_amp.eq(set_next),
                                 last.eq(Polarity.SET), state.eq(S.PULSE_ISSUE)]
                with m.Else():
                    m.d.sync += [polarity.eq(0), amplitude.eq(reset_next), reset_amp.eq(reset_next),
                                 last.eq(Polarity.RESET), state.eq(S.PULSE_ISSUE)]

            with m.Case(S.PULSE_ISSUE):
                with m.If(abort_pending):
                    m.d.sync += [self.aborted.eq(1), state.eq(S.FINISH)]
                with m.Elif(self.cmd.ready):
                    m.d.sync += state.eq(S.PULSE_WAIT)

            with m.Case(S.PULSE_WAIT):
                with m.If(self.rsp.valid):
                    m.d.sync += [cell_pulses.eq(cell_pulses + 1), self.pulses.eq(self.pulses + 1),
                                 state.eq(S.READ_ISSUE)]
                    with m.If(self.rsp.payload.aborted | abort_pending):
                        m.d.sync += [self.aborted.eq(1), state.eq(S.FINISH)]

            with m.Case(S.RECORD):
                m.d.comb += [
                    self.result_wr.en.eq(1),
                    self.result_wr.data.eq(Cat(cell_pulses, passed, ~passed)),
                ]
                m.d.sync += [
                    self.cells_done.eq(self.cells_done + 1),
                    self.cells_failed.eq(self.cells_failed + ~passed),
                    state.eq(S.NEXT),
                ]

            with m.Case(S.NEXT):
                with m.If(col == cfg.col_last):
                    m.d.sync += col.eq(cfg.col_first)
                    with m.If(row == cfg.row_last):
                        m.d.sync += state.eq(S.FINISH)
                    with m.Else():
                        m.d.sync += [row.eq(row + 1), state.eq(S.CELL_BEGIN)]
                with m.Else():
                    m.d.sync += [col.eq(col + 1), state.eq(S.CELL_BEGIN)]

            with m.Case(S.FINISH):
                m.d.comb += self.done.eq(1)
                m.d.sync += state.eq(S.IDLE)

        return m
