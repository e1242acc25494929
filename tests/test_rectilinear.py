"""`regions.rectilinear`: the largest box on a non-uniform grid, against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from robustlens.regions.rectilinear import GridAxis, maximal_boxes


def brute_force(good: np.ndarray, axes: tuple[GridAxis, GridAxis], measure: str) -> float:
    """Largest volume over every all-good index box containing the start (unwrapped
    ranges on periodic axes, at most one period wide)."""
    m0, m1 = good.shape
    s0, s1 = axes[0].start, axes[1].start

    def ranges(ax: GridAxis, s: int, m: int) -> list[tuple[int, int]]:
        if ax.periodic:
            return [(s - u, s + d) for u in range(m) for d in range(m) if u + d + 1 <= m]
        return [(a, b) for a in range(0, s + 1) for b in range(s, m)]

    best = -1.0
    for (a0, b0), (a1, b1) in itertools.product(ranges(axes[0], s0, m0),
                                                ranges(axes[1], s1, m1)):
        rows = np.mod(np.arange(a0, b0 + 1), m0)
        cols = np.mod(np.arange(a1, b1 + 1), m1)
        if not good[np.ix_(rows, cols)].all():
            continue
        v = float(axes[0].extent(a0, b0, measure) * axes[1].extent(a1, b1, measure))
        best = max(best, v)
    return best


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("measure", ["span", "middle", "outer"])
def test_maximal_boxes_hold_the_largest_box(seed, measure):
    rng = np.random.default_rng(seed)
    m0, m1 = int(rng.integers(3, 8)), int(rng.integers(3, 8))
    per0, per1 = bool(seed % 2), bool(seed % 3 == 0)
    c0 = np.sort(rng.uniform(0, 10, m0))
    c1 = np.sort(rng.uniform(0, 5, m1))
    s0, s1 = (0 if per0 else int(rng.integers(m0))), (0 if per1 else int(rng.integers(m1)))
    if per0:
        c0 = c0 - c0[0]  # periodic lines live in [x0, x0 + period), start at index 0
    if per1:
        c1 = c1 - c1[0]
    axes = (GridAxis(c0, s0, per0, 12.0), GridAxis(c1, s1, per1, 6.0))
    good = rng.random((m0, m1)) < 0.7
    good[s0, s1] = True
    got = float(maximal_boxes(good, axes).volume(measure).max())
    assert got == pytest.approx(brute_force(good, axes, measure))


def test_measures_on_a_uniform_lattice():
    """On a uniform lattice "middle" counts nodes, "span" and "outer" are one step less
    and one step more per dim (except at the domain edge)."""
    c = np.arange(6.0)
    ax = GridAxis(c, 2)
    assert float(ax.extent(1, 3, "span")) == 2.0
    assert float(ax.extent(1, 3, "middle")) == 3.0
    assert float(ax.extent(1, 3, "outer")) == 4.0
    assert float(ax.extent(0, 5, "outer")) == 5.0  # the edges: nothing beyond
    per = GridAxis(c, 0, periodic=True, period=6.0)
    assert float(per.extent(-1, 4, "span")) == 6.0  # all six lines: the full circle
    assert float(per.extent(-1, 1, "outer")) == 4.0  # wraps: lines 4 (= -2) .. 2


def test_a_thin_band_beats_a_tall_strip_when_its_lines_say_so():
    """The choice the grid stage exists for: boxes of different shape, ranked on a grid
    refined where they differ."""
    good = np.zeros((5, 5), bool)
    good[2, :] = True  # a tall strip through the start (dim 0 thin)
    good[:, 2] = True  # a wide band (dim 1 thin)
    ax0 = GridAxis(np.array([0.0, 1.0, 1.9, 2.1, 3.0]), 2)  # lines close around the start
    ax1 = GridAxis(np.array([0.0, 2.0, 4.0, 6.0, 8.0]), 2)
    mb = maximal_boxes(good, (ax0, ax1))
    lo, hi = mb.box(int(np.argmax(mb.volume("middle"))))
    assert (lo, hi) == ([0, 2], [4, 2])  # the band: 3.0 x 2.0 beats the strip 0.55 x 8.0


@pytest.mark.parametrize("n", [3, 4])
def test_box_front_in_nd_holds_the_exact_largest_box(n):
    """On unit-spaced lines ("cells"), the largest box of `box_front` (with and without
    branch and bound) is the exhaustive `largest_box_mask`, periodic dims included."""
    from scipy.ndimage import gaussian_filter

    from robustlens.regions.rectilinear import box_front, largest_box_mask

    rng = np.random.default_rng(n)
    for _ in range(12):
        shape = tuple(int(v) for v in rng.integers(5, 10 if n == 3 else 7, n))
        z = gaussian_filter(rng.normal(size=shape), 1.0, mode="wrap")
        good = z > np.quantile(z, 0.4)
        s = np.argwhere(good)[rng.integers(int(good.sum()))]
        per = rng.random(n) < 0.3
        start = [int(v) for v in s]
        for i in range(n):
            if per[i]:  # periodic lines start at the start node (GridAxis convention)
                good = np.roll(good, -start[i], axis=i)
                start[i] = 0
        axes = tuple(GridAxis(np.arange(shape[i], dtype=float), start[i], bool(per[i]),
                              float(shape[i])) for i in range(n))
        lo, hi = largest_box_mask(good, start, per)
        want = float(np.prod(np.asarray(hi) - np.asarray(lo) + 1))
        assert box_front(good, axes, "cells", best_only=True).volume("cells").max() == want
        assert box_front(good, axes, "cells").volume("cells").max() == want
        good_bad = good.copy()  # a negative control: the start node bad -> no box
        good_bad[tuple(start)] = False
        assert len(box_front(good_bad, axes, "cells")) == 0
