"""Ground truth from dense maps: exact largest boxes, map boxes in units, IoU, map scores."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import xarray as xr

from robustlens.errors import BadInput
from robustlens.regions import (
    find_region,
    ground_truth_box,
    iou,
    largest_box,
    map_domain,
    map_score_fn,
)


def brute_force(good: np.ndarray, start, periodic=None) -> int:
    """Cells of the largest all-good box containing ``start`` (periodic axes wrap)."""
    per = np.zeros(good.ndim, bool) if periodic is None else np.asarray(periodic, bool)
    ranges = []
    for s, m, p in zip(start, good.shape, per, strict=True):
        if p:
            opts = [(lo, lo + w - 1) for w in range(1, m + 1) for lo in range(s - w + 1, s + 1)]
        else:
            opts = [(lo, hi) for lo in range(0, s + 1) for hi in range(s, m)]
        ranges.append(opts)
    best = 0
    for box in itertools.product(*ranges):
        idx = np.ix_(
            *[np.arange(lo, hi + 1) % m for (lo, hi), m in zip(box, good.shape, strict=True)]
        )
        if good[idx].all():
            best = max(best, int(np.prod([hi - lo + 1 for lo, hi in box])))
    return best


def cells(lo, hi) -> int:
    return int(np.prod([h - l_ + 1 for l_, h in zip(lo, hi, strict=True)]))


def check_box(good, lo, hi, periodic=None):
    per = np.zeros(good.ndim, bool) if periodic is None else np.asarray(periodic, bool)
    idx = np.ix_(*[np.arange(a, b + 1) % m for a, b, m in zip(lo, hi, good.shape, strict=True)])
    assert good[idx].all()
    for a, b, m, p in zip(lo, hi, good.shape, per, strict=True):
        assert b - a + 1 <= m
        if not p:
            assert 0 <= a and b < m


# --------------------------------------------------------------------------- largest_box
def test_planted_rectangle_is_found_exactly():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.0, 0.45, size=(40, 30))
    scores[7:19, 4:27] = rng.uniform(0.55, 1.0, size=(12, 23))
    lo, hi = largest_box(scores, (10, 20))
    assert (lo, hi) == ((7, 4), (18, 26))
    assert largest_box(scores, (18, 4)) == ((7, 4), (18, 26))


@pytest.mark.parametrize("shape", [(13,), (6, 7), (4, 5, 4)])
@pytest.mark.parametrize("periodic", [False, True])
def test_matches_brute_force_on_random_grids(shape, periodic):
    rng = np.random.default_rng(len(shape) * 10 + periodic)
    per = [periodic] + [False] * (len(shape) - 1) if len(shape) < 3 else [False, periodic, False]
    n_cases = {1: 30, 2: 25, 3: 6}[len(shape)]
    sizes = []
    for _ in range(n_cases):
        scores = np.where(rng.uniform(size=shape) < 0.8, 0.9, 0.1) + rng.uniform(-0.05, 0.05, shape)
        start = tuple(int(rng.integers(m)) for m in shape)
        good = scores >= 0.5
        lo, hi = largest_box(scores, start, 0.5, per)
        want = brute_force(good, start, per)
        if want == 0:
            assert all(b == a - 1 for a, b in zip(lo, hi, strict=True))
            continue
        assert cells(lo, hi) == want
        check_box(good, lo, hi, per)
        assert all(a <= s <= b for a, s, b in zip(lo, start, hi, strict=True))
        sizes.append(want)
    assert max(sizes) >= 4  # the grids are not trivial


def test_2d_periodic_in_both_axes_matches_brute_force():
    rng = np.random.default_rng(5)
    for _ in range(15):
        good = rng.uniform(size=(5, 6)) < 0.8
        start = (int(rng.integers(5)), int(rng.integers(6)))
        lo, hi = largest_box(good.astype(float), start, 0.5, [0, 1])
        assert cells(lo, hi) * good[start] == brute_force(good, start, [True, True])


def test_periodic_wrap_across_the_seam():
    scores = np.zeros((12, 5))
    scores[[10, 11, 0, 1, 2], 1:4] = 1.0
    assert largest_box(scores, (0, 2)) == ((0, 1), (2, 3))
    lo, hi = largest_box(scores, (0, 2), periodic=[0])
    assert (lo, hi) == ((-2, 1), (2, 3))
    assert largest_box(scores, (11, 2), periodic=[True, False]) == ((10, 1), (14, 3))
    full = np.ones((8, 3))
    full[:, 0] = 0
    assert largest_box(full, (3, 1), periodic=[0]) == ((0, 1), (7, 2))


def test_empty_when_start_cell_is_below_threshold_or_nan():
    scores = np.ones((4, 4))
    scores[1, 2] = 0.2
    assert largest_box(scores, (1, 2)) == ((1, 2), (0, 1))
    scores[1, 2] = np.nan
    assert largest_box(scores, (1, 2)) == ((1, 2), (0, 1))
    assert largest_box(np.array([0.1, 0.9]), 0) == ((0,), (-1,))


def test_largest_box_bad_input():
    with pytest.raises(BadInput, match="start_index"):
        largest_box(np.ones((3, 3)), (1,))
    with pytest.raises(BadInput, match="start_index"):
        largest_box(np.ones((3, 3)), (1, 3))
    with pytest.raises(BadInput, match="periodic"):
        largest_box(np.ones((3, 3)), (1, 1), periodic=[2])


# ------------------------------------------------------------------------ on xarray maps
def semantic_map(fn, az_step=3.0, el_step=3.0):
    az = np.arange(0.0, 360.0, az_step)
    el = np.arange(-10.0, 90.0 + 1e-9, el_step)
    a, e = np.meshgrid(az, el, indexing="ij")
    return xr.DataArray(
        fn(a, e),
        dims=("azimuth", "elevation"),
        coords={"azimuth": az, "elevation": el},
        name="score",
    )


def test_ground_truth_box_in_parameter_units():
    da = semantic_map(lambda a, e: ((a >= 60) & (a <= 120) & (e >= 20) & (e <= 50)) * 1.0)
    lower, upper = ground_truth_box(da, (90.0, 30.0))
    np.testing.assert_allclose(lower, [58.5, 18.5])  # half a step around the cell centres
    np.testing.assert_allclose(upper, [121.5, 51.5])
    lower, upper = ground_truth_box(da, {"elevation": 30.0, "azimuth": 91.4})
    np.testing.assert_allclose(lower, [58.5, 18.5])
    lower, upper = ground_truth_box(da, (10.0, 30.0))  # not robust: empty at x0
    np.testing.assert_array_equal(lower, [10.0, 30.0])
    np.testing.assert_array_equal(upper, [10.0, 30.0])


def test_ground_truth_box_clipped_to_span_and_periodic():
    da = semantic_map(lambda a, e: ((a <= 30) | (a >= 330)) * (e <= 40) * 1.0)
    lower, upper = ground_truth_box(da, (10.0, 0.0))
    np.testing.assert_allclose(lower, [0.0, -10.0])  # clipped to the coordinate span
    np.testing.assert_allclose(upper, [31.5, 39.5])
    lower, upper = ground_truth_box(da, (10.0, 0.0), periodic=["azimuth"])
    np.testing.assert_allclose(lower, [-31.5, -10.0])
    np.testing.assert_allclose(upper, [31.5, 39.5])
    lower, upper = ground_truth_box(da, (350.0, 0.0), periodic=["azimuth"])
    np.testing.assert_allclose(lower, [328.5, -10.0])
    np.testing.assert_allclose(upper, [391.5, 39.5])
    ring = semantic_map(lambda a, e: (e <= 40) * 1.0)
    lower, upper = ground_truth_box(ring, (100.0, 0.0), periodic=["azimuth"])
    np.testing.assert_allclose([lower[0], upper[0]], [0.0, 360.0])
    lo_d, hi_d = map_domain(ring, periodic=["azimuth"])
    np.testing.assert_allclose(lo_d, [0.0, -10.0])
    np.testing.assert_allclose(hi_d, [360.0, 89.0])


def test_ground_truth_box_descending_coords_and_bad_maps():
    da = semantic_map(lambda a, e: (e >= 20) * 1.0)
    flipped = da.isel(elevation=slice(None, None, -1))
    np.testing.assert_allclose(
        ground_truth_box(flipped, (5.0, 30.0))[0], ground_truth_box(da, (5.0, 30.0))[0]
    )
    bad = da.assign_coords(elevation=np.r_[da.elevation.values[:-1], 200.0])
    with pytest.raises(BadInput, match="uniformly"):
        ground_truth_box(bad, (5.0, 30.0))
    with pytest.raises(BadInput, match="x0"):
        ground_truth_box(da, (5.0, 130.0))
    with pytest.raises(BadInput, match="x0"):
        ground_truth_box(da, (5.0,))
    with pytest.raises(BadInput, match="map_da"):
        ground_truth_box(np.ones((3, 3)), (1.0, 1.0))


# ----------------------------------------------------------------------------------- iou
def test_iou_known_values():
    a = ([0.0, 0.0], [2.0, 2.0])
    assert iou(a, a) == 1.0
    assert iou(a, ([2.0, 0.0], [4.0, 2.0])) == 0.0
    assert iou(a, ([1.0, 0.0], [3.0, 2.0])) == pytest.approx(1 / 3)
    assert iou(([0.0], [1.0]), ([0.0], [4.0])) == pytest.approx(0.25)
    assert iou(([5.0], [5.0]), ([5.0], [5.0])) == 1.0
    assert iou(([5.0], [5.0]), ([6.0], [6.0])) == 0.0
    # periodic: [-30, 30] and [330, 390] are the same arc; [350, 370] is a third of it
    assert iou(([-30.0], [30.0]), ([330.0], [390.0]), period=[360]) == pytest.approx(1.0)
    assert iou(([-30.0], [30.0]), ([350.0], [370.0]), period=[360]) == pytest.approx(1 / 3)
    assert iou(([-30.0], [30.0]), ([350.0], [370.0])) == 0.0
    with pytest.raises(BadInput):
        iou(([0.0], [1.0]), ([0.0, 0.0], [1.0, 1.0]))


# ------------------------------------------------------------------------- map_score_fn
def test_map_score_fn_interpolates_and_wraps():
    da = semantic_map(lambda a, e: a / 360.0 + 0.0 * e, az_step=90.0, el_step=50.0)
    f = map_score_fn(da)
    pts = np.array([[90.0, 40.0], [135.0, 0.0], [400.0, 0.0], [-10.0, 200.0]])
    np.testing.assert_allclose(f(pts), [0.25, 0.375, 0.75, 0.0])  # clamped outside
    fp = map_score_fn(da, periodic=["azimuth"])
    np.testing.assert_allclose(fp(np.array([[315.0, 0.0], [450.0, 0.0]])), [0.375, 0.25])
    np.testing.assert_allclose(fp.domain[1], [360.0, 90.0])
    with pytest.raises(BadInput, match="NaN"):
        map_score_fn(da.where(da < 0.5))


def test_methods_on_a_real_map_agree_with_ground_truth():
    def fn(a, e):
        d = np.abs(((a - 20.0 + 180.0) % 360.0) - 180.0)
        return (
            (1 / (1 + np.exp(-(40 - d) / 2)))
            * (1 / (1 + np.exp(-(e - 5) / 2)))
            * (1 / (1 + np.exp(-(60 - e) / 2)))
        )

    da = semantic_map(fn)
    truth = ground_truth_box(da, (350.0, 30.0), periodic=["azimuth"])
    f = map_score_fn(da, periodic=["azimuth"])
    for method in ("naive", "oir_b", "oir_w"):
        res = find_region(f, [350.0, 30.0], f.domain, method=method, periodic=[0])
        assert res.wrapped[0]
        assert iou(res.box, truth, period=[360.0, None]) >= 0.85
    paper = find_region(f, [350.0, 30.0], f.domain, method="oir_b", variant="paper")
    assert iou(paper.box, truth, period=[360.0, None]) < 0.5  # overshoots soft edges
