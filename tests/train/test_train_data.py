"""Data loading: digits splits, the IDX reader and the EMNIST Letters loader on synthetic files."""

import gzip
import struct

import numpy as np
import pytest
import torch

from amc.train.data import DatasetError, load_dataset, load_digits, load_emnist_letters, read_idx


def test_digits_split_sizes_and_shapes(digits):
    assert digits.image_shape == (1, 8, 8)
    assert digits.n_classes == 10
    total = len(digits.y_train) + len(digits.y_val) + len(digits.y_test)
    assert total == 1797
    assert abs(len(digits.y_test) - 0.2 * 1797) <= 10
    assert abs(len(digits.y_val) - 0.15 * 1797) <= 10


def test_digits_splits_are_disjoint(digits):
    def rows(x):
        return {tuple(r) for r in x.reshape(len(x), -1).numpy().round(5).tolist()}

    train, val, test = rows(digits.x_train), rows(digits.x_val), rows(digits.x_test)
    # sklearn's digits contain a few duplicate images; allow them, but no systematic overlap.
    assert len(train & test) < 5
    assert len(train & val) < 5


def test_digits_every_class_in_every_split(digits):
    for y in (digits.y_train, digits.y_val, digits.y_test):
        assert set(y.tolist()) == set(range(10))


def test_digits_standardized_on_train(digits):
    assert abs(float(digits.x_train.mean())) < 1e-5
    assert abs(float(digits.x_train.std()) - 1.0) < 1e-3
    assert digits.x_train.dtype == torch.float32
    assert digits.y_train.dtype == torch.int64


def test_digits_split_seed_is_deterministic():
    a, b = load_digits(split_seed=3), load_digits(split_seed=3)
    c = load_digits(split_seed=4)
    assert torch.equal(a.y_test, b.y_test)
    assert torch.equal(a.x_test, b.x_test)
    assert not torch.equal(a.x_test, c.x_test)


def test_digits_rejects_bad_fractions():
    with pytest.raises(DatasetError, match="test_fraction"):
        load_digits(test_fraction=1.5)
    with pytest.raises(DatasetError, match="leaves no training data"):
        load_digits(test_fraction=0.6, val_fraction=0.5)


def _write_idx(path, array, compress):
    codes = {np.uint8: 0x08}
    header = struct.pack(">BBBB", 0, 0, codes[array.dtype.type], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.tobytes()
    if compress:
        with gzip.open(path, "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path, compress):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("x.idx.gz" if compress else "x.idx")
    _write_idx(path, array, compress)
    np.testing.assert_array_equal(read_idx(path), array)


def test_read_idx_rejects_truncated_file(tmp_path):
    array = np.zeros((2, 3), dtype=np.uint8)
    path = tmp_path / "bad.idx"
    _write_idx(path, array, False)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DatasetError, match="truncated"):
        read_idx(path)


def test_read_idx_rejects_other_format(tmp_path):
    path = tmp_path / "text.idx"
    path.write_bytes(b"hello world")
    with pytest.raises(DatasetError, match="not an IDX file"):
        read_idx(path)


def _fake_emnist(folder, n_train=260, n_test=52, compress=True):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for part, n in (("train", n_train), ("test", n_test)):
        labels = (np.arange(n) % 26 + 1).astype(np.uint8)
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        # Mark each stored image so the transpose can be checked: a bright
        # first stored row becomes a bright first column once upright.
        images[:, 0, :] = 255
        images[:, 1:, 0] = 0
        suffix = ".gz" if compress else ""
        _write_idx(folder / f"emnist-letters-{part}-images-idx3-ubyte{suffix}", images, compress)
        _write_idx(folder / f"emnist-letters-{part}-labels-idx1-ubyte{suffix}", labels, compress)


def test_emnist_loader_reads_idx_files(tmp_path):
    _fake_emnist(tmp_path / "gzip")
    data = load_emnist_letters(tmp_path, val_fraction=0.1)
    assert data.n_classes == 26
    assert data.image_shape == (1, 28, 28)
    assert len(data.y_train) + len(data.y_val) == 260
    assert len(data.y_test) == 52
    assert int(data.y_train.min()) == 0
    assert int(data.y_train.max()) == 25
    assert "IDX files" in data.source


def test_emnist_loader_turns_images_upright(tmp_path):
    _fake_emnist(tmp_path, compress=False)
    data = load_emnist_letters(tmp_path)
    image = data.x_test[0, 0]
    # The stored first row is the upright first column.
    assert float(image[:, 0].min()) > float(image[0, 1:].max())


def test_emnist_loader_subsets(tmp_path):
    _fake_emnist(tmp_path)
    data = load_emnist_letters(tmp_path, train_subset=104, test_subset=26)
    assert len(data.y_train) + len(data.y_val) == 104
    assert len(data.y_test) == 26
    assert set(data.y_test.tolist()) == set(range(26))


def test_emnist_loader_missing_files_names_them(tmp_path):
    with pytest.raises(DatasetError, match="emnist-letters-train-images-idx3-ubyte"):
        load_emnist_letters(tmp_path)


def test_emnist_loader_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_emnist_letters(tmp_path / "nowhere")


def test_load_dataset_needs_root_for_emnist():
    with pytest.raises(DatasetError, match="--data-root"):
        load_dataset("emnist-letters")
    with pytest.raises(DatasetError, match="unknown data set"):
        load_dataset("cifar")
