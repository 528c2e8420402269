import json

import numpy as np
import pandas as pd
import pytest

from cod.config import SweepConfig
from cod.errors import ConfigError
from cod.sweep import _check_resumable, baseline_of, cell_name, summarise_results

SUMMARY_COLUMNS = ["method", "k", "n_seeds", "mean", "std", "ci_low", "ci_high", "paired_diff", "paired_ci_low",
                   "paired_ci_high", "seeds_won"]  # fmt: skip


def synthetic_results():
    rng = np.random.default_rng(0)
    rows = []
    for k in (8, 16):
        for seed in range(4):
            kd = 0.55 + 0.02 * (k // 8) + 0.01 * rng.normal()
            rows.append({"method": "kd", "k": k, "seed": seed, "student_accuracy": kd, "status": "done", "teacher_accuracy": 0.85})
            # CoD wins seeds 0-2 by 0.05 and loses seed 3 by 0.01.
            cod = kd + (0.05 if seed < 3 else -0.01)
            rows.append({"method": "kd+cod", "k": k, "seed": seed, "student_accuracy": cod, "status": "done", "teacher_accuracy": 0.85})
    rows.append({"method": "kd+cod", "k": 8, "seed": 9, "student_accuracy": 0.99, "status": "error", "teacher_accuracy": 0.85})
    return pd.DataFrame(rows)


def test_summary_has_the_issue_columns_and_paired_statistics():
    summary = summarise_results(synthetic_results(), methods=["kd", "kd+cod"])
    assert set(SUMMARY_COLUMNS) <= set(summary.columns)
    assert list(zip(summary.method, summary.k)) == [("kd", 8), ("kd", 16), ("kd+cod", 8), ("kd+cod", 16)]
    cod8 = summary[(summary.method == "kd+cod") & (summary.k == 8)].iloc[0]
    assert cod8.n_seeds == 4  # the failed cell (seed 9) is left out
    assert cod8.paired_diff == pytest.approx((3 * 0.05 - 0.01) / 4)
    assert cod8.seeds_won == 3 and cod8.seeds_lost == 1
    assert cod8.paired_ci_low <= cod8.paired_diff <= cod8.paired_ci_high
    assert cod8.baseline == "kd" and cod8.teacher_accuracy == 0.85
    kd8 = summary[(summary.method == "kd") & (summary.k == 8)].iloc[0]
    assert np.isnan(kd8.paired_diff) and kd8.ci_low <= kd8["mean"] <= kd8.ci_high


def test_summary_of_nothing_is_an_empty_table_with_the_columns():
    assert set(SUMMARY_COLUMNS) <= set(summarise_results(pd.DataFrame()).columns)


def test_names_and_baselines():
    assert cell_name("lwd+cod", 16, 3) == "lwd_cod-k16-s3"
    assert baseline_of("lwd+cod") == "lwd" and baseline_of("kd") is None and baseline_of("setfit") is None


def test_a_sweep_folder_refuses_other_settings_but_accepts_a_larger_grid(tmp_path):
    config = SweepConfig(out=str(tmp_path), ks=(8,), seeds=(0,), methods=("kd",), distill={"epochs": 2})
    _check_resumable(config, tmp_path)
    assert json.loads((tmp_path / "sweep.json").read_text())["settings"]["distill"] == {"epochs": 2}
    _check_resumable(config.replace(ks=(8, 16), seeds=(0, 1), methods=("kd", "kd+cod")), tmp_path)
    with pytest.raises(ConfigError, match="epochs.*new --out"):
        _check_resumable(config.replace(distill={"epochs": 3}), tmp_path)
