"""Register-level model of the controller: the model-only backend.

`ControllerModel` implements the `RegisterBus` protocol without a simulator.
It keeps the registers of `RegisterMap` with the RTL's access rules (SLVERR
cases included). At a START it runs the operation on the `AnalogMacro`
through `AnalogBridgeCore` at the cycle-exact times the RTL sequencer would
produce, and at a WV_CTRL start it runs the reference write-verify algorithm
with the engine's operations at their cycle-exact times. That gives the same
ADC codes, pulses and programmed conductances as the Amaranth and cocotb
backends for the same seed, which the agreement tests in `tests/cosim/` check.

Differences from the RTL: an operation or a write-verify run completes within
the write that starts it, so an abort written afterwards finds nothing to
stop, and bus accesses take a nominal number of cycles.
"""

from __future__ import annotations

import logging

import numpy as np

from ..model.switch_matrix import Conn, mode_by_code, mode_by_name
from ..model.write_verify import Polarity, WriteVerifySettings, run_write_verify
from ..rtl.params import ControllerParams
from ..rtl.regmap import RESULT_WORD_FAIL, RESULT_WORD_PASS, Access, ErrorBit, InvalidReason, RegisterMap
from .bridge_core import AnalogBridgeCore, FaultInjection
from .errors import BusError

__all__ = ["ControllerModel", "sequencer_timeline"]

log = logging.getLogger(__name__)

BUS_ACCESS_CYCLES = 4
"""Nominal cycles of one register access (the RTL takes 3 to 5)."""

STATUS_DONE, STATUS_WV_DONE, STATUS_ABORTED = 1, 4, 2


def _signed(value: int, bits: int) -> int:
    code = value & ((1 << bits) - 1)
    return code - (1 << bits) if code >> (bits - 1) else code


class _WriteVerifyStop(Exception):
    """A verify read timed out; the write-verify engine stops the run."""


def program_op_cycles(width_cycles: int) -> int:
    """Cycles of a PROGRAM operation: CONFIGURE, PULSE_SETUP, PULSE_ON, the pulse, FINISH."""
    return width_cycles + 4


def sequencer_timeline(n_inputs: int, bias_ready_cycles: int, settle_cycles: int, adc_latency_cycles: int,
                       mask: list[bool], watchdog: int, *, ready_never: bool = False,
                       adc_hang: bool = False) -> dict:
    """Return the cycle of each analog event of one operation, relative to the accept edge.

    Mirrors `amc.rtl.sequencer.Sequencer` state by state (the module docstring
    there lists the states): 3 cycles per DAC channel, CONFIGURE and ENABLE,
    the ready wait, ``settle_cycles`` of SETTLE, then per output channel one
    CONV_NEXT cycle plus, when converted, CONV_SETUP, CONV_START and the
    converter latency.
    """
    enable = 3 * n_inputs + 2
    events = {"dac_loads": [3 * (i + 1) for i in range(n_inputs)], "enable": enable, "samples": [],
              "settle_timeout": False, "conv_timeout": False}
    if ready_never or bias_ready_cycles > watchdog:
        finish = enable + watchdog
        events["settle_timeout"] = True
    else:
        cycle = enable + bias_ready_cycles + settle_cycles
        finish = None
        for channel, converted in enumerate(mask):
            if not converted:
                cycle += 1
                continue
            start = cycle + 3
            events["samples"].append((channel, start))
            if adc_hang or adc_latency_cycles > watchdog:
                finish = start + watchdog
                events["conv_timeout"] = True
                break
            cycle = start + adc_latency_cycles
        if finish is None:
            finish = cycle + 1
    events["finish"] = finish
    events["disable"] = finish + 1
    events["op_cycles"] = finish + 1
    return events


