"""Training protocol: pairing by seed, validation-only sweep, summaries, reports."""

import csv
import dataclasses

import pytest
import torch

from amc.train import report
from amc.train.experiment import (
    EpochStats,
    KFACOptions,
    Protocol,
    RunResult,
    run_comparison,
    summarize,
    train_run,
)

SMALL = dict(epochs=2, seeds=(0,), sweep_seeds=(100,),
             lr_grids={"sgd": (0.1,), "adam": (0.01,), "kfac": (0.1,)})


def test_same_seed_same_start_for_every_optimizer(digits):
    protocol = Protocol(**SMALL)
    starts = [train_run(digits, name, lr, 0, protocol).epochs[0]
              for name, lr in (("sgd", 0.1), ("adam", 0.01), ("kfac-exact", 0.1))]
    for stats in starts[1:]:
        assert stats.val_loss == starts[0].val_loss
        assert stats.test_accuracy == starts[0].test_accuracy


def test_run_is_deterministic(digits):
    protocol = Protocol(**SMALL)
    a = train_run(digits, "kfac-exact", 0.1, 7, protocol)
    b = train_run(digits, "kfac-exact", 0.1, 7, protocol)
    assert [s.test_loss for s in a.epochs] == [s.test_loss for s in b.epochs]


def test_kfac_learns_faster_than_sgd_in_two_epochs(digits):
    protocol = Protocol(**SMALL)
    kfac = train_run(digits, "kfac-exact", 0.3, 0, protocol)
    sgd = train_run(digits, "sgd", 0.1, 0, protocol)
    assert kfac.epochs[1].test_accuracy > 0.85
    assert kfac.epochs[1].train_loss < sgd.epochs[1].train_loss


def test_sampled_fisher_runs_and_differs(digits):
    protocol = Protocol(**dict(SMALL, epochs=1))
    empirical = train_run(digits, "kfac-exact", 0.1, 0, protocol)
    sampled = train_run(digits, "kfac-exact", 0.1, 0, protocol, KFACOptions(fisher="sampled"))
    assert sampled.epochs[1].train_loss != empirical.epochs[1].train_loss
    assert sampled.epochs[1].test_accuracy > 0.6


def test_sweep_never_evaluates_test(digits):
    protocol = Protocol(**dict(SMALL, lr_grids={"sgd": (0.03, 0.3), "adam": (0.01,), "kfac": (0.1,)}))
    comparison = run_comparison(digits, ["sgd"], protocol)
    assert len(comparison.sweep_runs) == 2
    for run in comparison.sweep_runs:
        assert run.phase == "sweep"
        assert all(s.test_accuracy is None and s.test_loss is None for s in run.epochs)
    assert [e.lr for e in comparison.sweep if e.selected] == [comparison.learning_rates["sgd"]]
    assert comparison.runs[0].lr == comparison.learning_rates["sgd"]


def test_kfac_variants_share_the_swept_rate(digits):
    from amc.train.inverse_backends import ExactBackend

    protocol = Protocol(**dict(SMALL, epochs=1, lr_grids={"sgd": (0.1,), "adam": (0.01,), "kfac": (0.1, 0.3)}))
    comparison = run_comparison(digits, ["kfac-analog", "kfac-exact"], protocol,
                                analog_backend=lambda seed: ExactBackend())
    rates = comparison.learning_rates
    assert rates["kfac-analog"] == rates["kfac-exact"]
    assert {r.optimizer for r in comparison.sweep_runs} == {"kfac-exact"}


def test_protocol_rejects_shared_seeds():
    with pytest.raises(ValueError, match="both sweep and reported seeds"):
        Protocol(seeds=(0, 1), sweep_seeds=(1,))
    with pytest.raises(ValueError, match="target_accuracy"):
        Protocol(target_accuracy=96)


def _fake_run(optimizer, seed, accuracies, lr=0.1):
    epochs = [EpochStats(e, 1.0 / (e + 1), 0.0, 0.0, a, 0.0, a, 0.01, 0) for e, a in enumerate(accuracies)]
    return RunResult(optimizer, lr, seed, "eval", epochs)


def test_epochs_to_target_and_summary():
    protocol = Protocol(epochs=4, target_accuracy=0.9, seeds=(0, 1))
    runs = [
        _fake_run("kfac-exact", 0, [0.5, 0.92, 0.95, 0.96, 0.97]),
        _fake_run("kfac-exact", 1, [0.5, 0.8, 0.91, 0.96, 0.97]),
        _fake_run("sgd", 0, [0.5, 0.6, 0.7, 0.8, 0.95]),
        _fake_run("sgd", 1, [0.5, 0.6, 0.7, 0.8, 0.85]),
    ]
    summaries = summarize(runs, protocol)
    assert summaries["kfac-exact"].epochs_to_target == [1, 2]
    assert summaries["kfac-exact"].mean_epochs == 1.5
    assert summaries["sgd"].epochs_to_target == [4, None]
    # A seed that never reaches the target counts as epochs + 1 = 5.
    assert summaries["sgd"].mean_epochs == 4.5
    assert summaries["sgd"].format_epochs().startswith(">=")


def test_paired_reduction():
    from amc.train.experiment import Comparison

    protocol = Protocol(epochs=4, target_accuracy=0.9, seeds=(0, 1))
    runs = [
        _fake_run("kfac-exact", 0, [0.5, 0.92, 0.95, 0.96, 0.97]),
        _fake_run("kfac-exact", 1, [0.5, 0.8, 0.91, 0.96, 0.97]),
        _fake_run("sgd", 0, [0.5, 0.6, 0.7, 0.8, 0.95]),
        _fake_run("sgd", 1, [0.5, 0.6, 0.91, 0.95, 0.95]),
    ]
    comparison = Comparison(None, protocol, KFACOptions(), {}, [], [], runs, 0.0)
    mean, spread = comparison.paired_reduction("kfac-exact", "sgd")
    assert mean == pytest.approx((0.75 + 0.0) / 2)
    assert spread == pytest.approx(0.5303, abs=1e-3)
    assert comparison.paired_reduction("kfac-exact", "adam") is None


def test_reports_write_csv_png_and_summary(digits, tmp_path):
    protocol = Protocol(**dict(SMALL, seeds=(0, 1)))
    comparison = run_comparison(digits, ["kfac-exact", "sgd", "adam"], protocol)
    report.write_epochs_csv(tmp_path / "epochs.csv", comparison.sweep_runs + comparison.runs)
    report.write_summary_csv(tmp_path / "summary.csv", comparison)
    report.write_sweep_csv(tmp_path / "sweep.csv", comparison)
    report.plot_comparison(tmp_path / "comparison.png", comparison)

    with open(tmp_path / "epochs.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(report.EPOCH_COLUMNS)
    assert len(rows) == 3 * 2 * (protocol.epochs + 1)
    assert {r["optimizer"] for r in rows} == {"kfac-exact", "sgd", "adam"}
    with open(tmp_path / "summary.csv") as handle:
        summary = {r["optimizer"]: r for r in csv.DictReader(handle)}
    assert set(summary) == {"kfac-exact", "sgd", "adam"}
    assert summary["kfac-exact"]["reduction_vs_sgd"] != ""
    assert (tmp_path / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    text = report.format_summary(comparison)
    assert "reported 26%" in text
    assert "reported 61%" in text
    assert "kfac-exact" in text
