"""AXI4-Lite register file of the controller.

Implements `RegisterMap`: identification, control and status registers, the
DAC code buffer and the ADC result buffer. A START write checks the
configuration (`OperationCheck`) and, when it is valid, issues one operation to
the sequencer. Unmapped addresses, writes to read-only registers, writes of the
configuration while busy and a START while busy answer SLVERR and set
STATUS.bus_error.

Write address and write data are accepted independently, in either order; the
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
    AXI4LiteSignature,
    AxiResp,
    operation_layout,
    result_layout,
)
from .op_check import OperationCheck
from .params import ControllerParams
from .regmap import ADC_WORD_OVERRANGE, ADC_WORD_VALID, Access, ErrorBit, RegisterMap
from .sequencer import adc_entry_width

__all__ = ["RegisterFile"]


def _merge(old, wdata, wstrb):
    """Return `old` with the byte lanes enabled in `wstrb` replaced by `wdata`, at the width of `old`."""
    padded = Cat(old, Const(0, 32 - len(old))) if len(old) < 32 else old
    lanes = [Mux(wstrb[lane], wdata[8 * lane:8 * lane + 8], padded[8 * lane:8 * lane + 8]) for lane in range(4)]
    return Cat(*lanes)[:len(old)]


class RegisterFile(wiring.Component):
    """AXI4-Lite subordinate with the controller's registers and buffers.

    Attributes
    ----------
    axil : In(AXI4LiteSignature)
        Register bus.
    cmd : Out(stream.Signature(operation_layout))
        Operation issued by a valid START.
    rsp : In(stream.Signature(result_layout, always_ready=True))
        Completion of each operation.
    abort : Out(1)
        One-cycle strobe from CTRL.abort while busy.
    seq_busy : In(1)
    converted : In(lines)
        Channels converted in the last operation (ADC word valid bits).
    dac_rd, adc_wr : memory-side ports of the DAC and ADC buffers for the sequencer.
    irq : Out(1)
        STATUS.done or any error bit is set.
    """

    def __init__(self, params: ControllerParams):
        self._params = params
        self._map = RegisterMap(params)
        p = params
        super().__init__({
            "axil": In(AXI4LiteSignature(addr_width=p.ADDR_WIDTH, data_width=p.DATA_WIDTH)),
            "cmd": Out(stream.Signature(operation_layout(p))),
            "rsp": In(stream.Signature(result_layout(p), always_ready=True)),
            "abort": Out(1),
            "seq_busy": In(1),
            "converted": In(p.lines),
            "dac_rd": Out(memory.ReadPort.Signature(addr_width=p.channel_width, shape=p.dac_bits)),
            "adc_wr": Out(memory.WritePort.Signature(addr_width=p.channel_width, shape=adc_entry_width(p))),
            "irq": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._params
        regs = self._map
        bus = self.axil

        # Buffers. The sequencer reads DAC codes and writes ADC results through
        # its own ports; the bus has one port on each.
        m.submodules.dac_mem = dac_mem = memory.Memory(shape=p.dac_bits, depth=p.lines, init=[])
        m.submodules.adc_mem = adc_mem = memory.Memory(shape=adc_entry_width(p), depth=p.lines, init=[])
        dac_bus_wr = dac_mem.write_port()
        dac_bus_rd = dac_mem.read_port()
        dac_seq_rd = dac_mem.read_port()
        adc_seq_wr = adc_mem.write_port()
        adc_bus_rd = adc_mem.read_port()
        wiring.connect(m, dac_seq_rd, wiring.flipped(self.dac_rd))
        wiring.connect(m, adc_seq_wr, wiring.flipped(self.adc_wr))

        # Configuration registers; reset values come from the register map.
        mode = Signal(4, init=0)
        signed = Signal()
        array = Signal(ARRAY_FIELD_WIDTH)
        rows_active = Signal(COUNT_FIELD_WIDTH, init=regs["ROWS_ACTIVE"].reset)
        cols_active = Signal(COUNT_FIELD_WIDTH, init=regs["COLS_ACTIVE"].reset)
        settle = Signal(p.counter_width, init=regs["SETTLE_CYCLES"].reset)
        watchdog = Signal(p.counter_width, init=regs["WATCHDOG_CYCLES"].reset)
        mask_words = [Signal(min(32, p.lines - 32 * k), init=regs.mask_register(k).reset, name=f"out_mask{k}")
                      for k in range(p.mask_words)]

        # Status.
        done = Signal()
        aborted = Signal()
        errors = {bit: Signal(name=f"err_{bit.name.lower()}") for bit in ErrorBit}
        invalid_reason = Signal(8)
        op_cycles = Signal(32)
        clip_count = Signal(result_layout(p)["clip_count"].shape)
        op_count = Signal(32)
        start_pending = Signal()
        busy = Signal()
        m.d.comb += busy.eq(self.seq_busy | start_pending)

        status_word = Signal(32)
        m.d.comb += [
            status_word[0].eq(busy),
            status_word[1].eq(done),
            status_word[2].eq(aborted),
            *(status_word[int(bit)].eq(sig) for bit, sig in errors.items()),
            self.irq.eq(done | Cat(*errors.values()).any()),
        ]

        # The operation the registers describe, checked combinationally.
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
            self.cmd.payload.eq(op),
            self.cmd.valid.eq(start_pending),
        ]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += start_pending.eq(0)

        # Completion of an operation.
        with m.If(self.rsp.valid):
            result = self.rsp.payload
            m.d.sync += [
                done.eq(1),
                aborted.eq(result.aborted),
                errors[ErrorBit.ADC_CLIP].eq(errors[ErrorBit.ADC_CLIP] | result.adc_clip),
                errors[ErrorBit.SETTLE_TIMEOUT].eq(errors[ErrorBit.SETTLE_TIMEOUT] | result.settle_timeout),
                errors[ErrorBit.CONV_TIMEOUT].eq(errors[ErrorBit.CONV_TIMEOUT] | result.conv_timeout),
                op_cycles.eq(result.cycles),
                clip_count.eq(result.clip_count),
                op_count.eq(op_count + 1),
            ]

        # Register bank: name -> (signal, access). Constant read-only registers
        # read their reset value.
        readable = {
            "STATUS": status_word,
            "MODE": Cat(mode, Const(0, 4), signed),
            "ARRAY": array,
            "ROWS_ACTIVE": rows_active,
            "COLS_ACTIVE": cols_active,
            "SETTLE_CYCLES": settle,
            "WATCHDOG_CYCLES": watchdog,
            "OP_CYCLES": op_cycles,
            "CLIP_COUNT": clip_count,
            "INVALID_REASON": invalid_reason,
            "OP_COUNT": op_count,
            **{f"OUT_MASK{k}": word for k, word in enumerate(mask_words)},
        }
        writable = {
            "ARRAY": array,
            "ROWS_ACTIVE": rows_active,
            "COLS_ACTIVE": cols_active,
            "SETTLE_CYCLES": settle,
            "WATCHDOG_CYCLES": watchdog,
            **{f"OUT_MASK{k}": word for k, word in enumerate(mask_words)},
        }

        # Write channel: AW and W are accepted independently and held until
        # the response is sent.
        aw_full = Signal()
        aw_addr = Signal(p.ADDR_WIDTH)
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
        write_word = aw_addr[2:]
        in_dac = (aw_addr >= regs.dac.offset) & (aw_addr < regs.dac.offset + 4 * regs.dac.depth)
        m.d.comb += [
            dac_bus_wr.addr.eq(aw_addr[2:] - (regs.dac.offset >> 2)),
            dac_bus_wr.data.eq(w_data[:p.dac_bits]),
        ]
        with m.If(do_write):
            m.d.sync += [aw_full.eq(0), w_full.eq(0), bvalid.eq(1)]
            m.d.sync += bresp.eq(Mux(write_ok, AxiResp.OKAY, AxiResp.SLVERR))
            with m.If(~write_ok):
                m.d.sync += errors[ErrorBit.BUS_ERROR].eq(1)

            with m.If(in_dac):
                # Byte lanes 0 and 1 carry the code; the buffer is written only when idle.
                m.d.comb += [
                    write_ok.eq(~busy),
                    dac_bus_wr.en.eq(~busy & (w_strb[:2] == 0b11)),
                ]
            with m.Else():
                with m.Switch(write_word):
                    for reg in regs.registers:
                        with m.Case(reg.offset >> 2):
                            self._write_register(m, reg, writable, w_data, w_strb, busy, write_ok,
                                                 mode, signed, check, start_pending, done, aborted,
                                                 errors, invalid_reason)

        # Read channel: address handshake, one cycle for the buffer read ports,
        # one to form the word, then RVALID until RREADY.
        r_state = Signal(2)
        ar_addr = Signal(p.ADDR_WIDTH)
        rdata = Signal(32)
        rresp = Signal(2)
        m.d.comb += [
            bus.arready.eq(r_state == 0),
            bus.rvalid.eq(r_state == 3),
            bus.rdata.eq(rdata),
            bus.rresp.eq(rresp),
            dac_bus_rd.addr.eq(ar_addr[2:] - (regs.dac.offset >> 2)),
            adc_bus_rd.addr.eq(ar_addr[2:] - (regs.adc.offset >> 2)),
        ]
        with m.Switch(r_state):
            with m.Case(0):
                with m.If(bus.arvalid):
                    m.d.sync += [ar_addr.eq(bus.araddr), r_state.eq(1)]
            with m.Case(1):
                m.d.sync += r_state.eq(2)
            with m.Case(2):
                m.d.sync += r_state.eq(3)
                self._read_word(m, ar_addr, readable, dac_bus_rd, adc_bus_rd, rdata, rresp, errors)
            with m.Case(3):
                with m.If(bus.rready):
                    m.d.sync += r_state.eq(0)

        return m

    def _write_register(self, m, reg, writable, w_data, w_strb, busy, write_ok,
                        mode, signed, check, start_pending, done, aborted, errors, invalid_reason):
        """Emit the write behaviour of one register (inside the address switch)."""
        if reg.access is Access.RO:
            m.d.comb += write_ok.eq(0)
            return

        if reg.name == "CTRL":
            start = w_data[0] & w_strb[0]
            abort = w_data[1] & w_strb[0]
            m.d.comb += write_ok.eq(~(start & busy))
            with m.If(abort & busy):
                m.d.comb += self.abort.eq(1)
            with m.If(start & ~busy):
                m.d.sync += [
                    done.eq(0),
                    aborted.eq(0),
                    errors[ErrorBit.ADC_CLIP].eq(0),
                    errors[ErrorBit.SETTLE_TIMEOUT].eq(0),
                    errors[ErrorBit.CONV_TIMEOUT].eq(0),
                    errors[ErrorBit.INVALID_CONFIG].eq(~check.valid),
                    invalid_reason.eq(check.reason),
                    start_pending.eq(check.valid),
                ]
            return

        if reg.name == "STATUS":
            # Write 1 to clear; BUSY is read-only and ignores writes.
            m.d.comb += write_ok.eq(1)
            clear = w_data & Cat(w_strb[0].replicate(8), w_strb[1].replicate(8),
                                 w_strb[2].replicate(8), w_strb[3].replicate(8))
            with m.If(clear[1]):
                m.d.sync += done.eq(0)
            with m.If(clear[2]):
                m.d.sync += aborted.eq(0)
            for bit, sig in errors.items():
                with m.If(clear[int(bit)]):
                    m.d.sync += sig.eq(0)
            return

        # Configuration registers change only while idle.
        m.d.comb += write_ok.eq(~busy)
        with m.If(~busy):
            if reg.name == "MODE":
                with m.If(w_strb[0]):
                    m.d.sync += mode.eq(w_data[0:4])
                with m.If(w_strb[1]):
                    m.d.sync += signed.eq(w_data[8])
            else:
                target = writable[reg.name]
                m.d.sync += target.eq(_merge(target, w_data, w_strb))

    def _read_word(self, m, ar_addr, readable, dac_bus_rd, adc_bus_rd, rdata, rresp, errors):
        """Emit the read multiplexer; registers `rdata` and `rresp` for the address in `ar_addr`."""
        p = self._params
        regs = self._map
        m.d.sync += [rdata.eq(0), rresp.eq(AxiResp.OKAY)]

        in_dac = (ar_addr >= regs.dac.offset) & (ar_addr < regs.dac.offset + 4 * regs.dac.depth)
        in_adc = (ar_addr >= regs.adc.offset) & (ar_addr < regs.adc.offset + 4 * regs.adc.depth)
        with m.If(in_dac):
            m.d.sync += rdata.eq(dac_bus_rd.data.as_signed())
        with m.Elif(in_adc):
            entry = adc_bus_rd.data
            code = entry[:p.adc_bits].as_signed()
            index = ar_addr[2:] - (regs.adc.offset >> 2)
            word = Signal(32)
            m.d.comb += [
                word.eq(0),
                word[0:16].eq(code),
                word[ADC_WORD_OVERRANGE].eq(entry[p.adc_bits]),
                word[ADC_WORD_VALID].eq(self.converted.bit_select(index[:p.channel_width], 1)),
            ]
            m.d.sync += rdata.eq(word)
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
