"""Property tests of the grid and config parsers, and the lazy pose generation.

Whatever the text, a parser either returns a valid value or raises BadInput (one line):
never another exception, never a non-finite or out-of-range grid value.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robustlens.errors import BadInput
from robustlens.render.scene import PARAMETERS
from robustlens.semantic import SemanticMap, parse_grid, parse_grids
from robustlens.semantic.grid import MAX_AXIS_VALUES, grid_chunks, n_poses

NUM = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-400, max_value=400),
    st.sampled_from([0.0, 1e-320, 5e-324, -0.0, 1e308, 3.0, 0.5]),
).map(repr)
NAMES = st.sampled_from([*PARAMETERS, "zoom", "", "azimuth "])


@settings(max_examples=300, deadline=None)
@given(NAMES, NUM, NUM, NUM)
def test_range_grids_are_valid_or_bad_input(name, a, b, c):
    text = f"{name}={a}:{b}:{c}"
    try:
        axis = parse_grid(text)
    except BadInput as exc:
        assert "\n" not in str(exc)
        return
    v = axis.values
    p = PARAMETERS[axis.name]
    assert 1 <= len(v) <= MAX_AXIS_VALUES
    assert np.all(np.isfinite(v)) and np.all(np.diff(v) > 0)
    assert v.min() >= p.low - 1e-6 and v.max() <= p.high + 1e-6


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_any_grid_text_is_valid_or_bad_input(text):
    try:
        parse_grid(text)
    except BadInput:
        pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_any_config_text_is_valid_or_bad_input(tmp_path_factory, text):
    from robustlens.study import load_config

    p = tmp_path_factory.mktemp("cfg") / "c.yaml"
    p.write_text(text, encoding="utf-8")
    try:
        load_config(p)
    except BadInput as exc:
        assert "\n" not in str(exc).strip()


@pytest.mark.parametrize("text", ["a: 1\na: 2\n", "semantic:\n  grid: {}\n  grid: {}\n",
                                  "models:\n  - {spec: x, spec: y}\n"])
def test_duplicate_keys_are_refused(tmp_path, text):
    from robustlens.study import load_config

    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(BadInput, match="duplicate key"):
        load_config(tmp_path / "c.yaml")


def test_merge_keys_may_be_overridden(tmp_path):
    from robustlens.study import load_config

    (tmp_path / "c.yaml").write_text("semantic:\n  fixed: {<<: {distance: 3.0, fov: 50}, "
                                     "distance: 4.0}\n")
    assert load_config(tmp_path / "c.yaml").semantic.fixed == {"distance": 4.0, "fov": 50.0}


def test_small_aliases_still_work(tmp_path):
    from robustlens.study import load_config

    (tmp_path / "c.yaml").write_text("semantic:\n  grid: &g {azimuth: '0:360:90'}\n"
                                     "models: [{spec: default, grid: *g}]\n")
    assert load_config(tmp_path / "c.yaml").models[0].grid == {"azimuth": "0:360:90"}


def test_grid_chunks_match_the_full_grid():
    axes = parse_grids(["azimuth=0:360:45", "elevation=-10:90:20", "distance=2,3"])
    full = SemanticMap(axes).points()
    lazy = np.concatenate(list(grid_chunks(axes, 7)))
    np.testing.assert_array_equal(full, lazy)
    mesh = np.meshgrid(*[a.values for a in axes], indexing="ij")
    np.testing.assert_array_equal(full, np.stack([m.ravel() for m in mesh], axis=1))


def test_samples_are_the_same_in_chunks():
    axes = parse_grids(["azimuth=0:360:1", "elevation=-10:90:1"])
    sm = SemanticMap(axes, samples=50, seed=3, batch_size=8)
    rng = np.random.default_rng(3)
    lo, hi = np.array([0.0, -10.0]), np.array([360.0, 90.0])
    np.testing.assert_allclose(sm.points(), lo + (hi - lo) * rng.random((50, 2)))


def test_huge_grid_streams_in_flat_memory():
    """3.6e8 poses: the first chunks are produced without building the (N, n) array
    (which would be 8.6 GB)."""
    axes = parse_grids(["azimuth=0:360:0.01", "elevation=-10:90:0.01"])
    assert n_poses(axes) == 360_000_000
    tracemalloc.start()
    it = SemanticMap(axes, batch_size=64).chunks()
    for _ in range(200):
        chunk = next(it)
        assert chunk.shape == (64, 2)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2_000_000, peak
