"""Image-classification data sets for the training experiments.

Two data sets are supported:

- ``digits``: scikit-learn's copy of the UCI optical handwritten digits
  (1797 grey-scale 8x8 images, 10 classes). It ships with scikit-learn, so it
  is the default and the only data set the tests use.
- ``emnist-letters``: EMNIST Letters (Cohen, Afshar, Tapson, van Schaik,
  "EMNIST: an extension of MNIST to handwritten letters", arXiv:1702.05373,
  2017), 28x28 images of 26 letter classes, 124 800 training and 20 800 test
  images. It is read from a local folder, through torchvision's ``EMNIST``
  class when torchvision is installed, or else from the published IDX files
  (``emnist-letters-*-idx?-ubyte[.gz]``) or the MATLAB file
  (``emnist-letters.mat``). This module never downloads anything.

Every loader returns a `DataSplits` with fixed train, validation and test
splits. The validation split is carved out of the training data, so learning
rates can be selected without looking at the test set.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "DATASETS",
    "DataSplits",
    "DatasetError",
    "load_dataset",
    "load_digits",
    "load_emnist_letters",
    "read_idx",
]

DATASETS = ("digits", "emnist-letters")


class DatasetError(ValueError):
    """A data set that is unknown, missing or malformed."""


@dataclass(frozen=True)
class DataSplits:
    """Train, validation and test tensors of one data set.

    Images are float32 tensors of shape (N, channels, height, width),
    standardized with the training split's mean and standard deviation.
    Labels are int64 class indices in 0 .. n_classes - 1.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    source: str
    """Origin of the data (package or files), for the run log."""

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one image."""
        return tuple(self.x_train.shape[1:])

    def describe(self) -> str:
        """Return a one-line summary: sizes of the splits, classes and source."""
        c, h, w = self.image_shape
        return (
            f"{self.name}: {len(self.y_train)} train / {len(self.y_val)} validation / "
            f"{len(self.y_test)} test images, {c}x{h}x{w}, {self.n_classes} classes ({self.source})"
        )


def _stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (kept, held out) with ``fraction`` of every class held out."""
    rng = np.random.default_rng(seed)
    kept, held = [], []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        n_held = int(round(fraction * len(idx)))
        held.append(idx[:n_held])
        kept.append(idx[n_held:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held))