class ControllerModel:
    """Model-only backend: registers and sequencing in Python, analog side from the model.

    Parameters
    ----------
    params : ControllerParams
    macro : AnalogMacro
    faults : FaultInjection, optional
    """

    def __init__(self, params: ControllerParams, macro, faults: FaultInjection | None = None):
        self.params = params
        self.regs = RegisterMap(params)
        self.core = AnalogBridgeCore(macro, params, faults)
        self.faults = self.core.faults
        self._values = {reg.name: reg.reset for reg in self.regs.registers}
        self._dac = [0] * params.lines
        self._target = [0] * params.cells
        self._result = [0] * params.cells
        self._adc = [0] * params.lines
        self._converted = 0
        self._status = 0
        self._cycle = 0
        self.transactions = 0
        log.info("%s", self.core.describe())

    # RegisterBus protocol.

    async def read(self, address: int) -> int:
        return self.read_now(address)

    async def write(self, address: int, value: int, strobe: int = 0xF) -> None:
        self.write_now(address, value, strobe)

    async def wait_interrupt(self, timeout_cycles: int) -> bool:
        return self._irq()

    def now_cycles(self) -> int:
        return self._cycle

    # Synchronous access, usable without an event loop.

    def read_now(self, address: int) -> int:
        self._tick()
        regs = self.regs
        if regs.dac.contains(address):
            code = self._dac[(address - regs.dac.offset) >> 2]
            return code & 0xFFFF_FFFF
        if regs.adc.contains(address):
            channel = (address - regs.adc.offset) >> 2
            return self._adc[channel] | ((self._converted >> channel & 1) << 31)
        if regs.target.contains(address):
            return self._target[(address - regs.target.offset) >> 2] & 0xFFFF_FFFF
        if regs.result.contains(address):
            return self._result[(address - regs.result.offset) >> 2]
        reg = self._register_at(address)
        if reg is None:
            self._status |= 1 << ErrorBit.BUS_ERROR
            raise BusError("read", address, 0b10)
        if reg.access is Access.WO:
            return 0
        if reg.name == "STATUS":
            return self._status
        return self._values[reg.name]

    def write_now(self, address: int, value: int, strobe: int = 0xF) -> None:
        self._tick()
        regs = self.regs
        value &= 0xFFFF_FFFF
        if regs.dac.contains(address):
            if strobe & 0b11 == 0b11:
                self._dac[(address - regs.dac.offset) >> 2] = _signed(value, self.params.dac_bits)
            return
        if regs.target.contains(address):
            if strobe & 0b11 == 0b11:
                self._target[(address - regs.target.offset) >> 2] = _signed(value, self.params.adc_bits)
            return
        reg = self._register_at(address)
        if reg is None or reg.access is Access.RO:
            self._status |= 1 << ErrorBit.BUS_ERROR
            raise BusError("write", address, 0b10)
        lanes = sum(0xFF << (8 * lane) for lane in range(4) if strobe >> lane & 1)
        if reg.name == "CTRL":
            if value & lanes & 1:
                self._start()
            return
        if reg.name == "WV_CTRL":
            if value & lanes & 1:
                self._start_write_verify()
            return
        if reg.name == "STATUS":
            self._status &= ~(value & lanes & ~1)
            return
        old = self._values[reg.name]
        merged = (old & ~lanes) | (value & lanes)
        self._values[reg.name] = merged & self._field_mask(reg.name)

    # Internals.

    def _tick(self) -> None:
        self.transactions += 1
        self._cycle += BUS_ACCESS_CYCLES

    def _irq(self) -> bool:
        return bool(self._status & ~1)

    def _register_at(self, address: int):
        for reg in self.regs.registers:
            if reg.offset == address & ~3:
                return reg
        return None

    def _field_mask(self, name: str) -> int:
        """Return the bits of register `name` that hold a value (the RTL's field widths)."""
        p = self.params
        counter = (1 << p.counter_width) - 1
        amplitude = (1 << p.amplitude_bits) - 1
        widths = {
            "MODE": 0x10F, "ARRAY": 0xFF, "ROWS_ACTIVE": 0xFFFF, "COLS_ACTIVE": 0xFFFF,
            "SETTLE_CYCLES": counter, "WATCHDOG_CYCLES": counter,
            "WV_ARRAY": 0x1FF, "WV_ROWS": 0xFFFF, "WV_COLS": 0xFFFF,
            "WV_SET": amplitude | (amplitude << 16), "WV_RESET": amplitude | (amplitude << 16),
            "WV_PULSE_WIDTH": 0xFFFF, "WV_TOLERANCE": 0xFF, "WV_MAX_PULSES": 0xFF,
            "WV_READ_CODE": (1 << p.dac_bits) - 1, "WV_SETTLE": counter,
        }
        if name.startswith("OUT_MASK"):
            index = int(name[len("OUT_MASK"):])
            return (1 << max(0, min(32, p.lines - 32 * index))) - 1
        return widths[name]

    def _check(self) -> InvalidReason:
        """Return the first failing check, in the order of `amc.rtl.op_check.OperationCheck`."""
        p = self.params
        v = self._values
        try:
            mode = mode_by_code(v["MODE"] & 0xF)
        except KeyError:
            return InvalidReason.UNKNOWN_MODE
        if not mode.host:
            return InvalidReason.ENGINE_MODE
        rows, cols = v["ROWS_ACTIVE"], v["COLS_ACTIVE"]
        mask = self._mask()
        outputs = mode.output_count(rows, cols)
        if v["ARRAY"] >= p.n_arrays:
            return InvalidReason.ARRAY_OUT_OF_RANGE
        if rows == 0 or rows > p.rows:
            return InvalidReason.ROWS_OUT_OF_RANGE
        if cols == 0 or cols > p.cols:
            return InvalidReason.COLS_OUT_OF_RANGE
        if mode.square and rows != cols:
            return InvalidReason.NOT_SQUARE
        if mask == 0:
            return InvalidReason.EMPTY_OUTPUT_MASK
        if mask >> outputs:
            return InvalidReason.MASK_BEYOND_OUTPUTS
        if v["SETTLE_CYCLES"] == 0:
            return InvalidReason.ZERO_SETTLE
        if v["WATCHDOG_CYCLES"] == 0:
            return InvalidReason.ZERO_WATCHDOG
        return InvalidReason.NONE

    def _mask(self) -> int:
        return sum(self._values[f"OUT_MASK{k}"] << (32 * k) for k in range(self.params.mask_words))

    def _start(self) -> None:
        # START keeps what it does not own: the bus error and the write-verify flags.
        keep = self._status & ((1 << ErrorBit.BUS_ERROR) | (1 << STATUS_WV_DONE) | (1 << ErrorBit.WV_CELL_FAIL))
        reason = self._check()
        self._values["INVALID_REASON"] = int(reason)
        if reason is not InvalidReason.NONE:
            self._status = keep | (1 << ErrorBit.INVALID_CONFIG)
            return
        self._status = keep
        self._run()

    def _run(self) -> None:
        p = self.params
        v = self._values
        mode = mode_by_code(v["MODE"] & 0xF)
        signed = bool(v["MODE"] >> 8 & 1)
        rows, cols = v["ROWS_ACTIVE"], v["COLS_ACTIVE"]
        n_inputs = mode.input_count(rows, cols)
        outputs = mode.output_count(rows, cols)
        mask_bits = self._mask()
        mask = [bool(mask_bits >> channel & 1) for channel in range(outputs)]
        timeline = sequencer_timeline(
            n_inputs, p.bias_ready_cycles, v["SETTLE_CYCLES"], p.adc_latency_cycles, mask,
            v["WATCHDOG_CYCLES"], ready_never=self.faults.ready_never, adc_hang=self.faults.adc_hang,
        )
        period = p.clock_period_ps
        origin = self._cycle + 1
        core = self.core

        for channel in range(n_inputs):
            core.on_dac_load(channel, self._dac[channel] & ((1 << p.dac_bits) - 1))
        conn = int(mode.conn) | (int(Conn.NEG_INVERTERS) if signed else 0)
        row_en = (1 << rows) - 1
        col_en = (1 << cols) - 1
        core.on_enable((origin + timeline["enable"]) * period, conn, 1 << v["ARRAY"], row_en, col_en)

        self._converted = 0
        clip_count = 0
        last = len(timeline["samples"]) - 1
        for position, (channel, cycle) in enumerate(timeline["samples"]):
            answer = core.on_adc_start((origin + cycle) * period, channel)
            if answer is None or (timeline["conv_timeout"] and position == last):
                break
            code = answer.code_bits
            bits = p.adc_bits
            signed_code = code - (1 << bits) if code >> (bits - 1) else code
            self._adc[channel] = (signed_code & 0xFFFF) | (int(answer.overrange) << 16)
            self._converted |= 1 << channel
            clip_count += int(answer.overrange)
        core.on_disable((origin + timeline["disable"]) * period)

        status = 1 << 1
        if clip_count:
            status |= 1 << ErrorBit.ADC_CLIP
        if timeline["settle_timeout"]:
            status |= 1 << ErrorBit.SETTLE_TIMEOUT
        if timeline["conv_timeout"]:
            status |= 1 << ErrorBit.CONV_TIMEOUT
        self._status |= status
        self._values["OP_CYCLES"] = timeline["op_cycles"]
        self._values["CLIP_COUNT"] = clip_count
        self._values["OP_COUNT"] = (self._values["OP_COUNT"] + 1) & 0xFFFF_FFFF
        self._cycle = origin + timeline["disable"]

    # Write-verify engine, mirroring amc.rtl.write_verify state by state.

    def _check_write_verify(self) -> InvalidReason:
        """Return the first failing write-verify check, in the order of the RTL register file."""
        p = self.params
        v = self._values
        row_first, row_last = v["WV_ROWS"] & 0xFF, v["WV_ROWS"] >> 8
        col_first, col_last = v["WV_COLS"] & 0xFF, v["WV_COLS"] >> 8
        if v["WV_ARRAY"] & 0xFF >= p.n_arrays:
            return InvalidReason.WV_ARRAY_OUT_OF_RANGE
        if row_first > row_last or row_last >= p.rows or col_first > col_last or col_last >= p.cols:
            return InvalidReason.WV_REGION
        if v["WV_MAX_PULSES"] == 0:
            return InvalidReason.WV_ZERO_PULSES
        if v["WV_PULSE_WIDTH"] == 0:
            return InvalidReason.WV_ZERO_WIDTH
        if v["WV_SETTLE"] == 0:
            return InvalidReason.ZERO_SETTLE
        if v["WATCHDOG_CYCLES"] == 0:
            return InvalidReason.ZERO_WATCHDOG
        return InvalidReason.NONE

    def _start_write_verify(self) -> None:
        # A write-verify start keeps the host's done flag and the bus error.
        keep = self._status & ((1 << ErrorBit.BUS_ERROR) | (1 << STATUS_DONE))
        reason = self._check_write_verify()
        self._values["INVALID_REASON"] = int(reason)
        if reason is not InvalidReason.NONE:
            self._status = keep | (1 << ErrorBit.INVALID_CONFIG)
            return
        self._status = keep
        self._run_write_verify()

    def _run_write_verify(self) -> None:
        p = self.params
        v = self._values
        period = p.clock_period_ps
        array = v["WV_ARRAY"] & 0xFF
        half = v["WV_ARRAY"] >> 8 & 1
        rows = range(v["WV_ROWS"] & 0xFF, (v["WV_ROWS"] >> 8) + 1)
        cols = range(v["WV_COLS"] & 0xFF, (v["WV_COLS"] >> 8) + 1)
        amplitude_mask = (1 << p.amplitude_bits) - 1
        settings = WriteVerifySettings(
            set_start=v["WV_SET"] & amplitude_mask, set_step=v["WV_SET"] >> 16 & amplitude_mask,
            reset_start=v["WV_RESET"] & amplitude_mask, reset_step=v["WV_RESET"] >> 16 & amplitude_mask,
            tolerance=v["WV_TOLERANCE"], max_pulses=v["WV_MAX_PULSES"], amplitude_max=amplitude_mask,
        )
        width = v["WV_PULSE_WIDTH"]
        read_code = v["WV_READ_CODE"]
        watchdog = v["WATCHDOG_CYCLES"]
        verify = mode_by_name("VERIFY")
        program = mode_by_name("PROGRAM")
        half_flag = int(Conn.HALF_NEG) if half else 0
        timeline = sequencer_timeline(1, p.bias_ready_cycles, v["WV_SETTLE"], p.adc_latency_cycles, [True],
                                      watchdog, ready_never=self.faults.ready_never, adc_hang=self.faults.adc_hang)
        core = self.core
        # clock["cycle"] is the edge at which the engine entered its current
        # state; the WV_CTRL write is at edge self._cycle, CELL_BEGIN follows.
        first_edge = self._cycle + 1
        clock = {"cycle": first_edge, "pulses": 0}

        def read(row: int, col: int) -> int:
            # From READ_ISSUE: the sequencer accepts on the next edge; DECIDE
            # (or FINISH after a timeout) follows the operation.
            origin = clock["cycle"] + 1
            core.on_dac_load(row, read_code)
            core.on_enable((origin + timeline["enable"]) * period, int(verify.conn) | half_flag, 1 << array,
                           1 << row, 1 << col)
            answer = None
            if timeline["samples"]:
                answer = core.on_adc_start((origin + timeline["samples"][0][1]) * period, col)
            core.on_disable((origin + timeline["disable"]) * period)
            clock["cycle"] = origin + timeline["op_cycles"]
            if timeline["settle_timeout"] or timeline["conv_timeout"] or answer is None:
                raise _WriteVerifyStop(timeline)
            return _signed(answer.code_bits, p.adc_bits)

        def pulse(row: int, col: int, polarity: Polarity, amplitude: int) -> None:
            # From DECIDE: PULSE_ISSUE, the accept edge, the PROGRAM operation
            # (its pulse starts 3 cycles after the accept), then READ_ISSUE.
            origin = clock["cycle"] + 2
            core.on_pulse((origin + 3) * period, int(program.conn) | half_flag, 1 << array, 1 << row, 1 << col,
                          int(polarity), amplitude, width)
            clock["cycle"] = origin + program_op_cycles(width)
            clock["pulses"] += 1

        targets = np.zeros((p.rows, p.cols), dtype=int)
        for row in rows:
            for col in cols:
                targets[row, col] = self._target[row * p.cols + col]

        # Per cell: CELL_BEGIN and TARGET before the first read, RECORD and NEXT after the decision.
        outcome_cells = []
        stopped = False

        def cell_start(row: int, col: int) -> None:
            # CELL_BEGIN and TARGET, then READ_ISSUE.
            clock["cycle"] += 2

        try:
            run_write_verify(targets, rows, cols, settings, read, pulse, on_cell_start=cell_start,
                             on_cell_done=lambda outcome: self._record_cell(outcome, clock, outcome_cells))
        except _WriteVerifyStop:
            stopped = True

        status = 1 << STATUS_WV_DONE
        if stopped:
            status |= (1 << ErrorBit.SETTLE_TIMEOUT) if timeline["settle_timeout"] else (1 << ErrorBit.CONV_TIMEOUT)
        failed = sum(1 for cell in outcome_cells if not cell.passed)
        if failed and not stopped:
            status |= 1 << ErrorBit.WV_CELL_FAIL
        self._status |= status
        finish_edge = clock["cycle"] + 1
        self._values["WV_CELLS_DONE"] = len(outcome_cells)
        self._values["WV_CELLS_FAILED"] = failed
        self._values["WV_PULSES"] = clock["pulses"]
        self._values["WV_CYCLES"] = finish_edge - first_edge + 1
        self._cycle = finish_edge

    def _record_cell(self, outcome, clock, cells) -> None:
        """RECORD and NEXT of one cell: store the result word."""
        p = self.params
        word = (outcome.pulses & 0xFF) | (int(outcome.passed) << RESULT_WORD_PASS) | (
            int(not outcome.passed) << RESULT_WORD_FAIL)
        self._result[outcome.row * p.cols + outcome.col] = word
        # From DECIDE: RECORD, NEXT, then CELL_BEGIN of the next cell or FINISH.
        clock["cycle"] += 3
        cells.append(outcome)
