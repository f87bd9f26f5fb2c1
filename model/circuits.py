"""Linear circuit of one switch state: op-amps, array conductances, DAC sources.

The circuit is built from the connection flags of `amc.model.switch_matrix`
(the same table the controller uses), not from the mode name, so a new mode
with the existing connections needs no change here.

Circuit model, identical to the ngspice reference netlists of this project:

- Every op-amp has its non-inverting input grounded. Its inverting input is a
  summing node joined by conductances to driven voltages only: op-amp outputs
  and DAC outputs. No current flows into the op-amp input, so the summing node
  voltage is the conductance-weighted mean of those voltages,
  ``v_k = sum_d g_kd u_d / D_k`` with ``D_k = sum_d g_kd`` (Kirchhoff's current law).
- A sensed line (op-amp input) is joined to every enabled driven line of the
  other set by the positive-half cell, and, for signed operations, by the
  negative-half cell to the output of that line's inverter. With HALF_NEG
  (single-cell access) the negative-half cell takes the place of the positive one.
- A TIA has the feedback conductance G_f (OPA_FEEDBACK_GF), or G_v of the
  verify read (OPA_FEEDBACK_GV, `ProgrammingParams.g_verify_S`).
- A unity-gain inverter (input and feedback conductance ``g_inverter_S``) per
  driven line drives the negative half with the negated line voltage. Its
  summing node is the mean of its input and its own output. Inverters are
  op-amps of the state vector, so their delay is part of the dynamics.
- The op-amp is single-pole: ``dn/dt = wp (A0 (v+ - v-) - n)`` with
  ``wp = 2 pi GBW / A0``; the output is n clamped at the rails.

Cells on a disabled line carry no current (their access transistors are off),
and the DAC and op-amp outputs are ideal voltage sources.

With the time normalized as tau = 2 pi GBW t and the state x (op-amp outputs
in the linear range), the circuit is ``dx/dtau = -(W + I/A0) x - W_s u``, where
W and W_s are the summing-node weights of the op-amp outputs and the DAC
outputs u. `amc.model.statespace` analyses it.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass

import numpy as np

from .config import MacroConfig, OpAmpParams
from .errors import CircuitBuildError
from .switch_matrix import Conn, LineSet, ModeEntry, SwitchState

__all__ = ["OpAmpRole", "LinearCircuit", "CircuitTopology", "build_circuit", "circuit_topology"]


class OpAmpRole(enum.Enum):
    """Function of an op-amp in the circuit."""

    LINE = "line"
    """Op-amp k of the bank, sensing line k (TIA or INV solver); its output is ADC channel k."""

    INVERTER = "inverter"
    """Unity-gain inverter k, driving line k of the negative half-array."""


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class LinearCircuit:
    """Conductance network of one switch state, reduced to the op-amp summing nodes.

    State k of the circuit is the output voltage of op-amp ``op_amps[k]``. The
    line op-amps come first, in ascending line order, then the inverters.
    """

    mode: ModeEntry
    signed: bool
    opamp: OpAmpParams
    op_amps: tuple[tuple[OpAmpRole, int], ...]
    """(role, line index) of each state."""

    sensed_lines: np.ndarray
    """Line index of each line op-amp (its ADC channel), ascending."""

    driven_lines: np.ndarray
    """Enabled lines of the driven line set, ascending (the columns of `cell_matrix_S`)."""

    source_channels: np.ndarray
    """DAC channel of each source input u, ascending."""

    output_weights: np.ndarray
    """W, shape (n_states, n_states): weight of each op-amp output at each summing node."""

    source_weights: np.ndarray
    """W_s, shape (n_states, n_sources): weight of each DAC output at each summing node."""

    node_conductance_S: np.ndarray
    """D, shape (n_states,): total conductance at each summing node, in siemens."""

    cell_matrix_S: np.ndarray
    """G+ - G- (or G+ when unsigned) between sensed lines (rows) and driven lines, in siemens."""

    closed_loop: bool
    """True if line op-amp outputs drive the array (INV), so the array is inside the loop."""

    @property
    def n_states(self) -> int:
        """Number of op-amps in the circuit (state size)."""
        return len(self.op_amps)

    @property
    def n_outputs(self) -> int:
        """Number of line op-amps (ADC-readable outputs)."""
        return len(self.sensed_lines)

    @property
    def n_sources(self) -> int:
        """Number of DAC inputs."""
        return len(self.source_channels)

    def loop_eigenvalues(self) -> np.ndarray:
        """Return the eigenvalues that set stability and speed for ideal inverters (dimensionless).

        Closed loop (INV): eig(D^-1 G) with G = G+ - G- between the sensed rows
        and the columns their op-amps drive, and D the total conductance at
        each row (Sun et al., IEEE TED 2020, arXiv:2005.04530). Open loop
        (MVM): the closed-loop bandwidth factor G_f / D_i of each TIA.
        """
        n = self.n_outputs
        d = self.node_conductance_S[:n]
        if self.closed_loop:
            return np.linalg.eigvals(self.cell_matrix_S / d[:, None])
        diagonal = np.diag(self.output_weights)[:n]
        return diagonal.astype(complex)


def _sensed_set(mode: ModeEntry) -> LineSet:
    flags = mode.conn
    sense_rows = bool(flags & Conn.OPA_SENSE_ROWS)
    sense_cols = bool(flags & Conn.OPA_SENSE_COLS)
    if sense_rows == sense_cols:
        raise CircuitBuildError(
            f"mode {mode.name} must close exactly one of OPA_SENSE_ROWS and OPA_SENSE_COLS; "
            f"its flags are {flags!r}"
        )
    return LineSet.ROWS if sense_rows else LineSet.COLS


def build_circuit(state: SwitchState, g_pos_S: np.ndarray, g_neg_S: np.ndarray | None,
                  config: MacroConfig) -> LinearCircuit:
    """Build the linear circuit of a decoded switch state.

    Parameters
    ----------
    state : SwitchState
        Mode, signed flag and enabled lines.
    g_pos_S, g_neg_S : ndarray, shape (rows, cols)
        Conductances of the selected array's positive and negative halves
        during this operation, in siemens. `g_neg_S` may be None for unsigned
        operations.
    config : MacroConfig

    Raises
    ------
    CircuitBuildError
        If the flags do not describe a circuit this model supports, or if a
        closed-loop mode enables different row and column lines.
    """
    # The conductance checks come between the mode check and the topology
    # checks, so an input with several faults always reports the same one.
    _sensed_set(state.mode)
    if state.signed and g_neg_S is None:
        raise CircuitBuildError("a signed operation needs the negative half-array conductances, got None")
    if state.half_negative and (state.signed or g_neg_S is None):
        raise CircuitBuildError(
            "HALF_NEG needs an unsigned operation and the negative half-array conductances"
        )
    topology = circuit_topology(state, config)
    block = topology.block_index
    cells_pos = topology.cells_from_block(np.asarray(g_pos_S)[block])
    cells_neg = None if g_neg_S is None else topology.cells_from_block(np.asarray(g_neg_S)[block])
    if state.half_negative:
        # HALF_NEG routes the DACs and op-amps to the negative half instead of
        # the positive one (single-cell access of a differential pair).
        cells_pos, cells_neg = cells_neg, None

    # Conductance from each summing node to each op-amp output and DAC output [states, states + sources].
    n_line, n_states = topology.n_line, topology.n_states
    conductance = np.zeros((n_states, n_states + topology.n_sources))
    topology.line_conductance(cells_pos, cells_neg, check=False, out=conductance[:n_line])
    if state.signed:
        inverter_state = topology.inverter_states
        conductance[inverter_state, topology.driver] += topology.g_inverter_S
        conductance[inverter_state, inverter_state] += topology.g_inverter_S

    node_total = conductance.sum(axis=1)
    _check_node_total(node_total)
    weights = conductance / node_total[:, None]

    # The cells may be views of the caller's images, so the unsigned case copies them.
    effective = np.asarray(cells_pos - cells_neg, dtype=float) if state.signed else np.array(cells_pos, dtype=float)
    return LinearCircuit(
        mode=state.mode,
        signed=bool(state.signed),
        opamp=config.opamp,
        op_amps=topology.op_amps,
        sensed_lines=topology.sensed_lines,
        driven_lines=topology.driven_lines,
        source_channels=topology.source_channels,
        output_weights=_frozen(weights[:, :n_states].copy()),
        source_weights=_frozen(weights[:, n_states:].copy()),
        node_conductance_S=_frozen(node_total),
        cell_matrix_S=_frozen(effective),
        closed_loop=topology.closed_loop,
    )


def _check_node_total(node_total: np.ndarray) -> None:
    if np.any(node_total <= 0.0):
        empty = int(np.flatnonzero(node_total <= 0.0)[0])
        raise CircuitBuildError(
            f"summing node of op-amp {empty % node_total.shape[-1]} has no conductance; enable at least one "
            "driven line"
        )


@dataclass(frozen=True, eq=False)
class CircuitTopology:
    """Index structure of the circuit of one switch state, independent of the cell conductances.

    `build_circuit` derives it from the connection flags and the line masks,
    and `circuit_topology` caches it, so that circuits of the same state
    that differ only in their conductances (read noise) are built without
    that Python work. Array attributes are read-only.
    """

    sensed_rows: bool
    """True if the op-amps sense the rows (the cells are indexed [sensed, driven])."""

    rows_on: np.ndarray
    """Enabled row lines, ascending."""

    cols_on: np.ndarray
    """Enabled column lines, ascending."""

    closed_loop: bool
    injects: bool
    """True if each line op-amp's DAC injects through G_in (DAC_ROWS_GIN)."""

    feedback_S: float | None
    """Feedback conductance of each line op-amp (G_f or G_v), in siemens; None without feedback."""

    g_in_S: float
    g_inverter_S: float
    n_line: int
    n_states: int
    n_sources: int
    driver: np.ndarray
    """Conductance-matrix column (a line op-amp state or a DAC source) whose voltage drives each driven line."""

    inverter_states: np.ndarray
    """State index of each inverter (empty for unsigned circuits)."""

    op_amps: tuple[tuple[OpAmpRole, int], ...]
    sensed_lines: np.ndarray
    driven_lines: np.ndarray
    source_channels: np.ndarray

    @functools.cached_property
    def _driver_columns(self) -> slice | np.ndarray:
        # A slice view costs less than fancy indexing. The driver columns are
        # consecutive in every circuit that `_cached_topology` accepts.
        return _as_slice(self.driver)

    @functools.cached_property
    def block_index(self) -> tuple:
        """Index of the enabled block (enabled rows x enabled columns) in a (rows, cols) image.

        Consecutive lines become slices, which select a view instead of a copy.
        """
        rows, cols = _as_slice(self.rows_on), _as_slice(self.cols_on)
        if isinstance(rows, slice) or isinstance(cols, slice):
            return rows, cols
        return self.rows_on[:, None], self.cols_on[None, :]

    def cells_from_block(self, block_S: np.ndarray) -> np.ndarray:
        """Return the cells [sensed, driven] from images of the enabled block, shape (..., rows on, cols on)."""
        return block_S if self.sensed_rows else np.swapaxes(block_S, -1, -2)

    def line_conductance(self, cells_pos_S: np.ndarray, cells_neg_S: np.ndarray | None, *,
                         check: bool = True, out: np.ndarray | None = None) -> np.ndarray:
        """Return the conductance rows of the line op-amps' summing nodes, in siemens.

        Parameters
        ----------
        cells_pos_S, cells_neg_S : ndarray, shape (..., n_line, n_driven)
            Cells [sensed, driven] of the positive and negative halves, in
            siemens. Leading axes are batch axes, for example operations.
            `cells_neg_S` is used for signed circuits only.
        check : bool
            Raise `CircuitBuildError` if a summing node has no conductance.
        out : ndarray, optional
            Float64 array of the result's shape to fill (its contents are
            overwritten), so that a caller can reuse the memory.

        Returns
        -------
        ndarray, shape (..., n_line, n_states + n_sources)
            Conductance from each line summing node to each op-amp output
            (columns 0 to n_states - 1) and DAC output. These are the first
            n_line rows of the matrix that `build_circuit` assembles, with
            the same additions in the same order, so they are equal to the
            last bit. The inverter rows do not depend on the cells.
        """
        cells_pos_S = np.asarray(cells_pos_S, dtype=float)
        shape = cells_pos_S.shape[:-2] + (self.n_line, self.n_states + self.n_sources)
        if out is None:
            conductance = np.zeros(shape)
        elif out.shape != shape or out.dtype != np.float64:
            raise ValueError(f"out has shape {out.shape} and dtype {out.dtype}; expected {shape} and float64")
        else:
            conductance = out
            conductance.fill(0.0)
        conductance[..., self._driver_columns] += cells_pos_S
        if len(self.inverter_states):
            conductance[..., self.inverter_states[0]:self.n_states] += cells_neg_S
        lines = np.arange(self.n_line)
        if self.injects:
            conductance[..., lines, self.n_states + lines] += self.g_in_S
        if self.feedback_S is not None:
            conductance[..., lines, lines] += self.feedback_S
        if check:
            _check_node_total(conductance.sum(axis=-1))
        return conductance


