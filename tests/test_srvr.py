"""SRVR: mean volume ratio, bootstrap CI, fraction of runs that never grew."""

from __future__ import annotations

import numpy as np
import pytest

from robustlens.errors import BadInput
from robustlens.regions import PAPER_DOMAIN, PAPER_STARTS, SRVRSummary, find_region, srvr


def test_paper_constants():
    assert PAPER_STARTS == [(130, 30), (50, 20), (200, 15), (310, 50)]
    assert PAPER_DOMAIN == ((0, -10), (360, 90))


def test_mean_ci_and_not_grown_on_known_ratios():
    ratios = [0.0, 0.0, 0.1, 0.2, 0.3, 0.0, 0.4, 0.05]
    s = srvr(ratios)
    assert isinstance(s, SRVRSummary)
    assert s.mean == pytest.approx(np.mean(ratios))
    assert s.low < s.mean < s.high
    assert 0.0 <= s.low and s.high <= 0.4
    assert s.frac_not_grown == pytest.approx(3 / 8)
    assert s.n == 8 and s.ci == 0.95 and s.n_boot == 2000
    assert set(s.to_dict()) >= {"mean", "low", "high", "frac_not_grown", "n"}


def test_bootstrap_is_seeded_and_narrows_with_more_runs():
    rng = np.random.default_rng(1)
    small = rng.uniform(0, 0.2, 20)
    big = rng.uniform(0, 0.2, 2000)
    assert srvr(small, seed=3) == srvr(small, seed=3)
    assert srvr(small, seed=3).low != srvr(small, seed=4).low
    s_small, s_big = srvr(small), srvr(big)
    assert (s_big.high - s_big.low) < 0.3 * (s_small.high - s_small.low)
    s90 = srvr(small, ci=0.9)
    assert s90.high - s90.low < s_small.high - s_small.low


def test_ci_coverage_is_close_to_nominal():
    rng = np.random.default_rng(7)
    true_mean = 0.5 * 0.125  # half the runs grow, to U(0, 0.25)
    hits = 0
    trials = 200
    for _ in range(trials):
        x = np.where(rng.uniform(size=60) < 0.5, 0.0, rng.uniform(0, 0.25, 60))
        s = srvr(x, n_boot=500, seed=int(rng.integers(1 << 30)))
        hits += s.low <= true_mean <= s.high
    assert 0.88 <= hits / trials <= 0.99


def test_cluster_bootstrap_by_object_is_wider_for_clustered_runs():
    rng = np.random.default_rng(2)
    objects = np.repeat(np.arange(10), 4)  # 10 objects x 4 start points
    per_object = rng.uniform(0, 0.3, 10)
    ratios = np.clip(per_object[objects] + rng.normal(0, 0.005, 40), 0, 1)
    iid = srvr(ratios)
    clustered = srvr(ratios, groups=objects)
    assert clustered.mean == iid.mean
    assert clustered.high - clustered.low > 1.5 * (iid.high - iid.low)


def test_accepts_region_results_and_their_dicts():
    def f(x):
        return ((x[:, 0] > 100) & (x[:, 0] < 160) & (x[:, 1] < 60)).astype(float)

    runs = [find_region(f, start, PAPER_DOMAIN) for start in PAPER_STARTS]
    assert [r.grew for r in runs] == [True, False, False, False]
    s = srvr(runs)
    assert s.frac_not_grown == 0.75
    assert s.mean == pytest.approx(runs[0].volume_ratio / 4)
    assert runs[0].volume_ratio == pytest.approx(60 * 70 / (360 * 100), rel=0.02)
    assert srvr([r.to_dict() for r in runs]) == s


def test_single_run_has_a_degenerate_interval():
    s = srvr([0.3])
    assert (s.mean, s.low, s.high, s.frac_not_grown, s.n) == (0.3, 0.3, 0.3, 0.0, 1)


@pytest.mark.parametrize(
    "args, culprit",
    [
        (([],), "no runs"),
        (([0.1, 1.5],), "results[1]"),
        (([0.1, float("nan")],), "results[1]"),
        (([0.1, "x"],), "results[1]"),
        (([{"grew": True}],), "results[0]"),
        (([0.1, 0.2], 0), "n_boot"),
        (([0.1, 0.2], 100, 1.0), "ci"),
    ],
)
def test_bad_input(args, culprit):
    with pytest.raises(BadInput, match=culprit.replace("[", r"\[").replace("]", r"\]")):
        srvr(*args)
    with pytest.raises(BadInput, match="groups"):
        srvr([0.1, 0.2], groups=[1])
