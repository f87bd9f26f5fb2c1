"""RRAM cell non-idealities: stuck cells, programming error, read noise, pulse response.

Every effect draws from its own stream spawned from one
``numpy.random.SeedSequence(config.seed)``. Switching one effect on or off
therefore leaves the draws of the others unchanged. For example, the
stuck-cell map of a seed is the same with or without read noise.

- Stuck cells: each cell of each half-array is stuck with probability
  `StuckCells.fraction`, at g_max with probability `StuckCells.on_fraction`
  and at g_min otherwise. The map is drawn once per macro instance.
- Programming error: every programmed cell gets a Gaussian error of standard
  deviation ``sigma_rel * (g_max - g_min)``, then is clipped to the window.
  A new error is drawn at every programming call.
- Read noise: during one analog operation each cell conductance is multiplied
  by ``1 + sigma_rel * n`` with n standard normal, drawn anew at every analog
  enable for the whole selected array; negative results are set to zero. A
  single-cell verify read draws one n, for the selected cell only.
- Pulse response: `amc.model.rram_cell.RramCells` with the device-to-device
  gain factors (drawn once) and the cycle-to-cycle factors (one per pulse).
  The backdoor (`program`) uses the programming error above instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import MacroConfig
from .rram_cell import RramCells

__all__ = ["RandomStreams", "StuckMap", "draw_stuck_map", "DeviceModel"]

POSITIVE, NEGATIVE = 0, 1
"""Index of the positive and negative half-array in the conductance stacks."""


@dataclass
class RandomStreams:
    """Independent random generators of one macro instance."""

    stuck: np.random.Generator
    programming: np.random.Generator
    read_noise: np.random.Generator
    cell_spread: np.random.Generator
    """Device-to-device gain factors of the pulse response."""
    cell_cycle: np.random.Generator
    """Cycle-to-cycle factor of each programming pulse."""

    @classmethod
    def from_seed(cls, seed: int) -> "RandomStreams":
        """Spawn the streams from ``SeedSequence(seed)`` in a fixed order.

        Child k of a SeedSequence does not depend on how many children are
        spawned, so the first three streams are those of earlier versions
        that spawned three.
        """
        children = np.random.SeedSequence(seed).spawn(5)
        return cls(*(np.random.default_rng(child) for child in children))


@dataclass(frozen=True)
class StuckMap:
    """Stuck cells of every array, shape (n_arrays, 2, rows, cols); axis 1 is the half."""

    stuck: np.ndarray
    """True for a stuck cell."""

    value_S: np.ndarray
    """Conductance of each stuck cell (g_max or g_min), in siemens; g_min where not stuck."""

    @property
    def count(self) -> int:
        """Number of stuck cells in the macro."""
        return int(np.count_nonzero(self.stuck))


def draw_stuck_map(rng: np.random.Generator, config: MacroConfig) -> StuckMap:
    """Draw the stuck-cell map of a macro; all cells are free when stuck cells are disabled."""
    array = config.array
    shape = (array.n_arrays, 2, array.rows, array.cols)

    # Both uniforms are drawn even when the effect is off, so that the map of a
    # seed depends only on the geometry and the two probabilities.
    is_stuck = rng.random(shape)
    is_on = rng.random(shape)
    params = config.nonideal.stuck
    stuck = (is_stuck < params.fraction) if params.enabled else np.zeros(shape, dtype=bool)
    value = np.where(stuck & (is_on < params.on_fraction), array.g_max_S, array.g_min_S)
    stuck.setflags(write=False)
    value.setflags(write=False)
    return StuckMap(stuck=stuck, value_S=value)


class DeviceModel:
    """Non-ideal cells of one macro instance: programming error, stuck cells, read noise, pulse response."""

    def __init__(self, config: MacroConfig):
        self.config = config
        self.streams = RandomStreams.from_seed(config.seed)
        self.stuck_map = draw_stuck_map(self.streams.stuck, config)
        self.cells = RramCells(config, self.streams.cell_spread, self.streams.cell_cycle, self.stuck_map.stuck)

    def program(self, array: int, target_S: np.ndarray, halves: tuple[int, ...]) -> np.ndarray:
        """Return the conductances a programming step leaves in the cells, in siemens.

        Parameters
        ----------
        array : int
            Array index (selects the stuck-cell map).
        target_S : ndarray, shape (2, rows, cols)
            Target conductances of both halves, in siemens.
        halves : tuple of int
            Halves being programmed (`POSITIVE`, `NEGATIVE`). The error is
            drawn for both halves every time, so the stream position does not
            depend on which halves are written.
        """
        window = self.config.array
        programmed = np.array(target_S, dtype=float, copy=True)
        params = self.config.nonideal.programming
        if params.enabled and params.sigma_rel > 0.0:
            sigma = params.sigma_rel * (window.g_max_S - window.g_min_S)
            error = self.streams.programming.normal(0.0, sigma, size=programmed.shape)
            programmed = np.clip(programmed + error, window.g_min_S, window.g_max_S)

        stuck = self.stuck_map.stuck[array]
        programmed = np.where(stuck, self.stuck_map.value_S[array], programmed)
        keep = [h for h in (POSITIVE, NEGATIVE) if h not in halves]
        for half in keep:
            programmed[half] = target_S[half]
        return programmed

    def read(self, programmed_S: np.ndarray) -> np.ndarray:
        """Return the conductances seen during one analog operation (read noise applied), in siemens."""
        params = self.config.nonideal.read_noise
        if not (params.enabled and params.sigma_rel > 0.0):
            return programmed_S
        # Computed in place with the operations of programmed * max(1 + sigma n, 0),
        # so the values equal that expression's to the last bit.
        factor = self.streams.read_noise.standard_normal(programmed_S.shape)
        factor *= params.sigma_rel
        factor += 1.0
        np.maximum(factor, 0.0, out=factor)
        return np.multiply(programmed_S, factor, out=factor)

    def read_many(self, programmed_S: np.ndarray, count: int, cells: tuple = (), *,
                  buffer: np.ndarray | None = None) -> np.ndarray:
        """Return the conductances of selected cells during `count` consecutive analog operations, in siemens.

        The draws are those of `count` calls of `read`, in the same order and
        for every cell of `programmed_S`, so the stream ends where those calls
        leave it. Only the selected cells get their factor applied.

        Parameters
        ----------
        programmed_S : ndarray
            Programmed conductances of every cell that one operation draws
            for, for example shape (2, rows, cols), in siemens.
        count : int
            Number of operations, at least 1.
        cells : tuple
            Index into `programmed_S` that selects the cells to return (basic
            or advanced indexing); the default selects all.
        buffer : ndarray, optional
            Float64 array of at least `count` x ``programmed_S.size`` elements,
            C-contiguous, that receives the draws. A caller that reuses it
            saves the allocation (and the page faults) of a large array. The
            result may be a view into it.

        Returns
        -------
        ndarray, shape (count, *programmed_S[cells].shape)
            Entry k equals ``read(programmed_S)[cells]`` of the k-th call to
            the last bit. Without read noise every entry is ``programmed_S[cells]``.
        """
        if count < 1:
            raise ValueError(f"count = {count!r} is invalid: use at least one operation")
        selected = programmed_S[cells]
        params = self.config.nonideal.read_noise
        if not (params.enabled and params.sigma_rel > 0.0):
            return np.broadcast_to(selected, (count,) + selected.shape).copy()
        # numpy fills the (count, ...) draw in C order, the order of `count`
        # draws of one operation each (test_read_many_equals_repeated_reads).
        shape = (count,) + programmed_S.shape
        if buffer is None:
            normals = self.streams.read_noise.standard_normal(shape)
        else:
            normals = buffer.reshape(-1)[:count * programmed_S.size].reshape(shape)
            self.streams.read_noise.standard_normal(out=normals)
        factor = normals[(slice(None),) + cells]
        factor *= params.sigma_rel
        factor += 1.0
        np.maximum(factor, 0.0, out=factor)
        return np.multiply(selected, factor, out=factor)

    def read_cell(self, g_S: float) -> float:
        """Return the conductance one cell shows during a single-cell read (one read-noise draw), in siemens."""
        params = self.config.nonideal.read_noise
        if not (params.enabled and params.sigma_rel > 0.0):
            return float(g_S)
        factor = 1.0 + params.sigma_rel * self.streams.read_noise.standard_normal()
        return float(g_S) * max(factor, 0.0)

    @property
    def read_noise_on(self) -> bool:
        """True if every analog operation draws new conductances."""
        params = self.config.nonideal.read_noise
        return params.enabled and params.sigma_rel > 0.0
