"""AXI4-Lite register file of the controller.

Implements `RegisterMap`: identification, control and status registers, the
DAC code and ADC result buffers, the write-verify registers and the per-cell
target and result buffers. A START write checks the configuration
(`OperationCheck`) and, when it is valid, issues one operation to the
sequencer; a WV_CTRL start checks the write-verify registers and starts the
`WriteVerifyEngine`, which then owns the sequencer until it finishes.

Unmapped addresses, writes to read-only registers, configuration writes while
busy and a start while busy answer SLVERR and set STATUS.bus_error. Write
address and write data are accepted independently, in either order; the
response follows once both arrived. A read takes three cycles from the address
handshake to RVALID.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .interfaces import (
    ARRAY_FIELD_WIDTH,
    COUNT_FIELD_WIDTH,
    PULSE_WIDTH_BITS,
    AXI4LiteSignature,
    AxiResp,
    operation_layout,
    result_layout,
)
from .op_check import OperationCheck
from .params import ControllerParams
from .regmap import ADC_WORD_OVERRANGE, ADC_WORD_VALID, Access, Buffer, ErrorBit, InvalidReason, RegisterMap
from .sequencer import adc_entry_width
from .write_verify import RESULT_ENTRY_BITS, WriteVerifyEngine, WvState

__all__ = ["RegisterFile"]

# STATUS bits that are not error bits.
STATUS_BUSY, STATUS_DONE, STATUS_ABORTED, STATUS_WV_BUSY, STATUS_WV_DONE = 0, 1, 2, 3, 4


def _merge(old, wdata, wstrb):
    """Return the 32-bit word `old` with the byte lanes enabled in `wstrb` replaced by `wdata`."""
    lanes = [Mux(wstrb[lane], wdata[8 * lane:8 * lane + 8], old[8 * lane:8 * lane + 8]) for lane in range(4)]
    return Cat(*lanes)


def _in_buffer(address, buffer: Buffer):
    return (address >= buffer.offset) & (address < buffer.offset + 4 * buffer.depth)


class RegisterFile(wiring.Component):
    """AXI4-Lite subordinate with the controller's registers, buffers and write-verify engine.

    Attributes
    ----------
    axil : In(AXI4LiteSignature)
        Register bus.
    cmd : Out(stream.Signature(operation_layout))
        Operations for the sequencer: a host START, or the write-verify engine's.
    rsp : In(stream.Signature(result_layout, always_ready=True))
        Completion of each operation.
    abort : Out(1)
        One-cycle strobe from CTRL.abort while busy.
    seq_busy : In(1)
    converted : In(lines)
        Channels converted in the last host operation (ADC word valid bits).
    dac_rd, adc_wr : memory-side ports of the DAC and ADC buffers for the sequencer.
    irq : Out(1)
        STATUS.done, STATUS.wv_done or any error bit is set.
    wv_state : Out(WvState)
        State of the write-verify engine, for waveforms.
    """

    def __init__(self, params: ControllerParams):
        self._params = params
        self._map = RegisterMap(params)
        p = params
        super().__init__({
            "axil": In(AXI4LiteSignature(addr_width=p.addr_width, data_width=p.DATA_WIDTH)),
            "cmd": Out(stream.Signature(operation_layout(p))),
            "rsp": In(stream.Signature(result_layout(p), always_ready=True)),
            "abort": Out(1),
            "seq_busy": In(1),
            "converted": In(p.lines),
            "dac_rd": Out(memory.ReadPort.Signature(addr_width=p.channel_width, shape=p.dac_bits)),
            "adc_wr": Out(memory.WritePort.Signature(addr_width=p.channel_width, shape=adc_entry_width(p))),
            "irq": Out(1),
            "wv_state": Out(WvState),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._params
        regs = self._map
        bus = self.axil

        # Buffers. The sequencer and the write-verify engine have their own
        # ports; the bus has one port on each buffer.
        m.submodules.dac_mem = dac_mem = memory.Memory(shape=p.dac_bits, depth=p.lines, init=[])
        m.submodules.adc_mem = adc_mem = memory.Memory(shape=adc_entry_width(p), depth=p.lines, init=[])
        m.submodules.target_mem = target_mem = memory.Memory(shape=p.adc_bits, depth=p.cells, init=[])
        m.submodules.result_mem = result_mem = memory.Memory(shape=RESULT_ENTRY_BITS, depth=p.cells, init=[])
        dac_bus_wr, dac_bus_rd = dac_mem.write_port(), dac_mem.read_port()
        adc_bus_rd = adc_mem.read_port()
        target_bus_wr, target_bus_rd = target_mem.write_port(), target_mem.read_port()
        result_bus_rd = result_mem.read_port()
        wiring.connect(m, dac_mem.read_port(), wiring.flipped(self.dac_rd))
        wiring.connect(m, adc_mem.write_port(), wiring.flipped(self.adc_wr))

        m.submodules.wv = wv = WriteVerifyEngine(p)
        wiring.connect(m, target_mem.read_port(), wv.target_rd)
        wiring.connect(m, result_mem.write_port(), wv.result_wr)
        m.d.comb += self.wv_state.eq(wv.state)

        # Configuration registers. Each register is a list of (lsb, signal)
        # fields; reserved bits read as zero and ignore writes.
        def field(width, reset_word, lsb=0, name=None):
            return Signal(width, init=(reset_word >> lsb) & ((1 << width) - 1), name=name)

        mode = field(4, regs["MODE"].reset, name="mode")
        signed = field(1, regs["MODE"].reset, 8, name="signed")
        array = field(ARRAY_FIELD_WIDTH, regs["ARRAY"].reset, name="array")
        rows_active = field(COUNT_FIELD_WIDTH, regs["ROWS_ACTIVE"].reset, name="rows_active")
        cols_active = field(COUNT_FIELD_WIDTH, regs["COLS_ACTIVE"].reset, name="cols_active")
        settle = field(p.counter_width, regs["SETTLE_CYCLES"].reset, name="settle")
        watchdog = field(p.counter_width, regs["WATCHDOG_CYCLES"].reset, name="watchdog")
        mask_words = [field(min(32, p.lines - 32 * k), regs.mask_register(k).reset, name=f"out_mask{k}")
                      for k in range(p.mask_words)]
        wv_cfg = wv.cfg
        ab = p.amplitude_bits
        wv_fields = {
            "WV_ARRAY": [(0, field(8, regs["WV_ARRAY"].reset, name="wv_array")),
                         (8, field(1, regs["WV_ARRAY"].reset, 8, name="wv_half"))],
            "WV_ROWS": [(0, field(8, regs["WV_ROWS"].reset, name="wv_row_first")),
                        (8, field(8, regs["WV_ROWS"].reset, 8, name="wv_row_last"))],
            "WV_COLS": [(0, field(8, regs["WV_COLS"].reset, name="wv_col_first")),
                        (8, field(8, regs["WV_COLS"].reset, 8, name="wv_col_last"))],
            "WV_SET": [(0, field(ab, regs["WV_SET"].reset, name="wv_set_start")),
                       (16, field(ab, regs["WV_SET"].reset, 16, name="wv_set_step"))],
            "WV_RESET": [(0, field(ab, regs["WV_RESET"].reset, name="wv_reset_start")),
                         (16, field(ab, regs["WV_RESET"].reset, 16, name="wv_reset_step"))],
            "WV_PULSE_WIDTH": [(0, field(PULSE_WIDTH_BITS, regs["WV_PULSE_WIDTH"].reset, name="wv_width"))],
            "WV_TOLERANCE": [(0, field(8, regs["WV_TOLERANCE"].reset, name="wv_tolerance"))],
            "WV_MAX_PULSES": [(0, field(8, regs["WV_MAX_PULSES"].reset, name="wv_max_pulses"))],
            "WV_READ_CODE": [(0, field(p.dac_bits, regs["WV_READ_CODE"].reset, name="wv_read_code"))],
            "WV_SETTLE": [(0, field(p.counter_width, regs["WV_SETTLE"].reset, name="wv_settle"))],
        }
        config_fields = {
            "MODE": [(0, mode), (8, signed)],
            "ARRAY": [(0, array)],
            "ROWS_ACTIVE": [(0, rows_active)],
            "COLS_ACTIVE": [(0, cols_active)],
            "SETTLE_CYCLES": [(0, settle)],
            "WATCHDOG_CYCLES": [(0, watchdog)],
            **{f"OUT_MASK{k}": [(0, word)] for k, word in enumerate(mask_words)},
            **wv_fields,
        }
        (_, wv_array), (_, wv_half) = wv_fields["WV_ARRAY"]
        (_, row_first), (_, row_last) = wv_fields["WV_ROWS"]
        (_, col_first), (_, col_last) = wv_fields["WV_COLS"]
        m.d.comb += [
            wv_cfg.array.eq(wv_array),
            wv_cfg.half.eq(wv_half),
            wv_cfg.row_first.eq(row_first),
            wv_cfg.row_last.eq(row_last),
            wv_cfg.col_first.eq(col_first),
            wv_cfg.col_last.eq(col_last),
            wv_cfg.set_start.eq(wv_fields["WV_SET"][0][1]),
            wv_cfg.set_step.eq(wv_fields["WV_SET"][1][1]),
            wv_cfg.reset_start.eq(wv_fields["WV_RESET"][0][1]),
            wv_cfg.reset_step.eq(wv_fields["WV_RESET"][1][1]),
            wv_cfg.width.eq(wv_fields["WV_PULSE_WIDTH"][0][1]),
            wv_cfg.tolerance.eq(wv_fields["WV_TOLERANCE"][0][1]),
            wv_cfg.max_pulses.eq(wv_fields["WV_MAX_PULSES"][0][1]),
            wv_cfg.read_code.eq(wv_fields["WV_READ_CODE"][0][1]),
            wv_cfg.settle.eq(wv_fields["WV_SETTLE"][0][1]),
            wv_cfg.watchdog.eq(watchdog),
        ]

        # Status.
        done = Signal()
        aborted = Signal()
        wv_done = Signal()
        errors = {bit: Signal(name=f"err_{bit.name.lower()}") for bit in ErrorBit}
        invalid_reason = Signal(8)
        op_cycles = Signal(32)
        clip_count = Signal(result_layout(p)["clip_count"].shape)
        op_count = Signal(32)
        start_pending = Signal()
        wv_start = Signal()
        busy = Signal()
        m.d.comb += busy.eq(self.seq_busy | start_pending | wv.busy | wv_start)

        status_word = Signal(32)
        m.d.comb += [
            status_word[STATUS_BUSY].eq(busy),
            status_word[STATUS_DONE].eq(done),
            status_word[STATUS_ABORTED].eq(aborted),
            status_word[STATUS_WV_BUSY].eq(wv.busy | wv_start),
            status_word[STATUS_WV_DONE].eq(wv_done),
            *(status_word[int(bit)].eq(sig) for bit, sig in errors.items()),
            self.irq.eq(done | wv_done | Cat(*errors.values()).any()),
        ]

        # The host operation the registers describe, checked combinationally.
        m.submodules.check = check = OperationCheck(p)
        op = check.op
        m.d.comb += [
            op.mode.eq(mode),
            op.signed.eq(signed),
            op.array.eq(array),
            op.rows.eq(rows_active),
            op.cols.eq(cols_active),
            op.settle.eq(settle),
            op.watchdog.eq(watchdog),
            op.out_mask.eq(Cat(*mask_words)),
        ]

        # The write-verify registers, checked in the order of InvalidReason.
        wv_reason = Signal(8)
        wv_checks = [
            (wv_array >= p.n_arrays, InvalidReason.WV_ARRAY_OUT_OF_RANGE),
            ((row_first > row_last) | (row_last >= p.rows) | (col_first > col_last) | (col_last >= p.cols),
             InvalidReason.WV_REGION),
            (wv_cfg.max_pulses == 0, InvalidReason.WV_ZERO_PULSES),
            (wv_cfg.width == 0, InvalidReason.WV_ZERO_WIDTH),
            (wv_cfg.settle == 0, InvalidReason.ZERO_SETTLE),
            (watchdog == 0, InvalidReason.ZERO_WATCHDOG),
        ]
        m.d.comb += wv_reason.eq(InvalidReason.NONE)
        for failed, reason in reversed(wv_checks):
            with m.If(failed):
                m.d.comb += wv_reason.eq(int(reason))

        # Sequencer arbitration: the write-verify engine owns the sequencer
        # while it runs; host STARTs are rejected then.
        host_cmd = Signal()
        m.d.comb += [
            host_cmd.eq(~wv.busy),
            self.cmd.payload.eq(Mux(host_cmd, op.as_value(), wv.cmd.payload.as_value())),
            self.cmd.valid.eq(Mux(host_cmd, start_pending, wv.cmd.valid)),
            wv.cmd.ready.eq(~host_cmd & self.cmd.ready),
            wv.rsp.payload.eq(self.rsp.payload),
            wv.rsp.valid.eq(self.rsp.valid & wv.busy),
            wv.start.eq(wv_start),
            wv.abort.eq(self.abort),
        ]
        with m.If(host_cmd & self.cmd.valid & self.cmd.ready):
            m.d.sync += start_pending.eq(0)
        with m.If(wv_start):
            m.d.sync += wv_start.eq(0)

        # Completion. A timeout is an error for host and engine operations
        # alike; done, the counters and the aborted flag belong to host operations.
        with m.If(self.rsp.valid):
            result = self.rsp.payload
            m.d.sync += [
                errors[ErrorBit.SETTLE_TIMEOUT].eq(errors[ErrorBit.SETTLE_TIMEOUT] | result.settle_timeout),
                errors[ErrorBit.CONV_TIMEOUT].eq(errors[ErrorBit.CONV_TIMEOUT] | result.conv_timeout),
            ]
            with m.If(~wv.busy):
                m.d.sync += [
                    done.eq(1),
                    aborted.eq(result.aborted),
                    errors[ErrorBit.ADC_CLIP].eq(errors[ErrorBit.ADC_CLIP] | result.adc_clip),
                    op_cycles.eq(result.cycles),
                    clip_count.eq(result.clip_count),
                    op_count.eq(op_count + 1),
                ]
        with m.If(wv.done):
            m.d.sync += [
                wv_done.eq(1),
                aborted.eq(wv.aborted),
                errors[ErrorBit.WV_CELL_FAIL].eq(wv.cells_failed != 0),
            ]

        readable = {
            "STATUS": status_word,
            "OP_CYCLES": op_cycles,
            "CLIP_COUNT": clip_count,
            "INVALID_REASON": invalid_reason,
            "OP_COUNT": op_count,
            "WV_CELLS_DONE": wv.cells_done,
            "WV_CELLS_FAILED": wv.cells_failed,
            "WV_PULSES": wv.pulses,
            "WV_CYCLES": wv.cycles,
            **{name: self._word(fields) for name, fields in config_fields.items()},
        }

        # Write channel: AW and W are accepted independently and held until
        # the response is sent.
        aw_full = Signal()
        aw_addr = Signal(p.addr_width)
        w_full = Signal()
        w_data = Signal(32)
        w_strb = Signal(4)
        bvalid = Signal()
        bresp = Signal(2)
        m.d.comb += [
            bus.awready.eq(~aw_full),
            bus.wready.eq(~w_full),
            bus.bvalid.eq(bvalid),
            bus.bresp.eq(bresp),
        ]
        with m.If(bus.awvalid & bus.awready):
            m.d.sync += [aw_full.eq(1), aw_addr.eq(bus.awaddr)]
        with m.If(bus.wvalid & bus.wready):
            m.d.sync += [w_full.eq(1), w_data.eq(bus.wdata), w_strb.eq(bus.wstrb)]
        with m.If(bvalid & bus.bready):
            m.d.sync += bvalid.eq(0)

        do_write = Signal()
        write_ok = Signal()
        m.d.comb += do_write.eq(aw_full & w_full & ~bvalid)
        in_dac = _in_buffer(aw_addr, regs.dac)
        in_target = _in_buffer(aw_addr, regs.target)
        m.d.comb += [
            dac_bus_wr.addr.eq(aw_addr[2:] - (regs.dac.offset >> 2)),
            dac_bus_wr.data.eq(w_data[:p.dac_bits]),
            target_bus_wr.addr.eq(aw_addr[2:] - (regs.target.offset >> 2)),
            target_bus_wr.data.eq(w_data[:p.adc_bits]),
        ]
        with m.If(do_write):
            m.d.sync += [aw_full.eq(0), w_full.eq(0), bvalid.eq(1)]
            m.d.sync += bresp.eq(Mux(write_ok, AxiResp.OKAY, AxiResp.SLVERR))
            with m.If(~write_ok):
                m.d.sync += errors[ErrorBit.BUS_ERROR].eq(1)

            # Buffers take the low two byte lanes and change only while idle.
            with m.If(in_dac):
                m.d.comb += [write_ok.eq(~busy), dac_bus_wr.en.eq(~busy & (w_strb[:2] == 0b11))]
            with m.Elif(in_target):
                m.d.comb += [write_ok.eq(~busy), target_bus_wr.en.eq(~busy & (w_strb[:2] == 0b11))]
            with m.Else():
                with m.Switch(aw_addr[2:]):
                    for reg in regs.registers:
                        with m.Case(reg.offset >> 2):
                            self._write_register(
                                m, reg, config_fields, w_data, w_strb, busy, write_ok, check, wv_reason,
                                start_pending, wv_start, done, aborted, wv_done, errors, invalid_reason)

        # Read channel: address handshake, one cycle for the buffer read ports,
        # one to form the word, then RVALID until RREADY.
        r_state = Signal(2)
        ar_addr = Signal(p.addr_width)
        rdata = Signal(32)
        rresp = Signal(2)
        m.d.comb += [
            bus.arready.eq(r_state == 0),
            bus.rvalid.eq(r_state == 3),
            bus.rdata.eq(rdata),
            bus.rresp.eq(rresp),
            dac_bus_rd.addr.eq(ar_addr[2:] - (regs.dac.offset >> 2)),
            adc_bus_rd.addr.eq(ar_addr[2:] - (regs.adc.offset >> 2)),
            target_bus_rd.addr.eq(ar_addr[2:] - (regs.target.offset >> 2)),
            result_bus_rd.addr.eq(ar_addr[2:] - (regs.result.offset >> 2)),
        ]
        with m.Switch(r_state):
            with m.Case(0):
                with m.If(bus.arvalid):
                    m.d.sync += [ar_addr.eq(bus.araddr), r_state.eq(1)]
            with m.Case(1):
                m.d.sync += r_state.eq(2)
            with m.Case(2):
                m.d.sync += r_state.eq(3)
                self._read_word(m, ar_addr, readable, dac_bus_rd, adc_bus_rd, target_bus_rd, result_bus_rd,
                                rdata, rresp, errors)
            with m.Case(3):
                with m.If(bus.rready):
                    m.d.sync += r_state.eq(0)

        return m

    @staticmethod
    def _word(fields):
        """Return the 32-bit read value of a register made of (lsb, signal) fields."""
        parts = []
        position = 0
        for lsb, signal in fields:
            if lsb > position:
                parts.append(Const(0, lsb - position))
            parts.append(signal)
            position = lsb + len(signal)
        if position < 32:
            parts.append(Const(0, 32 - position))
        return Cat(*parts)[:32]

    def _write_register(self, m, reg, config_fields, w_data, w_strb, busy, write_ok, check, wv_reason,
                        start_pending, wv_start, done, aborted, wv_done, errors, invalid_reason):
        """Emit the write behaviour of one register (inside the address switch)."""
        if reg.access is Access.RO:
            m.d.comb += write_ok.eq(0)
            return

        clear_on_start = [
            aborted.eq(0),
            errors[ErrorBit.ADC_CLIP].eq(0),
            errors[ErrorBit.SETTLE_TIMEOUT].eq(0),
            errors[ErrorBit.CONV_TIMEOUT].eq(0),
        ]

        if reg.name == "CTRL":
            start = w_data[0] & w_strb[0]
            abort = w_data[1] & w_strb[0]
            m.d.comb += write_ok.eq(~(start & busy))
            with m.If(abort & busy):
                m.d.comb += self.abort.eq(1)
            with m.If(start & ~busy):
                m.d.sync += [
                    *clear_on_start,
                    done.eq(0),
                    errors[ErrorBit.INVALID_CONFIG].eq(~check.valid),
                    invalid_reason.eq(check.reason),
                    start_pending.eq(check.valid),
                ]
            return

        if reg.name == "WV_CTRL":
            start = w_data[0] & w_strb[0]
            m.d.comb += write_ok.eq(~(start & busy))
            with m.If(start & ~busy):
                valid = wv_reason == InvalidReason.NONE
                m.d.sync += [
                    *clear_on_start,
                    wv_done.eq(0),
                    errors[ErrorBit.WV_CELL_FAIL].eq(0),
                    errors[ErrorBit.INVALID_CONFIG].eq(~valid),
                    invalid_reason.eq(wv_reason),
                    wv_start.eq(valid),
                ]
            return

        if reg.name == "STATUS":
            # Write 1 to clear; the busy bits are read-only and ignore writes.
            m.d.comb += write_ok.eq(1)
            clear = w_data & Cat(*(w_strb[lane].replicate(8) for lane in range(4)))
            for bit, signal in ((STATUS_DONE, done), (STATUS_ABORTED, aborted), (STATUS_WV_DONE, wv_done),
                                *((int(b), s) for b, s in errors.items())):
                with m.If(clear[bit]):
                    m.d.sync += signal.eq(0)
            return

        # Configuration registers change only while idle.
        m.d.comb += write_ok.eq(~busy)
        with m.If(~busy):
            merged = _merge(self._word(config_fields[reg.name]), w_data, w_strb)
            for lsb, signal in config_fields[reg.name]:
                m.d.sync += signal.eq(merged[lsb:lsb + len(signal)])

    def _read_word(self, m, ar_addr, readable, dac_bus_rd, adc_bus_rd, target_bus_rd, result_bus_rd,
                   rdata, rresp, errors):
        """Emit the read multiplexer; registers `rdata` and `rresp` for the address in `ar_addr`."""
        p = self._params
        regs = self._map
        m.d.sync += [rdata.eq(0), rresp.eq(AxiResp.OKAY)]

        with m.If(_in_buffer(ar_addr, regs.dac)):
            m.d.sync += rdata.eq(dac_bus_rd.data.as_signed())
        with m.Elif(_in_buffer(ar_addr, regs.adc)):
            entry = adc_bus_rd.data
            index = ar_addr[2:] - (regs.adc.offset >> 2)
            word = Signal(32)
            m.d.comb += [
                word.eq(0),
                word[0:16].eq(entry[:p.adc_bits].as_signed()),
                word[ADC_WORD_OVERRANGE].eq(entry[p.adc_bits]),
                word[ADC_WORD_VALID].eq(self.converted.bit_select(index[:p.channel_width], 1)),
            ]
            m.d.sync += rdata.eq(word)
        with m.Elif(_in_buffer(ar_addr, regs.target)):
            m.d.sync += rdata.eq(target_bus_rd.data.as_signed())
        with m.Elif(_in_buffer(ar_addr, regs.result)):
            m.d.sync += rdata.eq(result_bus_rd.data)
        with m.Else():
            with m.Switch(ar_addr[2:]):
                for reg in regs.registers:
                    with m.Case(reg.offset >> 2):
                        if reg.access is Access.WO:
                            pass
                        elif reg.name in readable:
                            m.d.sync += rdata.eq(readable[reg.name])
                        else:
                            m.d.sync += rdata.eq(reg.reset)
                with m.Default():
                    m.d.sync += [rresp.eq(AxiResp.SLVERR), errors[ErrorBit.BUS_ERROR].eq(1)]
