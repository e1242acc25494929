"""The stored views behind the clickable maps: how many poses, and the confusions panel."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from robustlens.errors import BadInput
from robustlens.semantic.views import MAX_AUTO_POSES, ViewSpec, auto_stride, confusions, view_axes


@pytest.mark.parametrize("sizes,stride,poses", [([120, 34], 4, 310), ([36, 11], 2, 114),
                                                ([4, 3], 1, 12), ([360], 2, 181)])
def test_auto_stride_keeps_at_most_320_poses(sizes, stride, poses):
    assert auto_stride(sizes) == stride
    ds = xr.Dataset({"score": (tuple(f"d{i}" for i in range(len(sizes))), np.zeros(sizes))},
                    coords={f"d{i}": np.arange(n, dtype=float) for i, n in enumerate(sizes)})
    axes = view_axes(ds, None)
    assert int(np.prod([len(v) for _, v in axes])) == poses <= MAX_AUTO_POSES
    assert all(v[-1] == n - 1 for (_, v), n in zip(axes, sizes, strict=True))  # last kept


def test_view_spec_is_validated():
    with pytest.raises(BadInput, match="views.stride"):
        ViewSpec(stride=0)
    assert ViewSpec().stride is None


def test_confusions_known_answer():
    """Class 7 fails (score < 0.5) on 6 of 12 cells: class 3 wins on 4 of them (67%) and the
    true class itself on 2 (33%); the example of class 3 is its failing cell nearest their
    centre."""
    score = np.array([[0.9, 0.9, 0.1], [0.9, 0.9, 0.1], [0.2, 0.3, 0.1], [0.9, 0.9, 0.4]])
    top1 = np.array([[7, 7, 3], [7, 7, 3], [3, 7, 3], [7, 7, 7]])
    ds = xr.Dataset({"score": (("a", "e"), score), "top1": (("a", "e"), top1)},
                    coords={"a": [0.0, 10.0, 20.0, 30.0], "e": [0.0, 5.0, 10.0]})
    labels = [f"c{i}" for i in range(10)]
    c = confusions(ds, 7, labels)
    assert c["failing"] == 6 and c["poses"] == 12
    first, second = c["classes"][:2]
    assert (first["class_name"], first["n"]) == ("c3", 4) and first["share"] == pytest.approx(4 / 6)
    assert second["true_class"] and second["n"] == 2 and "pose" not in second
    assert first["pose"] in ({"a": 10.0, "e": 10.0}, {"a": 20.0, "e": 10.0})


def test_interactive_map_of_a_map_with_gaps():
    """A map with NaN cells (written by another tool) still draws: the gaps are None in the
    figure's JSON, which has no NaN."""
    from robustlens.report.interactive import map_figure, to_json

    score = np.array([[0.2, np.nan], [0.7, 0.9]])
    ds = xr.Dataset({"score": (("azimuth", "elevation"), score),
                     "top1": (("azimuth", "elevation"), np.array([[1, 2], [3, 3]]))},
                    coords={"azimuth": [0.0, 90.0], "elevation": [0.0, 30.0]})
    fig = map_figure(ds, [], [], lambda lab: "red", ["a", "b", "c", "d"])
    text = to_json(fig)
    assert "NaN" not in text and "null" in text
    assert fig["data"][0]["customdata"][1][0] == "c"  # row = elevation 30, column = azimuth 0