def _as_slice(indices: np.ndarray) -> slice | np.ndarray:
    """Return a slice equal to ascending consecutive `indices`, else `indices` itself."""
    if len(indices) and np.array_equal(indices, np.arange(indices[0], indices[0] + len(indices))):
        return slice(int(indices[0]), int(indices[0]) + len(indices))
    return indices


def circuit_topology(state: SwitchState, config: MacroConfig) -> CircuitTopology:
    """Return the (cached) `CircuitTopology` of a switch state.

    Raises
    ------
    CircuitBuildError
        As `build_circuit`, for flags or line masks that form no supported circuit.
    """
    circuit_params = config.circuit
    return _cached_topology(
        state.mode, bool(state.signed),
        np.asarray(state.row_enable, dtype=bool).tobytes(), np.asarray(state.col_enable, dtype=bool).tobytes(),
        circuit_params.g_f_S, circuit_params.g_in_S, circuit_params.g_inverter_S, config.programming.g_verify_S,
    )


# Keyed by everything the topology depends on: the mode entry, the signed
# flag, the line masks and the fixed conductances. An entry holds a few
# arrays of the line count, so 256 entries take little memory.
@functools.lru_cache(maxsize=256)
def _cached_topology(mode: ModeEntry, signed: bool, row_mask: bytes, col_mask: bytes, g_f_S: float, g_in_S: float,
                     g_inverter_S: float, g_verify_S: float) -> CircuitTopology:
    flags = mode.conn
    rows_on = np.flatnonzero(np.frombuffer(row_mask, dtype=bool))
    cols_on = np.flatnonzero(np.frombuffer(col_mask, dtype=bool))
    sensed_set = _sensed_set(mode)
    if sensed_set is LineSet.ROWS:
        sensed, driven = rows_on, cols_on
    else:
        sensed, driven = cols_on, rows_on

    # Which voltage drives each enabled line of the driven set.
    closed_loop = bool(flags & Conn.OPA_DRIVE_COLS)
    dac_drives = bool(flags & (Conn.DAC_COLS if sensed_set is LineSet.ROWS else Conn.DAC_ROWS))
    if closed_loop and sensed_set is not LineSet.ROWS:
        raise CircuitBuildError(f"mode {mode.name}: OPA_DRIVE_COLS needs op-amps that sense the rows")
    if closed_loop == dac_drives:
        raise CircuitBuildError(
            f"mode {mode.name}: the driven lines need exactly one driver (DAC or op-amp outputs); flags {flags!r}"
        )
    if closed_loop and not np.array_equal(rows_on, cols_on):
        raise CircuitBuildError(
            f"mode {mode.name}: op-amp i senses row i and drives column i, so the same row and column "
            f"lines must be enabled; got rows {rows_on.tolist()} and columns {cols_on.tolist()}"
        )
    injects = bool(flags & Conn.DAC_ROWS_GIN)
    if injects and sensed_set is not LineSet.ROWS:
        raise CircuitBuildError(f"mode {mode.name}: DAC_ROWS_GIN needs op-amps that sense the rows")
    feedback_gf = bool(flags & Conn.OPA_FEEDBACK_GF)
    feedback_gv = bool(flags & Conn.OPA_FEEDBACK_GV)
    if feedback_gf and feedback_gv:
        raise CircuitBuildError(f"mode {mode.name} closes both feedback conductances G_f and G_v; flags {flags!r}")
    feedback_S = None
    if feedback_gf:
        feedback_S = g_f_S
    elif feedback_gv:
        feedback_S = g_verify_S

    n_line = len(sensed)
    n_inv = len(driven) if signed else 0
    n_states = n_line + n_inv
    if dac_drives:
        sources = driven
    elif injects:
        sources = sensed
    else:
        sources = np.zeros(0, dtype=int)
    source_index = {int(line): n_states + k for k, line in enumerate(sources)}
    line_state = {int(line): k for k, line in enumerate(sensed)}
    if dac_drives:
        driver = np.array([source_index[int(line)] for line in driven], dtype=int)
    else:
        driver = np.array([line_state[int(line)] for line in driven], dtype=int)

    op_amps = tuple((OpAmpRole.LINE, int(line)) for line in sensed)
    op_amps += tuple((OpAmpRole.INVERTER, int(line)) for line in (driven if signed else ()))
    return CircuitTopology(
        sensed_rows=sensed_set is LineSet.ROWS,
        rows_on=_frozen(rows_on),
        cols_on=_frozen(cols_on),
        closed_loop=closed_loop,
        injects=injects,
        feedback_S=feedback_S,
        g_in_S=g_in_S,
        g_inverter_S=g_inverter_S,
        n_line=n_line,
        n_states=n_states,
        n_sources=len(sources),
        driver=_frozen(driver),
        inverter_states=_frozen(n_line + np.arange(n_inv)),
        op_amps=op_amps,
        sensed_lines=_frozen(np.array(sensed, dtype=int)),
        driven_lines=_frozen(np.array(driven, dtype=int)),
        source_channels=_frozen(np.array(sources, dtype=int)),
    )
