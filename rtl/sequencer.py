"""DAC/ADC sequencer: runs one analog operation from DAC load to stored ADC codes.

One operation, cycle by cycle:

1. ``DAC_ADDR``, ``DAC_SETUP``, ``DAC_STROBE`` for each input line: read the
   code from the DAC buffer, present channel and code, then raise ``load`` for
   one cycle. Channel and code are stable a cycle before ``load`` rises, so an
   event-driven model can read them at the ``load`` edge.
2. ``CONFIGURE``: close the switches of the mode (`SwitchConfig`).
3. ``ENABLE``: raise ``analog.enable``; the circuit starts settling.
4. ``WAIT_READY``: wait for the op-amp bias ready signal (watchdog).
5. ``SETTLE``: wait exactly the programmed number of settle cycles.
6. ``CONV_NEXT``, ``CONV_SETUP``, ``CONV_START``, ``CONV_WAIT`` for each
   channel of the output mask: present the channel, raise ``start`` for one
   cycle, wait for the converter (watchdog), store the code.
7. ``FINISH``: lower enable, open every switch, report the result.

Single-cell modes (the mode table's CELL_SELECT flag) load one DAC channel,
``op.cell_row``, with ``op.dac_code`` and convert one channel, ``op.cell_col``;
their code goes to the result record, not to the ADC buffer. PROGRAM skips
the DAC load, the enable and the conversion: after CONFIGURE it presents the
pulse (``PULSE_SETUP``), raises ``pulse.active`` (``PULSE_ON``) and holds it
for ``op.width`` cycles (``PULSE``).

``abort`` moves any busy state to ``FINISH``. The state register is a port so
waveforms show it, and `SequencerState` names its values.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..model.switch_matrix import MODES, Conn, LineSet
from .interfaces import (
    COUNT_FIELD_WIDTH,
    AdcSignature,
    AnalogSignature,
    DacSignature,
    PulseSignature,
    SwitchSignature,
    operation_layout,
    result_layout,
)
from .params import ControllerParams
from .switch_config import SwitchConfig

__all__ = ["SequencerState", "Sequencer", "adc_entry_width", "mode_matches"]


class SequencerState(enum.Enum, shape=4):
    IDLE = 0
    DAC_ADDR = 1
    DAC_SETUP = 2
    DAC_STROBE = 3
    CONFIGURE = 4
    ENABLE = 5
    WAIT_READY = 6
    SETTLE = 7
    CONV_NEXT = 8
    CONV_SETUP = 9
    CONV_START = 10
    CONV_WAIT = 11
    FINISH = 12
    PULSE_SETUP = 13
    PULSE_ON = 14
    PULSE = 15


def mode_matches(mode, predicate) -> Value:
    """Return a 1-bit value: `mode` is the code of a mode-table entry for which `predicate` holds."""
    codes = [entry.code for entry in MODES if predicate(entry)]
    return Cat(*(mode == code for code in codes)).any() if codes else Const(0, 1)


def adc_entry_width(params: ControllerParams) -> int:
    """Width of an ADC buffer entry: the code and its over-range flag."""
    return params.adc_bits + 1


class Sequencer(wiring.Component):
    """Runs analog operations issued on ``cmd`` and reports each on ``rsp``.

    Attributes
    ----------
    cmd : In(stream.Signature(operation_layout))
        Operations; accepted only in ``IDLE`` and assumed valid (see `OperationCheck`).
    rsp : Out(stream.Signature(result_layout, always_ready=True))
        One result per operation, valid for one cycle in ``FINISH``.
    abort : In(1)
        Strobe: stop the running operation.
    busy : Out(1)
    state : Out(SequencerState)
    converted : Out(lines)
        Channels converted by the current or last operation.
    dac_rd : read port on the DAC code buffer.
    adc_wr : write port on the ADC result buffer.
    sw, dac, analog, adc : analog-side ports.
    """

    def __init__(self, params: ControllerParams):
        self._params = params
        p = params
        super().__init__({
            "cmd": In(stream.Signature(operation_layout(p))),
            "rsp": Out(stream.Signature(result_layout(p), always_ready=True)),
            "abort": In(1),
            "busy": Out(1),
            "state": Out(SequencerState),
            "converted": Out(p.lines),
            "dac_rd": In(memory.ReadPort.Signature(addr_width=p.channel_width, shape=p.dac_bits)),
            "adc_wr": In(memory.WritePort.Signature(addr_width=p.channel_width, shape=adc_entry_width(p))),
            "sw": Out(SwitchSignature(p)),
            "dac": Out(DacSignature(p)),
            "analog": Out(AnalogSignature()),
            "adc": Out(AdcSignature(p)),
            "pulse": Out(PulseSignature(p)),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._params
        S = SequencerState

        m.submodules.switch = switch = SwitchConfig(p)
        wiring.connect(m, switch.sw, wiring.flipped(self.sw))

        op = Signal(operation_layout(p))
        index = Signal(COUNT_FIELD_WIDTH)
        timer = Signal(p.counter_width)
        cycles = Signal(32)
        clip_count = Signal(p.count_width)
        seen_busy = Signal()
        aborted = Signal()
        adc_clip = Signal()
        settle_timeout = Signal()
        conv_timeout = Signal()
        last_code = Signal(p.adc_bits)
        last_overrange = Signal()

        m.d.comb += switch.op.eq(op)

        inputs = Signal(COUNT_FIELD_WIDTH)
        outputs = Signal(COUNT_FIELD_WIDTH)
        cell = Signal()
        program = Signal()
        with m.Switch(op.mode):
            for entry in MODES:
                with m.Case(entry.code):
                    if entry.cell:
                        # One input line and one output channel: the selected cell's.
                        m.d.comb += [inputs.eq(1), outputs.eq(op.cell_col + 1), cell.eq(1)]
                    else:
                        m.d.comb += [
                            inputs.eq(op.rows if entry.inputs is LineSet.ROWS else op.cols),
                            outputs.eq(op.rows if entry.outputs is LineSet.ROWS else op.cols),
                        ]
                    m.d.comb += program.eq(int(bool(entry.conn & Conn.PULSE_DRIVERS)))

        state = self.state
        m.d.comb += [
            self.busy.eq(state != S.IDLE),
            self.cmd.ready.eq(state == S.IDLE),
            self.dac_rd.en.eq(1),
            self.dac_rd.addr.eq(index),
            self.adc_wr.addr.eq(index),
            self.adc_wr.data.eq(Cat(self.adc.code, self.adc.overrange)),
        ]

        # Strobes are registered and last one cycle.
        m.d.sync += [self.dac.load.eq(0), self.adc.start.eq(0)]

        # Combinational outputs are plain expressions of the state, outside
        # the state switch below: logic that reads the ADC inputs stays this
        # small, so Verilator need not re-evaluate the whole state machine
        # whenever an input (the clock included) changes.
        accept = Signal()
        m.d.comb += [
            accept.eq(seen_busy & self.adc.valid & ~self.adc.busy),
            self.adc_wr.en.eq((state == S.CONV_WAIT) & accept & ~cell),
            switch.apply.eq(state == S.CONFIGURE),
            switch.clear.eq(state == S.FINISH),
            self.rsp.valid.eq(state == S.FINISH),
            self.rsp.payload.aborted.eq(aborted),
            self.rsp.payload.adc_clip.eq(adc_clip),
            self.rsp.payload.settle_timeout.eq(settle_timeout),
            self.rsp.payload.conv_timeout.eq(conv_timeout),
            self.rsp.payload.clip_count.eq(clip_count),
            # The cycle counter changes every cycle; gating it keeps the
            # payload, and everything that reads it, still between results.
            self.rsp.payload.cycles.eq(Mux(state == S.FINISH, cycles, 0)),
            self.rsp.payload.code.eq(last_code),
            self.rsp.payload.overrange.eq(last_overrange),
        ]



        with m.If(self.busy):
            m.d.sync += cycles.eq(cycles + 1)

        with m.Switch(state):
            with m.Case(S.IDLE):
                with m.If(self.cmd.valid):
                    m.d.sync += [
                        op.eq(self.cmd.payload),
                        index.eq(0),
                        cycles.eq(1),
                        clip_count.eq(0),
                        aborted.eq(0),
                        adc_clip.eq(0),
                        settle_timeout.eq(0),
                        conv_timeout.eq(0),
                    ]
                    incoming = self.cmd.payload.mode
                    with m.If(~mode_matches(incoming, lambda entry: entry.cell)):
                        # The ADC valid bits describe the host's last operation.
                        m.d.sync += self.converted.eq(0)
                    with m.If(mode_matches(incoming, lambda entry: bool(entry.conn & Conn.PULSE_DRIVERS))):
                        m.d.sync += state.eq(S.CONFIGURE)
                    with m.Else():
                        m.d.sync += state.eq(S.DAC_ADDR)

            with m.Case(S.DAC_ADDR):
                m.d.sync += state.eq(S.DAC_SETUP)

            with m.Case(S.DAC_SETUP):
                m.d.sync += [
                    self.dac.chan.eq(Mux(cell, op.cell_row, index)),
                    self.dac.code.eq(Mux(cell, op.dac_code, self.dac_rd.data)),
                    state.eq(S.DAC_STROBE),
                ]

            with m.Case(S.DAC_STROBE):
                m.d.sync += [self.dac.load.eq(1), index.eq(index + 1)]
                with m.If(index + 1 == inputs):
                    m.d.sync += state.eq(S.CONFIGURE)
                with m.Else():
                    m.d.sync += state.eq(S.DAC_ADDR)

            with m.Case(S.CONFIGURE):
                m.d.sync += state.eq(Mux(program, S.PULSE_SETUP, S.ENABLE))

            with m.Case(S.PULSE_SETUP):
                m.d.sync += [
                    self.pulse.polarity.eq(op.polarity),
                    self.pulse.amplitude.eq(op.amplitude),
                    self.pulse.width.eq(op.width),
                    state.eq(S.PULSE_ON),
                ]

            with m.Case(S.PULSE_ON):
                m.d.sync += [self.pulse.active.eq(1), timer.eq(op.width), state.eq(S.PULSE)]

            with m.Case(S.PULSE):
                with m.If(timer <= 1):
                    m.d.sync += [self.pulse.active.eq(0), state.eq(S.FINISH)]
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)

            with m.Case(S.ENABLE):
                m.d.sync += [
                    self.analog.enable.eq(1),
                    timer.eq(op.watchdog),
                    state.eq(S.WAIT_READY),
                ]

            with m.Case(S.WAIT_READY):
                with m.If(self.analog.ready):
                    m.d.sync += [timer.eq(op.settle), state.eq(S.SETTLE)]
                with m.Elif(timer == 1):
                    m.d.sync += [settle_timeout.eq(1), state.eq(S.FINISH)]
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)

            with m.Case(S.SETTLE):
                with m.If(timer == 1):
                    m.d.sync += [index.eq(Mux(cell, op.cell_col, 0)), state.eq(S.CONV_NEXT)]
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)

            with m.Case(S.CONV_NEXT):
                with m.If(index == outputs):
                    m.d.sync += state.eq(S.FINISH)
                with m.Elif(cell | op.out_mask.bit_select(index, 1)):
                    m.d.sync += state.eq(S.CONV_SETUP)
                with m.Else():
                    m.d.sync += index.eq(index + 1)

            with m.Case(S.CONV_SETUP):
                m.d.sync += [self.adc.chan.eq(index), state.eq(S.CONV_START)]

            with m.Case(S.CONV_START):
                m.d.sync += [
                    self.adc.start.eq(1),
                    seen_busy.eq(0),
                    timer.eq(op.watchdog),
                    state.eq(S.CONV_WAIT),
                ]

            with m.Case(S.CONV_WAIT):
                # A code counts only after the converter showed busy for this
                # start, so a valid left over from the previous conversion is
                # never taken for a new one.
                with m.If(self.adc.busy):
                    m.d.sync += seen_busy.eq(1)
                with m.If(accept):
                    m.d.sync += [
                        last_code.eq(self.adc.code),
                        last_overrange.eq(self.adc.overrange),
                        index.eq(index + 1),
                        state.eq(S.CONV_NEXT),
                    ]
                    with m.If(~cell):
                        m.d.sync += self.converted.bit_select(index, 1).eq(1)
                    with m.If(self.adc.overrange):
                        m.d.sync += [adc_clip.eq(1), clip_count.eq(clip_count + 1)]
                with m.Elif(timer == 1):
                    m.d.sync += [conv_timeout.eq(1), state.eq(S.FINISH)]
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)

            with m.Case(S.FINISH):
                m.d.sync += [self.analog.enable.eq(0), state.eq(S.IDLE)]

        with m.If(self.abort & self.busy & (state != S.FINISH)):
            m.d.sync += [aborted.eq(1), self.pulse.active.eq(0), state.eq(S.FINISH)]

        return m
