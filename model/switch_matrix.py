"""Switch matrix of the reconfigurable macro and its mode table.

The switch matrix connects the array lines, the op-amps, the DACs and the ADC
multiplexer. Its state is a set of connection flags (`Conn`) plus the selected
array and the enabled row and column lines. Each computing mode is an entry of
`MODES` that lists the flags it closes. The controller RTL builds its
switch-control word from this table, the analog model decodes the word back
into a circuit with it, and ``amc verilog`` prints it as documentation, so the
three cannot drift apart.

A new mode (GINV least squares, EGV eigenvector) is a new `Conn` flag where it
needs a new connection, and a new `ModeEntry`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Conn",
    "LineSet",
    "ModeEntry",
    "MODES",
    "mode_by_code",
    "mode_by_name",
    "OPTION_FLAGS",
    "SwitchState",
    "SwitchDecodeError",
    "decode_switch_state",
    "mode_table_markdown",
]


class Conn(enum.IntFlag):
    """Connection flags of the switch matrix, one transmission-gate group each."""

    DAC_ROWS_GIN = 1 << 0
    """DAC i drives row line i through the input conductance G_in (current injection)."""
    DAC_COLS = 1 << 1
    """DAC j drives column line j directly (voltage input)."""
    DAC_ROWS = 1 << 2
    """DAC i drives row line i directly (voltage input)."""
    OPA_SENSE_ROWS = 1 << 3
    """Op-amp i has its inverting input on row line i (virtual ground)."""
    OPA_SENSE_COLS = 1 << 4
    """Op-amp j has its inverting input on column line j (virtual ground)."""
    OPA_FEEDBACK_GF = 1 << 5
    """Feedback conductance G_f across each op-amp (transimpedance amplifier)."""
    OPA_DRIVE_COLS = 1 << 6
    """Op-amp i output drives column line i (closed loop through the array)."""
    NEG_INVERTERS = 1 << 7
    """Inverting amplifiers drive the negative half-array with the negated line
    voltages, so the pair computes with G+ - G- (signed matrices)."""
    ADC_OPA_OUT = 1 << 8
    """The ADC multiplexer samples the op-amp outputs."""
    OPA_FEEDBACK_GV = 1 << 9
    """Verify feedback conductance G_v across each op-amp (cell read at a higher gain than G_f)."""
    HALF_NEG = 1 << 10
    """The DACs, op-amps and pulse drivers reach the negative half-array instead of the
    positive one (single-cell access of a differential pair)."""
    CELL_SELECT = 1 << 11
    """Only the selected cell's row and column lines are enabled (one-hot line enables)."""
    PULSE_DRIVERS = 1 << 12
    """The SET/RESET pulse drivers reach the word, bit and source lines of the selected cell."""


CONN_WIDTH = len(Conn)
"""Width of the connection-flag field of the switch-control word, in bits."""


class LineSet(enum.Enum):
    """Which line set of the array a DAC bank drives or an op-amp bank senses."""

    ROWS = "rows"
    COLS = "cols"


@dataclass(frozen=True)
class ModeEntry:
    """One computing mode: its register code and the switches it closes."""

    code: int
    name: str
    conn: Conn
    inputs: LineSet
    """Line set the DACs drive; its active count is the input vector length."""
    outputs: LineSet
    """Line set the op-amps sense; its active count is the output vector length."""
    square: bool
    """True if the active row and column counts must be equal."""
    equation: str
    description: str
    host: bool = True
    """True if the host may start the mode through CTRL.start; False for the modes
    only the write-verify engine issues."""

    @property
    def cell(self) -> bool:
        """True for single-cell modes (one row and one column line enabled)."""
        return bool(self.conn & Conn.CELL_SELECT)

    def input_count(self, rows_active: int, cols_active: int) -> int:
        if self.cell:
            return 1
        return rows_active if self.inputs is LineSet.ROWS else cols_active

    def output_count(self, rows_active: int, cols_active: int) -> int:
        if self.cell:
            return 1
        return rows_active if self.outputs is LineSet.ROWS else cols_active


