"""Automatic start points: correct poses only, spread by farthest-point sampling."""

from __future__ import annotations

import numpy as np
import pytest

from robustlens.errors import BadInput
from robustlens.regions.starts import auto_starts

AZ = np.arange(0, 360, 10.0)   # 36 cells, periodic
EL = np.arange(-10, 90, 10.0)  # 10 cells


def test_auto_starts_only_correct_cells_and_best_first():
    top1 = np.full((36, 10), 7)
    score = np.zeros((36, 10))
    top1[3:6, 2:4] = 1     # azimuth 30..50, elevation 10..20
    top1[20:22, 7] = 1     # azimuth 200..210, elevation 60
    score[4, 3] = 0.9      # the best correct cell
    score[0, 0] = 0.99     # a higher score on a wrong cell must not be picked
    pts = auto_starts(score, top1, [AZ, EL], class_id=1, k=2, periodic=[True, False],
                      widths=[360, 100])
    assert pts.shape == (2, 2)
    np.testing.assert_allclose(pts[0], [40, 20])        # best-scoring correct cell first
    assert pts[1][0] in (200, 210) and pts[1][1] == 60  # then the far-away blob


def test_auto_starts_wrap_around_azimuth():
    # correct cells at azimuth 0, 10 and 350: with wrapping, 350 is next to 0, so the
    # farthest from 0 is 10 or 350 at the same distance; without wrapping it would be 350
    top1 = np.zeros((36, 10), int)
    top1[[0, 1, 35, 18], 0] = 1
    score = np.zeros((36, 10))
    score[0, 0] = 1.0
    pts = auto_starts(score, top1, [AZ, EL], 1, k=2, periodic=[True, False], widths=[360, 100])
    np.testing.assert_allclose(pts[1], [180, -10])  # the opposite side of the turntable


def test_auto_starts_spread_and_fewer_when_few_correct():
    top1 = np.ones((36, 10), int)  # everything correct
    score = np.ones((36, 10))
    pts = auto_starts(score, top1, [AZ, EL], 1, k=4, periodic=[True, False], widths=[360, 100])
    assert len(pts) == 4 and len({tuple(p) for p in pts}) == 4
    # pairwise normalised distance is large: the four points are spread over the map
    d = [np.hypot(min(abs(a[0] - b[0]), 360 - abs(a[0] - b[0])) / 360, (a[1] - b[1]) / 100)
         for i, a in enumerate(pts) for b in pts[i + 1:]]
    assert min(d) > 0.3
    top1[:] = 0
    top1[5, 5] = 1
    assert len(auto_starts(score, top1, [AZ, EL], 1, k=4)) == 1
    assert auto_starts(score, top1 * 0, [AZ, EL], 1, k=4).shape == (0, 2)


def test_auto_starts_bad_shapes():
    with pytest.raises(BadInput, match="do not agree"):
        auto_starts(np.zeros((3, 4)), np.zeros((4, 3)), [np.arange(3), np.arange(4)], 0, 2)


def test_auto_starts_need_the_threshold():
    # a correct top-1 below the region threshold is no robust start
    top1 = np.ones((36, 10), int)
    score = np.full((36, 10), 0.3)
    score[10, 4] = 0.8
    score[30, 8] = 0.6
    pts = auto_starts(score, top1, [AZ, EL], 1, k=4, periodic=[True, False],
                      widths=[360, 100], threshold=0.5)
    np.testing.assert_allclose(pts, [[100, 30], [300, 70]])
