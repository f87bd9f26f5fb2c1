"""Register map of the controller's AXI4-Lite interface.

The map is data: the RTL decodes addresses from it, the host driver takes its
offsets and fields from it, and ``amc verilog`` writes it as Markdown. All
registers are 32 bits wide at word-aligned byte offsets.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..model.switch_matrix import MODES
from .params import ControllerParams

__all__ = [
    "Access",
    "Field",
    "Register",
    "Buffer",
    "ErrorBit",
    "InvalidReason",
    "RegisterMap",
    "ID_MAGIC",
    "VERSION",
    "ADC_WORD_OVERRANGE",
    "ADC_WORD_VALID",
    "RESULT_WORD_PASS",
    "RESULT_WORD_FAIL",
]

ID_MAGIC = 0x414D_4331
"""Value of the ID register: ASCII "AMC1"."""

VERSION = (0 << 16) | 1
"""Register map version, major in bits 31:16, minor in bits 15:0."""


class Access(enum.Enum):
    RO = "read-only"
    RW = "read-write"
    WO = "write-only, reads as zero"
    RW1C = "read, write 1 to clear"


@dataclass(frozen=True)
class Field:
    name: str
    lsb: int
    width: int
    doc: str

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lsb

    def extract(self, word: int) -> int:
        return (word >> self.lsb) & ((1 << self.width) - 1)


@dataclass(frozen=True)
class Register:
    name: str
    offset: int
    access: Access
    doc: str
    fields: tuple[Field, ...] = ()
    reset: int = 0

    def field(self, name: str) -> Field:
        for item in self.fields:
            if item.name == name:
                return item
        raise KeyError(f"register {self.name} has no field {name!r}")


@dataclass(frozen=True)
class Buffer:
    """A window of consecutive 32-bit words, one per channel."""

    name: str
    offset: int
    depth: int
    access: Access
    doc: str

    def address(self, index: int) -> int:
        if not 0 <= index < self.depth:
            raise IndexError(f"{self.name} index {index} is outside 0..{self.depth - 1}")
        return self.offset + 4 * index

    def contains(self, address: int) -> bool:
        return self.offset <= address < self.offset + 4 * self.depth


class ErrorBit(enum.IntEnum):
    """Sticky error flags in STATUS; the value is the bit position."""

    ADC_CLIP = 8
    SETTLE_TIMEOUT = 9
    CONV_TIMEOUT = 10
    INVALID_CONFIG = 11
    BUS_ERROR = 12
    WV_CELL_FAIL = 13


ERROR_DOCS = {
    ErrorBit.ADC_CLIP: "an ADC input was beyond full scale (code saturated) in the last operation",
    ErrorBit.SETTLE_TIMEOUT: "the analog block did not raise ready within WATCHDOG_CYCLES after enable",
    ErrorBit.CONV_TIMEOUT: "an ADC conversion did not complete within WATCHDOG_CYCLES",
    ErrorBit.INVALID_CONFIG: "START was rejected because the configuration is invalid; see INVALID_REASON",
    ErrorBit.BUS_ERROR: "a bus access was rejected with SLVERR (unmapped address, read-only register, "
                        "or configuration write while busy)",
    ErrorBit.WV_CELL_FAIL: "write-verify marked at least one cell failed (see WV_CELLS_FAILED and the RESULT buffer)",
}


class InvalidReason(enum.IntEnum):
    """Codes of the INVALID_REASON register."""

    NONE = 0
    UNKNOWN_MODE = 1
    ARRAY_OUT_OF_RANGE = 2
    ROWS_OUT_OF_RANGE = 3
    COLS_OUT_OF_RANGE = 4
    NOT_SQUARE = 5
    EMPTY_OUTPUT_MASK = 6
    MASK_BEYOND_OUTPUTS = 7
    ZERO_SETTLE = 8
    ZERO_WATCHDOG = 9
    ENGINE_MODE = 10
    WV_ARRAY_OUT_OF_RANGE = 11
    WV_REGION = 12
    WV_ZERO_PULSES = 13
    WV_ZERO_WIDTH = 14


INVALID_REASON_DOCS = {
    InvalidReason.NONE: "no error",
    InvalidReason.UNKNOWN_MODE: "MODE.mode is not a code of the mode table",
    InvalidReason.ARRAY_OUT_OF_RANGE: "ARRAY is not below the number of arrays",
    InvalidReason.ROWS_OUT_OF_RANGE: "ROWS_ACTIVE is 0 or above the array rows",
    InvalidReason.COLS_OUT_OF_RANGE: "COLS_ACTIVE is 0 or above the array columns",
    InvalidReason.NOT_SQUARE: "the mode needs ROWS_ACTIVE equal to COLS_ACTIVE",
    InvalidReason.EMPTY_OUTPUT_MASK: "OUT_MASK selects no channel",
    InvalidReason.MASK_BEYOND_OUTPUTS: "OUT_MASK selects a channel beyond the active outputs of the mode",
    InvalidReason.ZERO_SETTLE: "SETTLE_CYCLES is 0",
    InvalidReason.ZERO_WATCHDOG: "WATCHDOG_CYCLES is 0",
    InvalidReason.ENGINE_MODE: "MODE.mode is issued only by the write-verify engine; start it with WV_CTRL",
    InvalidReason.WV_ARRAY_OUT_OF_RANGE: "WV_ARRAY.array is not below the number of arrays",
    InvalidReason.WV_REGION: "WV_ROWS or WV_COLS: first above last, or last outside the array",
    InvalidReason.WV_ZERO_PULSES: "WV_MAX_PULSES is 0",
    InvalidReason.WV_ZERO_WIDTH: "WV_PULSE_WIDTH is 0",
}
"""Write-verify starts are also rejected with ZERO_SETTLE (WV_SETTLE is 0) and ZERO_WATCHDOG."""

RESULT_WORD_PASS = 8
"""Bit of a write-verify result word set when the cell passed."""

RESULT_WORD_FAIL = 9
"""Bit of a write-verify result word set when the cell failed (max pulses reached)."""

ADC_WORD_OVERRANGE = 16
"""Bit of an ADC result word that flags an over-range conversion."""

ADC_WORD_VALID = 31
"""Bit of an ADC result word set once the channel was converted in the last operation."""


class RegisterMap:
    """Register and buffer layout for one set of controller parameters."""

    ID_BASE = 0x000
    CONTROL_BASE = 0x040
    MASK_BASE = 0x080
    DAC_BASE = 0x400
    ADC_BASE = 0x800

    def __init__(self, params: ControllerParams):
        self.params = params
        p = params
        mode_bits = sum(1 << entry.code for entry in MODES if entry.host)
        self.registers: tuple[Register, ...] = (
            Register("ID", 0x000, Access.RO, 'identification, ASCII "AMC1"', reset=ID_MAGIC),
            Register("VERSION", 0x004, Access.RO, "register map version", (
                Field("minor", 0, 16, "minor version"), Field("major", 16, 16, "major version"),
            ), reset=VERSION),
            Register("ROWS", 0x008, Access.RO, "row lines per array", reset=p.rows),
            Register("COLS", 0x00C, Access.RO, "column lines per array", reset=p.cols),
            Register("ARRAYS", 0x010, Access.RO, "number of arrays", reset=p.n_arrays),
            Register("CONVERTERS", 0x014, Access.RO, "converter resolutions", (
                Field("dac_bits", 0, 8, "DAC resolution in bits"),
                Field("adc_bits", 8, 8, "ADC resolution in bits"),
                Field("lines", 16, 16, "DAC and ADC channels (max of rows and columns)"),
            ), reset=p.dac_bits | (p.adc_bits << 8) | (p.lines << 16)),
            Register("CLOCK_PERIOD_PS", 0x018, Access.RO, "controller clock period in picoseconds",
                     reset=p.clock_period_ps),
            Register("MODES", 0x01C, Access.RO, "bit k set if the host may start mode code k", reset=mode_bits),
            Register("COUNTER_WIDTH", 0x020, Access.RO, "width of the settle and watchdog counters in bits",
                     reset=p.counter_width),
            Register("CTRL", 0x040, Access.WO, "control strobes", (
                Field("start", 0, 1, "write 1: check the configuration and start an operation"),
                Field("abort", 1, 1, "write 1: stop the running operation or write-verify run and open all switches"),
            )),
            Register("STATUS", 0x044, Access.RW1C, "status; DONE, ABORTED and error bits are sticky", (
                Field("busy", 0, 1, "an operation is running (read-only)"),
                Field("done", 1, 1, "the last operation finished"),
                Field("aborted", 2, 1, "the last operation or write-verify run was aborted"),
                Field("wv_busy", 3, 1, "a write-verify run is in progress (read-only)"),
                Field("wv_done", 4, 1, "the last write-verify run finished"),
                *(Field(bit.name.lower(), int(bit), 1, ERROR_DOCS[bit]) for bit in ErrorBit),
            )),
            Register("MODE", 0x048, Access.RW, "operation mode", (
                Field("mode", 0, 4, "mode code from the mode table"),
                Field("signed", 8, 1, "1: signed matrix on the differential pair (inverters on)"),
            )),
            Register("ARRAY", 0x04C, Access.RW, "array index used by the operation"),
            Register("ROWS_ACTIVE", 0x050, Access.RW, "active row lines, 1..ROWS", reset=p.rows),
            Register("COLS_ACTIVE", 0x054, Access.RW, "active column lines, 1..COLS", reset=p.cols),
            Register("SETTLE_CYCLES", 0x058, Access.RW,
                     "clock cycles from analog ready to the first ADC sample",
                     reset=p.default_settle_cycles),
            Register("WATCHDOG_CYCLES", 0x05C, Access.RW,
                     "longest wait for analog ready or an ADC conversion, in clock cycles",
                     reset=p.default_watchdog_cycles),
            Register("OP_CYCLES", 0x060, Access.RO, "clock cycles of the last operation, START to done"),
            Register("CLIP_COUNT", 0x064, Access.RO, "over-range conversions in the last operation"),
            Register("INVALID_REASON", 0x068, Access.RO, "why the last START was rejected (InvalidReason code)"),
            Register("OP_COUNT", 0x06C, Access.RO, "operations completed since reset"),
            *(
                Register(f"OUT_MASK{k}", self.MASK_BASE + 4 * k, Access.RW,
                         f"ADC channel enable, channels {32 * k}..{32 * k + 31}",
                         reset=_mask_word(p.lines, k))
                for k in range(p.mask_words)
            ),
            Register("WV_CTRL", 0x0C0, Access.WO, "write-verify control", (
                Field("start", 0, 1, "write 1: check the write-verify registers and program the region"),
            )),
            Register("WV_ARRAY", 0x0C4, Access.RW, "array and half-array to program", (
                Field("array", 0, 8, "array index"),
                Field("half", 8, 1, "0: positive half, 1: negative half"),
            )),
            Register("WV_ROWS", 0x0C8, Access.RW, "rows of the region, inclusive", (
                Field("first", 0, 8, "first row"), Field("last", 8, 8, "last row"),
            ), reset=(p.rows - 1) << 8),
            Register("WV_COLS", 0x0CC, Access.RW, "columns of the region, inclusive", (
                Field("first", 0, 8, "first column"), Field("last", 8, 8, "last column"),
            ), reset=(p.cols - 1) << 8),
            Register("WV_SET", 0x0D0, Access.RW, "SET gate-voltage amplitude codes", (
                Field("start", 0, 12, "amplitude of the first SET pulse after a polarity change"),
                Field("step", 16, 12, "added per consecutive SET pulse"),
            ), reset=p.default_set_start_code | (p.default_set_step_code << 16)),
            Register("WV_RESET", 0x0D4, Access.RW, "RESET source-line amplitude codes", (
                Field("start", 0, 12, "amplitude of the first RESET pulse after a polarity change"),
                Field("step", 16, 12, "added per consecutive RESET pulse"),
            ), reset=p.default_reset_start_code | (p.default_reset_step_code << 16)),
            Register("WV_PULSE_WIDTH", 0x0D8, Access.RW, "pulse width in clock cycles",
                     reset=p.default_pulse_width_cycles),
            Register("WV_TOLERANCE", 0x0DC, Access.RW, "pass window: |code - target| <= tolerance (ADC codes)",
                     reset=p.macro.programming.tolerance_codes),
            Register("WV_MAX_PULSES", 0x0E0, Access.RW, "pulses after which a cell fails",
                     reset=p.macro.programming.max_pulses),
            Register("WV_READ_CODE", 0x0E4, Access.RW, "DAC code of the verify read voltage (two's complement)",
                     reset=p.default_read_code & ((1 << p.dac_bits) - 1)),
            Register("WV_SETTLE", 0x0E8, Access.RW, "settle cycles of each verify read",
                     reset=p.default_verify_settle_cycles),
            Register("WV_CELLS_DONE", 0x0EC, Access.RO, "cells finished (passed or failed) in the current or last run"),
            Register("WV_CELLS_FAILED", 0x0F0, Access.RO, "cells failed in the current or last run"),
            Register("WV_PULSES", 0x0F4, Access.RO, "pulses applied in the current or last run"),
            Register("WV_CYCLES", 0x0F8, Access.RO, "clock cycles of the current or last run"),
        )
        self.dac = Buffer("DAC", self.DAC_BASE, p.lines, Access.RW,
                          "DAC code of each input line, two's complement in the low DAC_BITS bits")
        self.adc = Buffer("ADC", self.ADC_BASE, p.lines, Access.RO,
                          "ADC result of each channel: bits 15:0 code (sign-extended), "
                          f"bit {ADC_WORD_OVERRANGE} over-range, bit {ADC_WORD_VALID} valid")
        self.target = Buffer("TARGET", p.target_base, p.cells, Access.RW,
                             "write-verify target ADC code of cell (r, c) at index r * COLS + c")
        self.result = Buffer("RESULT", p.result_base, p.cells, Access.RO,
                             "write-verify result of cell (r, c) at index r * COLS + c: bits 7:0 pulses, "
                             f"bit {RESULT_WORD_PASS} passed, bit {RESULT_WORD_FAIL} failed")
        self._by_name = {reg.name: reg for reg in self.registers}
        offsets = [reg.offset for reg in self.registers]
        assert len(set(offsets)) == len(offsets), "register offsets must be unique"
        assert self.MASK_BASE + 4 * p.mask_words <= self.DAC_BASE
        assert self.adc.offset + 4 * self.adc.depth <= self.target.offset
        assert self.result.offset + 4 * self.result.depth <= (1 << p.addr_width)

    def __getitem__(self, name: str) -> Register:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no register named {name!r}") from None

    def mask_register(self, index: int) -> Register:
        return self[f"OUT_MASK{index}"]

    def markdown(self) -> str:
        """Return the register map as a Markdown document."""
        p = self.params
        lines = [
            "# Register map",
            "",
            "Generated by `amc verilog`; do not edit by hand. AXI4-Lite, 32-bit data, "
            f"{p.addr_width}-bit byte addresses. Unmapped addresses, writes to read-only "
            "registers and configuration writes while BUSY return SLVERR and set STATUS.bus_error.",
            "",
            f"Parameters: {p.rows} x {p.cols} cells, {p.n_arrays} arrays, {p.lines} DAC and ADC channels, "
            f"{p.dac_bits}-bit DAC, {p.adc_bits}-bit ADC, clock period {p.clock_period_ps} ps.",
            "",
            "| offset | name | access | reset | description |",
            "|---|---|---|---|---|",
        ]
        for reg in self.registers:
            lines.append(f"| 0x{reg.offset:03x} | {reg.name} | {reg.access.name} | 0x{reg.reset:x} | {reg.doc} |")
        for buf in (self.dac, self.adc, self.target, self.result):
            end = buf.offset + 4 * (buf.depth - 1)
            lines.append(f"| 0x{buf.offset:03x}-0x{end:03x} | {buf.name}[{buf.depth}] | {buf.access.name} | 0 | {buf.doc} |")
        lines += ["", "## Fields", ""]
        for reg in self.registers:
            if not reg.fields:
                continue
            lines += [f"### {reg.name}", "", "| bits | field | description |", "|---|---|---|"]
            for item in reg.fields:
                bits = f"{item.lsb}" if item.width == 1 else f"{item.lsb + item.width - 1}:{item.lsb}"
                lines.append(f"| {bits} | {item.name} | {item.doc} |")
            lines.append("")
        lines += ["## INVALID_REASON codes", "", "| code | meaning |", "|---|---|"]
        for reason in InvalidReason:
            lines.append(f"| {int(reason)} | {reason.name}: {INVALID_REASON_DOCS[reason]} |")
        return "\n".join(lines) + "\n"


def _mask_word(lines: int, index: int) -> int:
    """Return the reset value of mask word `index`: every existing channel enabled."""
    remaining = max(0, min(32, lines - 32 * index))
    return (1 << remaining) - 1