MODES: tuple[ModeEntry, ...] = (
    ModeEntry(
        code=0,
        name="MVM",
        conn=Conn.DAC_COLS | Conn.OPA_SENSE_ROWS | Conn.OPA_FEEDBACK_GF | Conn.ADC_OPA_OUT,
        inputs=LineSet.COLS,
        outputs=LineSet.ROWS,
        square=False,
        equation="y = -(1/G_f) G x",
        description="Open-loop multiply: DACs drive the columns, one TIA per row.",
    ),
    ModeEntry(
        code=1,
        name="MVM_T",
        conn=Conn.DAC_ROWS | Conn.OPA_SENSE_COLS | Conn.OPA_FEEDBACK_GF | Conn.ADC_OPA_OUT,
        inputs=LineSet.ROWS,
        outputs=LineSet.COLS,
        square=False,
        equation="y = -(1/G_f) G^T x",
        description="Transposed multiply: DACs drive the rows, one TIA per column.",
    ),
    ModeEntry(
        code=2,
        name="INV",
        conn=Conn.DAC_ROWS_GIN | Conn.OPA_SENSE_ROWS | Conn.OPA_DRIVE_COLS | Conn.ADC_OPA_OUT,
        inputs=LineSet.ROWS,
        outputs=LineSet.ROWS,
        square=True,
        equation="V = -(G + D/A0)^-1 G_in V_in",
        description="Closed-loop solve: op-amp i senses row i and drives column i.",
    ),
    ModeEntry(
        code=3,
        name="VERIFY",
        conn=(Conn.DAC_ROWS | Conn.OPA_SENSE_COLS | Conn.OPA_FEEDBACK_GV | Conn.ADC_OPA_OUT
              | Conn.CELL_SELECT),
        inputs=LineSet.ROWS,
        outputs=LineSet.COLS,
        square=False,
        equation="V_c = -(G_rc / G_v) V_read",
        description="Verify read of cell (r, c): the DAC drives row r with the read voltage, a TIA "
                    "senses column c. Issued by the write-verify engine.",
        host=False,
    ),
    ModeEntry(
        code=4,
        name="PROGRAM",
        conn=Conn.PULSE_DRIVERS | Conn.CELL_SELECT,
        inputs=LineSet.ROWS,
        outputs=LineSet.COLS,
        square=False,
        equation="SET: G += f(V_gate); RESET: G -= f(V_sl)",
        description="Programming pulse on cell (r, c): SET with a stepped gate voltage or RESET with "
                    "a stepped source-line voltage. Issued by the write-verify engine.",
        host=False,
    ),
)

# Flags that an operation adds to its mode's connections: NEG_INVERTERS for a
# signed matrix, HALF_NEG for single-cell access to the negative half.
OPTION_FLAGS = Conn.NEG_INVERTERS | Conn.HALF_NEG

_BY_CODE = {entry.code: entry for entry in MODES}
_BY_NAME = {entry.name: entry for entry in MODES}
assert len(_BY_CODE) == len(MODES) and len(_BY_NAME) == len(MODES), "mode codes and names must be unique"

MODE_CODE_WIDTH = 4
"""Width of the mode field of the controller's MODE register, in bits."""
assert max(_BY_CODE) < (1 << MODE_CODE_WIDTH)


def mode_by_code(code: int) -> ModeEntry:
    """Return the mode with register code `code`; raise KeyError naming the valid codes."""
    try:
        return _BY_CODE[code]
    except KeyError:
        valid = ", ".join(f"{e.code} ({e.name})" for e in MODES)
        raise KeyError(f"unknown mode code {code!r}; valid codes: {valid}") from None


def mode_by_name(name: str) -> ModeEntry:
    """Return the mode called `name` (case-insensitive); raise KeyError naming the valid names."""
    try:
        return _BY_NAME[name.upper()]
    except KeyError:
        raise KeyError(f"unknown mode {name!r}; valid modes: {', '.join(_BY_NAME)}") from None


class SwitchDecodeError(ValueError):
    """A switch-control word that does not form a known circuit."""


@dataclass(frozen=True)
class SwitchState:
    """Decoded switch-control word as the analog macro sees it."""

    mode: ModeEntry
    signed: bool
    array: int
    row_enable: np.ndarray
    """Boolean mask of enabled row lines, length ArrayParams.rows."""
    col_enable: np.ndarray
    """Boolean mask of enabled column lines, length ArrayParams.cols."""
    half_negative: bool = False
    """True if single-cell access reaches the negative half (Conn.HALF_NEG)."""

    @property
    def cell(self) -> tuple[int, int]:
        """(row, column) of the selected cell of a single-cell mode."""
        if not self.mode.cell:
            raise ValueError(f"mode {self.mode.name} selects no single cell")
        return int(np.flatnonzero(self.row_enable)[0]), int(np.flatnonzero(self.col_enable)[0])


def _mask(bits: int, width: int) -> np.ndarray:
    return np.array([(bits >> i) & 1 for i in range(width)], dtype=bool)


