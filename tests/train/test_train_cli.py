"""``amc train`` end to end on the embedded digits data, with tiny settings."""

import csv
import json

import pytest

from amc.cli import main

TINY = ["--epochs", "2", "--seeds", "0", "--sweep-seeds", "100", "--lr-sgd", "0.1", "--lr-adam", "0.01",
        "--lr-kfac", "0.3", "--no-progress"]


def test_train_writes_every_output(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--output", str(out), "--optimizers", "kfac-analog,kfac-exact,sgd,adam", *TINY])
    assert code == 0
    for name in ("epochs.csv", "sweep.csv", "summary.csv", "comparison.png", "cost.txt", "run.json"):
        assert (out / name).is_file(), name
    text = capsys.readouterr().out
    assert "Epochs to 95.0% test accuracy" in text
    assert "reported 26%" in text
    assert "reported 61%" in text
    assert "reported 5.88x" in text
    assert "fc.A[4]" in text
    assert "32x32 arrays" in text

    with open(out / "summary.csv") as handle:
        rows = {row["optimizer"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"kfac-analog", "kfac-exact", "sgd", "adam"}
    run = json.loads((out / "run.json").read_text())
    assert run["learning_rates"]["kfac-analog"] == run["learning_rates"]["kfac-exact"] == 0.3
    assert run["macro"]["array"]["rows"] == 32


def test_full_factors_need_larger_arrays(tmp_path, capsys):
    out = tmp_path / "never"
    code = main(["train", "--output", str(out), "--block-diagonal", "none", *TINY])
    assert code == 2
    message = capsys.readouterr().err
    assert "fc.A is 129x129" in message
    assert "--array-size 129" in message
    assert not out.exists()


def test_full_factors_with_fitted_arrays(tmp_path, capsys):
    out = tmp_path / "fit"
    code = main(["train", "--output", str(out), "--block-diagonal", "none", "--array-size", "fit", "--ideal",
                 "--optimizers", "kfac-analog", *TINY])
    assert code == 0
    assert "129x129 arrays" in capsys.readouterr().out


@pytest.mark.parametrize("arguments, text", [
    (["--target-accuracy", "96"], "fraction"),
    (["--seeds", "1", "--sweep-seeds", "1"], "disjoint"),
    (["--dataset", "emnist-letters"], "--data-root"),
    (["--optimizers", "sgd", "--ideal"], "kfac-analog is not in"),
    (["--cost-param", "warp_speed=9"], "NAME=VALUE"),
    (["--epochs", "0"], "--epochs 0"),
    (["--array-size", "fit"], "--block-diagonal N or none"),
])
def test_bad_input_exits_2_without_output(tmp_path, capsys, arguments, text):
    out = tmp_path / "never"
    code = main(["train", "--output", str(out), *TINY, *arguments])
    assert code == 2
    assert text in capsys.readouterr().err
    assert not out.exists()


def test_unknown_optimizer_is_rejected(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--optimizers", "lbfgs"])
    assert info.value.code == 2
    assert "unknown optimizer" in capsys.readouterr().err