def _subsample(labels: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """Return sorted indices of a class-stratified random subset of ``n`` items (all if None)."""
    if n is None or n >= len(labels):
        return np.arange(len(labels))
    if n < 1:
        raise DatasetError(f"a subset size of {n} is invalid: use at least one image per split")
    _, held = _stratified_split(labels, n / len(labels), seed)
    return held


def _to_splits(
    name: str,
    images: tuple[np.ndarray, np.ndarray, np.ndarray],
    labels: tuple[np.ndarray, np.ndarray, np.ndarray],
    n_classes: int,
    source: str,
) -> DataSplits:
    """Standardize with the training statistics and convert to tensors."""
    x_train = images[0].astype(np.float32)
    mean = float(x_train.mean())
    std = float(x_train.std()) or 1.0

    def as_tensor(x: np.ndarray) -> torch.Tensor:
        x = (x.astype(np.float32) - mean) / std
        return torch.from_numpy(np.ascontiguousarray(x[:, None, :, :]))

    return DataSplits(
        name=name,
        x_train=as_tensor(images[0]),
        y_train=torch.from_numpy(labels[0].astype(np.int64)),
        x_val=as_tensor(images[1]),
        y_val=torch.from_numpy(labels[1].astype(np.int64)),
        x_test=as_tensor(images[2]),
        y_test=torch.from_numpy(labels[2].astype(np.int64)),
        n_classes=n_classes,
        source=source,
    )


def load_digits(
    *,
    test_fraction: float = 0.2,
    val_fraction: float = 0.15,
    split_seed: int = 0,
) -> DataSplits:
    """Load scikit-learn's 8x8 handwritten digits with stratified splits.

    Parameters
    ----------
    test_fraction, val_fraction : float
        Share of all 1797 images held out for the test and validation splits.
        The defaults give 1169 training, 269 validation and 359 test images.
    split_seed : int
        Seed of the split. It is fixed across training seeds, so every
        optimizer and seed uses the same three splits.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    for label, value in (("test_fraction", test_fraction), ("val_fraction", val_fraction)):
        if not 0.0 < value < 1.0:
            raise DatasetError(f"{label} = {value!r} is invalid: use a fraction strictly between 0 and 1")
    if test_fraction + val_fraction >= 1.0:
        raise DatasetError(
            f"test_fraction + val_fraction = {test_fraction + val_fraction:.3g} leaves no training data; "
            "make their sum smaller than 1"
        )

    bunch = sklearn_digits()
    images = bunch.images.astype(np.float32) / 16.0  # pixel values are 0..16
    labels = bunch.target.astype(np.int64)

    rest, test = _stratified_split(labels, test_fraction, split_seed)
    train_rel, val_rel = _stratified_split(labels[rest], val_fraction / (1.0 - test_fraction), split_seed + 1)
    train, val = rest[train_rel], rest[val_rel]
    return _to_splits(
        "digits",
        (images[train], images[val], images[test]),
        (labels[train], labels[val], labels[test]),
        10,
        f"scikit-learn {__import__('sklearn').__version__} load_digits",
    )


# IDX element types (LeCun's MNIST file format, also used by EMNIST).
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a numpy array.

    The header is two zero bytes, a type code, the number of dimensions and one
    big-endian uint32 size per dimension, followed by the data in row-major
    order.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DatasetError(f"{path} is not an IDX file: its first 4 bytes are {data[:4].hex()}")
    dtype = _IDX_DTYPES[data[2]]
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", data[4:header])
    count = int(np.prod(shape))
    if len(data) - header != count * dtype.itemsize:
        raise DatasetError(
            f"{path} is truncated or corrupt: header shape {shape} needs {count * dtype.itemsize} data bytes, "
            f"file has {len(data) - header}"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def _find_file(root: Path, stem: str) -> Path | None:
    """Find ``stem`` or ``stem.gz`` in root and the folders the published archives unpack to."""
    for folder in (root, root / "gzip", root / "EMNIST" / "raw", root / "raw"):
        for name in (stem, stem + ".gz"):
            candidate = folder / name
            if candidate.is_file():
                return candidate
    return None


def _emnist_letters_arrays(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """Return train images, train labels, test images, test labels (labels 1..26) and the source."""
    stems = {
        key: f"emnist-letters-{part}-{kind}-idx{dim}-ubyte"
        for key, part, kind, dim in (
            ("x_train", "train", "images", 3), ("y_train", "train", "labels", 1),
            ("x_test", "test", "images", 3), ("y_test", "test", "labels", 1),
        )
    }
    paths = {key: _find_file(root, stem) for key, stem in stems.items()}
    if all(paths.values()):
        arrays = {key: read_idx(path) for key, path in paths.items()}
        # The published EMNIST images are stored transposed (column-major).
        x_train = np.ascontiguousarray(arrays["x_train"].transpose(0, 2, 1))
        x_test = np.ascontiguousarray(arrays["x_test"].transpose(0, 2, 1))
        return x_train, arrays["y_train"], x_test, arrays["y_test"], f"IDX files in {root}"

    mat_path = next((p for p in (root / "emnist-letters.mat", root / "matlab" / "emnist-letters.mat") if p.is_file()), None)
    if mat_path is not None:
        from scipy.io import loadmat

        dataset = loadmat(mat_path)["dataset"]

        def part(name: str) -> tuple[np.ndarray, np.ndarray]:
            record = dataset[name][0, 0]
            # Rows are images flattened in column-major (MATLAB) order.
            images = record["images"][0, 0].reshape(-1, 28, 28, order="F")
            return images, record["labels"][0, 0].ravel()

        x_train, y_train = part("train")
        x_test, y_test = part("test")
        return x_train, y_train, x_test, y_test, f"MATLAB file {mat_path}"

    try:
        from torchvision.datasets import EMNIST
    except ModuleNotFoundError:
        EMNIST = None
    if EMNIST is not None:
        try:
            train = EMNIST(str(root), split="letters", train=True, download=False)
            test = EMNIST(str(root), split="letters", train=False, download=False)
        except RuntimeError as error:
            raise DatasetError(f"torchvision found no EMNIST Letters under {root}: {error}") from error
        # torchvision returns the stored (transposed) images; turn them upright.
        x_train = train.data.numpy().transpose(0, 2, 1)
        x_test = test.data.numpy().transpose(0, 2, 1)
        return x_train, train.targets.numpy(), x_test, test.targets.numpy(), f"torchvision EMNIST in {root}"

    missing = ", ".join(stems[key] + "[.gz]" for key, path in paths.items() if path is None)
    raise DatasetError(
        f"EMNIST Letters not found in {root}: missing {missing} (also looked in gzip/, raw/, EMNIST/raw/ "
        "and for emnist-letters.mat). Unpack the published EMNIST archive there, or point --data-root at it; "
        "this program does not download data"
    )


def load_emnist_letters(
    root: str | Path,
    *,
    val_fraction: float = 0.1,
    train_subset: int | None = None,
    test_subset: int | None = None,
    split_seed: int = 0,
) -> DataSplits:
    """Load EMNIST Letters from a local folder.

    Parameters
    ----------
    root : path
        Folder with the IDX files (plain or ``.gz``, also under ``gzip/`` or
        torchvision's ``EMNIST/raw/``), or ``emnist-letters.mat``.
    val_fraction : float
        Share of the (possibly subsampled) training images held out for
        validation.
    train_subset, test_subset : int, optional
        Use a class-stratified random subset of this many training (before the
        validation split) or test images, to shorten CPU runs.
    split_seed : int
        Seed of the subsets and of the validation split.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"EMNIST folder {root} not found; pass the folder that contains the EMNIST files")
    if not 0.0 < val_fraction < 1.0:
        raise DatasetError(f"val_fraction = {val_fraction!r} is invalid: use a fraction strictly between 0 and 1")
    x_train, y_train, x_test, y_test, source = _emnist_letters_arrays(root)
    y_train = np.asarray(y_train, dtype=np.int64) - 1  # published labels are 1..26
    y_test = np.asarray(y_test, dtype=np.int64) - 1
    for label, y in (("training", y_train), ("test", y_test)):
        if y.min() < 0 or y.max() > 25:
            raise DatasetError(
                f"EMNIST Letters {label} labels span {y.min() + 1}..{y.max() + 1}; expected 1..26 "
                f"(is {root} the letters split?)"
            )

    keep = _subsample(y_train, train_subset, split_seed)
    x_train, y_train = x_train[keep], y_train[keep]
    keep = _subsample(y_test, test_subset, split_seed + 2)
    x_test, y_test = x_test[keep], y_test[keep]

    train, val = _stratified_split(y_train, val_fraction, split_seed + 1)
    images = np.asarray(x_train, dtype=np.float32) / 255.0
    return _to_splits(
        "emnist-letters",
        (images[train], images[val], np.asarray(x_test, dtype=np.float32) / 255.0),
        (y_train[train], y_train[val], y_test),
        26,
        source,
    )


def load_dataset(name: str, *, data_root: str | Path | None = None, **options) -> DataSplits:
    """Load a data set by name (one of `DATASETS`); options go to its loader."""
    if name == "digits":
        return load_digits(**options)
    if name == "emnist-letters":
        if data_root is None:
            raise DatasetError("emnist-letters needs the folder that contains the EMNIST files: pass --data-root DIR")
        return load_emnist_letters(data_root, **options)
    raise DatasetError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
