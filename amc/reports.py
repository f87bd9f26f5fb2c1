"""PNG reports of command results."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["write_programming_report"]


def write_programming_report(programming: dict, path: Path, title: str = "") -> Path:
    """Write a PNG of the pulses per cell and of reached versus target conductance.

    `programming` is the ``"programming"`` entry of a job result
    (`amc.tb.jobs.programming_to_dict`). The file is written whole or not at all.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pulses = np.asarray(programming["pulses_per_cell"], dtype=int)
    target = np.concatenate([np.ravel(half) for half in programming["target_S"]]) * 1e6
    reached = np.concatenate([np.ravel(half) for half in programming["reached_S"]]) * 1e6
    failed = np.zeros(target.shape, dtype=bool)
    shapes = [np.asarray(half).shape for half in programming["target_S"]]
    offsets = np.cumsum([0] + [rows * cols for rows, cols in shapes])
    for half, row, col in programming["failed_cells"]:
        failed[offsets[half] + row * shapes[half][1] + col] = True

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    bins = np.arange(pulses.max(initial=0) + 2) - 0.5
    left.hist(pulses, bins=bins, color="tab:blue", edgecolor="white")
    left.set_xlabel("pulses per cell")
    left.set_ylabel("cells")
    left.set_title(f"{programming['total_pulses']} pulses, mean {pulses.mean() if pulses.size else 0:.2f}")

    right.plot([target.min(), target.max()], [target.min(), target.max()], color="grey", linewidth=1,
               label="reached = target")
    right.scatter(target[~failed], reached[~failed], s=12, color="tab:green", label="passed")
    if failed.any():
        right.scatter(target[failed], reached[failed], s=30, marker="x", color="tab:red",
                      label=f"failed ({int(failed.sum())})")
    right.set_xlabel("target conductance [uS]")
    right.set_ylabel("reached conductance [uS]")
    right.set_title("write-verify result")
    right.legend(loc="upper left")
    if title:
        figure.suptitle(title)
    figure.tight_layout()

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.stem + ".tmp.png")
    figure.savefig(temporary, dpi=120)
    plt.close(figure)
    temporary.replace(path)
    return path
