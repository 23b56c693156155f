"""Tests for the coverage study's pool and table (xtmr_core.coverage): a plain pool's truth and resample against
plain numpy, and the Markdown table's text."""

import numpy as np

from xtmr_core.coverage import Pool, format_table, study


def _plain_pool() -> Pool:
    rng = np.random.default_rng(0)
    correct = rng.random((2, 12, 30)) < np.array([0.8, 0.7])[:, None, None]  # plans x trials x images
    return Pool(("none", "lrp"), correct, None, None, None)


def test_plain_pool_truth_is_the_grand_mean_and_a_resample_keeps_whole_trials():
    pool = _plain_pool()
    np.testing.assert_allclose(pool.truth(), pool.correct.mean(axis=(1, 2)))
    correct, strata = pool.resample(5, np.random.default_rng(1))
    assert strata is None and correct.shape == (2, 5, 30)
    # each resampled trial is one pool trial (both plans together) with its images resampled the same way
    rng = np.random.default_rng(1)
    cols = rng.integers(0, 30, size=30)
    rows = rng.integers(0, 12, size=5)
    np.testing.assert_array_equal(correct, pool.correct[:, rows][:, :, cols])


def test_study_and_its_table_name_every_quantity_in_points():
    table = study(_plain_pool(), [(1, 0)], ns=(5,), reps=20, seed=3)
    assert list(table["quantity"]) == ["mean none", "mean lrp", "lrp - none"]
    assert ((table["coverage"] >= 0) & (table["coverage"] <= 1)).all()
    table.insert(0, "design", "plain")
    table.insert(0, "point", "toy")
    lines = format_table(table).splitlines()
    assert lines[0].startswith("| point | design | quantity |") and len(lines) == 2 + 3
    truth = 100 * _plain_pool().truth()
    assert lines[2].startswith(f"| toy | plain | mean none | 5 | {truth[0]:+.3f} |")
    assert lines[4].startswith(f"| toy | plain | lrp - none | 5 | {truth[1] - truth[0]:+.3f} |")
    assert lines[2].endswith("|  |") and not lines[4].endswith("|  |")  # false verdicts: pairs only