def decode_switch_state(conn: int, array_onehot: int, row_enable: int, col_enable: int,
                        rows: int, cols: int, n_arrays: int) -> SwitchState:
    """Decode the raw fields of a switch-control word into a `SwitchState`.

    Raises `SwitchDecodeError` if the flags match no mode, if not exactly one
    array is selected, or if no line is enabled.
    """
    signed = bool(conn & Conn.NEG_INVERTERS)
    base = conn & ~int(OPTION_FLAGS)
    matches = [entry for entry in MODES if int(entry.conn) == base]
    if not matches:
        raise SwitchDecodeError(
            f"connection flags {Conn(conn & ((1 << CONN_WIDTH) - 1))!r} (0x{conn:03x}) form no known circuit"
        )
    if array_onehot <= 0 or array_onehot & (array_onehot - 1) or array_onehot >= (1 << n_arrays):
        raise SwitchDecodeError(
            f"array select 0x{array_onehot:x} must have exactly one of its {n_arrays} bits set"
        )
    row_mask = _mask(row_enable, rows)
    col_mask = _mask(col_enable, cols)
    if not row_mask.any() or not col_mask.any():
        raise SwitchDecodeError(
            f"no line enabled (row enable 0x{row_enable:x}, column enable 0x{col_enable:x})"
        )
    if matches[0].cell and (row_mask.sum() != 1 or col_mask.sum() != 1):
        raise SwitchDecodeError(
            f"{matches[0].name} needs exactly one row and one column enabled "
            f"(row enable 0x{row_enable:x}, column enable 0x{col_enable:x})"
        )
    return SwitchState(
        mode=matches[0],
        signed=signed,
        array=array_onehot.bit_length() - 1,
        row_enable=row_mask,
        col_enable=col_mask,
        half_negative=bool(conn & Conn.HALF_NEG),
    )


def mode_table_markdown() -> str:
    """Return the mode table as a Markdown document."""
    flags = list(Conn)
    lines = [
        "# Switch-matrix mode table",
        "",
        "Generated by `amc verilog` from `model/switch_matrix.py`; do not edit by hand.",
        "",
        "The signed variant of each mode also closes `NEG_INVERTERS` (bit "
        f"{Conn.NEG_INVERTERS.bit_length() - 1}); single-cell access to the negative half-array adds "
        f"`HALF_NEG` (bit {Conn.HALF_NEG.bit_length() - 1}). Modes marked *engine* are issued only by the "
        "write-verify engine, not by CTRL.start.",
        "",
        "| code | mode | conn word | inputs | outputs | square | started by | equation | description |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in MODES:
        lines.append(
            f"| {entry.code} | {entry.name} | 0x{int(entry.conn):03x} | {entry.inputs.value} | "
            f"{entry.outputs.value} | {'yes' if entry.square else 'no'} | {'host' if entry.host else 'engine'} | "
            f"`{entry.equation}` | {entry.description} |"
        )
    lines += ["", "## Connection flags", "", "| bit | flag | closes |", "|---|---|---|"]
    for flag in flags:
        lines.append(f"| {flag.bit_length() - 1} | {flag.name} | {_FLAG_DOCS[flag]} |")
    lines += ["", "## Flags per mode", ""]
    header = "| mode | " + " | ".join(f.name for f in flags) + " |"
    lines += [header, "|---|" + "---|" * len(flags)]
    for entry in MODES:
        cells = " | ".join("x" if entry.conn & f else "" for f in flags)
        lines.append(f"| {entry.name} | {cells} |")
    return "\n".join(lines) + "\n"


_FLAG_DOCS = {
    Conn.DAC_ROWS_GIN: "DAC i to row i through G_in (current injection)",
    Conn.DAC_COLS: "DAC j to column j (voltage)",
    Conn.DAC_ROWS: "DAC i to row i (voltage)",
    Conn.OPA_SENSE_ROWS: "op-amp i inverting input to row i",
    Conn.OPA_SENSE_COLS: "op-amp j inverting input to column j",
    Conn.OPA_FEEDBACK_GF: "feedback conductance G_f across each op-amp",
    Conn.OPA_DRIVE_COLS: "op-amp i output to column i (closed loop)",
    Conn.NEG_INVERTERS: "inverters drive the negative half-array (signed matrix)",
    Conn.ADC_OPA_OUT: "ADC multiplexer to the op-amp outputs",
    Conn.OPA_FEEDBACK_GV: "verify feedback conductance G_v across each op-amp",
    Conn.HALF_NEG: "single-cell access reaches the negative half-array",
    Conn.CELL_SELECT: "only the selected cell's row and column are enabled",
    Conn.PULSE_DRIVERS: "SET/RESET pulse drivers to the selected cell's lines",
}
assert set(_FLAG_DOCS) == set(Conn), "every connection flag needs a line in the mode table"
