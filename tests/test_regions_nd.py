"""Robust regions in 3-D and 4-D: known answers (issue 20's targets).

* Seeded anisotropic off-centre plateaus whose edge widths differ by 100x between
  dims (`benchmarks/bench_regions_nd.plateau_cases`): in 3-D and 4-D every method of
  the default variant finds the max-volume box (IoU >= 0.9) with <= 50% of the paper
  variant's evaluations.
* Real 3-D semantic maps (tests/data/maps3d, `scripts/make_maps3d.py`) as
  piecewise-constant black boxes: the search stays within its documented budget, never
  keeps a scored point below the threshold inside its box and says when the budget ran
  out; over 4 seeded starts per map and the three methods, the volume is >= 0.9 of the
  exact largest box on average and >= 0.7 in every run, and no box holds more than 2%
  cells below the threshold (the README's "Regions in n-D" gives the benchmark's other
  starts, one of which still misses).
* The certification's pieces against brute force: the largest box holding no known bad
  point (`certify.exclude_known_bad`), faces growing back only up to known bad points,
  a kept box cut by points found since, a cut face that does not walk back into its
  hole, scattered holes cut out, shape trades out of a certified local optimum.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from test_regions import Plateau

from robustlens.regions import (
    bad_cell_share,
    find_region,
    ground_truth_box,
    iou,
    map_domain,
    map_score_fn,
)
from robustlens.regions.ours import default_max_evals

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_regions_nd import PAPER_EVALS, load_map, plateau_cases  # noqa: E402

T = 0.5
METHODS = ("naive", "oir_b", "oir_w")
MAPS = sorted((Path(__file__).parent / "data" / "maps3d").glob("*.npz"))


def _run(n: int, method: str, k: int = 10) -> np.ndarray:
    dom = (np.zeros(n), np.full(n, 100.0))
    rows = []
    for lo, hi, w, x0 in plateau_cases(n, k, seed=n):
        f = Plateau(lo, hi, w)
        truth = f.true_box(T, *dom)
        r = find_region(f, x0, dom, method=method)
        assert r.worst_score is not None and r.worst_score >= T
        assert r.n_evaluations <= default_max_evals(n)
        rows.append((iou(r.box, truth), r.volume / float(np.prod(truth[1] - truth[0])),
                     r.n_evaluations / PAPER_EVALS[method](n)))
    return np.array(rows)


@pytest.mark.parametrize("n", [3, 4])
@pytest.mark.parametrize("method", METHODS)
def test_anisotropic_plateaus_meet_the_2d_targets(method, n):
    a = _run(n, method)
    assert a[:, 0].min() >= 0.9, a[:, 0]
    assert a[:, 1].min() >= 0.95 and a[:, 1].max() <= 1.0001, a[:, 1]  # never larger
    assert a[:, 2].max() <= 0.5, a[:, 2]


def test_plateau_cases_have_100x_edge_widths_and_starts_inside():
    for n in (3, 4):
        for lo, hi, w, x0 in plateau_cases(n, 10, seed=n):
            assert w.max() / w.min() >= 50
            tl, th = Plateau(lo, hi, w).true_box(T, np.zeros(n), np.full(n, 100.0))
            assert np.all(tl < x0) and np.all(x0 < th)


def _map_runs(path: Path, k: int = 4) -> list[tuple[str, float, float]]:
    """(method, volume / exact, bad-cell share) of ``k`` seeded robust starts, checking
    on the way what every run must hold: budget, soundness, a stop reason."""
    da = load_map(path)
    assert da.ndim == 3
    per = [d for d in da.dims if d == "azimuth"]
    fn = map_score_fn(da, periodic=per, method="nearest")
    dom = map_domain(da, periodic=per)
    good = np.argwhere(da.values >= T)
    assert len(good) > 0, "a shipped 3-D map must have robust poses to start from"
    pick = good[np.random.default_rng(1).choice(len(good), size=min(k, len(good)),
                                                replace=False)]
    out = []
    for idx in pick:
        x0 = np.array([float(da[d].values[j]) for d, j in zip(da.dims, idx, strict=True)])
        gt = ground_truth_box(da, x0, T, periodic=per)
        for m in METHODS:
            r = find_region(fn, x0, dom, method=m, periodic=[0])
            assert r.n_evaluations <= default_max_evals(3)
            assert r.converged or r.stop_reason == "budget"
            assert r.worst_score is not None and r.worst_score >= T
            assert r.grew and np.all(r.lower <= x0) and np.all(x0 <= r.upper)
            out.append((m, r.volume / float(np.prod(gt[1] - gt[0])),
                        bad_cell_share(da, r.lower, r.upper, T, per)))
    return out


def test_real_3d_maps_sound_within_budget_and_near_the_exact_box():
    runs = [r for path in MAPS for r in _map_runs(path)]
    vol = np.minimum([v for _, v, _ in runs], 1.5)  # above 1: cells it never scored
    bad = np.array([b for _, _, b in runs])
    assert len(MAPS) >= 10 and len(runs) >= 100
    assert vol.mean() >= 0.9, vol.mean()
    # every run keeps 0.7 of the exact box (the release before last: 7 of 147 did not)
    assert (vol >= 0.7).all(), np.sort(vol)[:10]
    assert (bad <= 0.02).all(), np.sort(bad)[-10:]


@pytest.mark.parametrize("method", METHODS)
def test_real_3d_map_slab_is_found(method):
    """lite2 soccer from (10, 30, 4): the exact box is a slab 350 x 10 degrees x 0.25,
    one map cell thin; the search held a certified 30 x 75 box (0.63 of it) until the
    slab trades (`ours.slab_trades`)."""
    da = load_map(next(p for p in MAPS if p.stem == "lite2_soccer_azeldist"))
    fn = map_score_fn(da, periodic=["azimuth"], method="nearest")
    x0 = np.array([10.0, 30.0, 4.0])
    gt = ground_truth_box(da, x0, T, periodic=["azimuth"])
    assert gt[1][0] - gt[0][0] >= 340 and gt[1][1] - gt[0][1] <= 10
    r = find_region(fn, x0, map_domain(da, periodic=["azimuth"]), method=method, periodic=[0])
    assert r.volume >= 0.9 * float(np.prod(gt[1] - gt[0])), (r.lower, r.upper, gt)
    assert bad_cell_share(da, r.lower, r.upper, T, ["azimuth"]) <= 0.02


@pytest.mark.parametrize("n,panels", [(3, 3), (4, 6)])
def test_nd_regions_figure_draws_each_pair_of_parameters(tmp_path, monkeypatch, n, panels):
    """regions.png of an n-D search (n >= 3): one panel per pair of parameters, each with
    the box's projection; over a map covering the parameters, the slice at the start."""
    from matplotlib.figure import Figure

    import robustlens.figures as F

    names = ["azimuth", "elevation", "distance", "light_elevation"][:n]
    doc = {"params": names, "method": "oir_b", "variant": "ours",
           "domain": {"lower": [0, -10, 1.5, -30][:n], "upper": [360, 90, 4.5, 90][:n]},
           "records": [{"lower": [100, 10, 2.0, 0][:n], "upper": [150, 40, 3.0, 40][:n],
                        "start": [130, 30, 2.7, 20][:n]}]}
    coords = {d: np.linspace(lo, hi, 5) for d, lo, hi in
              zip(names, doc["domain"]["lower"], doc["domain"]["upper"], strict=True)}
    import xarray as xr

    ds = xr.Dataset({"score": (names, np.random.default_rng(0).random((5,) * n))},
                    coords=coords)
    seen: list[Figure] = []
    real = F.save_figure
    monkeypatch.setattr(F, "save_figure", lambda fig, path: (seen.append(fig), real(fig, path))[1])
    out = F.map_regions_figure(ds, [doc], tmp_path / "regions.png", title="t")
    assert out.exists() and out.stat().st_size > 0
    axes = [a for a in seen[0].axes if a.get_label() != "<colorbar>"]
    assert len(axes) == panels
    rects = [p for a in axes for p in a.patches]
    assert len(rects) == panels  # one projected box per panel
    r0 = axes[0].patches[0]
    assert (r0.get_x(), r0.get_width()) == (100, 50)


def test_region_search_modules_import_no_cycle():
    """The search's steps (state, flood, choose, faces, trade, certify, grid_stage, ours)
    form an acyclic import graph: no module imports the one that imports it, even
    under TYPE_CHECKING or inside a function."""
    import ast

    pkg = Path(__file__).resolve().parents[1] / "src" / "robustlens" / "regions"
    graph: dict[str, set[str]] = {}
    for path in pkg.glob("*.py"):
        mods = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                name = node.module
                if node.level:  # relative: from .x import y
                    name = "robustlens.regions." + name
                if name.startswith("robustlens.regions."):
                    mods.add(name.split(".")[2])
        graph[path.stem] = mods - {path.stem}
    seen: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        if seen.get(m) == 1:
            raise AssertionError("import cycle: " + " -> ".join([*stack, m]))
        if seen.get(m) == 2:
            return
        seen[m] = 1
        for d in sorted(graph.get(m, ())):
            visit(d, [*stack, m])
        seen[m] = 2

    for m in sorted(graph):
        visit(m, [])
    assert {"state", "flood", "choose", "faces", "trade", "certify"} <= set(graph)
    assert "ours" not in graph["grid_stage"]


@pytest.mark.parametrize("method,n", [("naive", 2), ("oir_b", 2), ("naive", 3), ("oir_b", 4)])
def test_budget_cost_model_covers_the_face_tests(method, n):
    """`Budget.refine_estimate` (the reserve the grid stage keeps for the final face
    bisection) is not below what the face tests really send: two dense checks of each
    face (`faces.face_points`) plus the cheap bisection rounds.  Changing one without
    the other fails here."""
    from robustlens.regions.faces import face_points

    rng = np.random.default_rng(n)
    s = _state(n, width=100.0, method=method)
    for _ in range(5):
        lines = [np.sort(rng.uniform(0, 100, int(rng.integers(2, 9)))) for _ in range(n)]
        s.axes = lines
        s.lo = np.array([c[0] for c in lines])
        s.hi = np.array([c[-1] for c in lines])
        steps = [float(rng.uniform(1, 6)) for _ in range(n)]
        sent = 0
        for i in range(n):
            dense = len(face_points(s, i, float(s.hi[i]), dense=True))
            cheap = len(face_points(s, i, float(s.hi[i]), dense=False))
            sent += 2 * (2 * dense + cheap * steps[i])  # two faces per dim
        est = s.budget.refine_estimate([len(c) for c in lines], steps, s.fine_faces)
        assert est >= sent * 0.999, (est, sent)


@pytest.mark.parametrize("method", METHODS)
def test_certification_finds_a_slab_between_lattice_and_grid_lines(method):
    """A box [20, 80]^3 scoring 1, cut by a slab 2 wide (3% of its volume) that no flood
    lattice node, face test or certification grid line falls in: only the random probes
    can find it.  The search must leave it out: the largest box around x0 is
    [20, 33] x [20, 80]^2."""
    lo, hi = np.full(3, 20.0), np.full(3, 80.0)

    def f(x: np.ndarray) -> np.ndarray:
        inside = np.all((x >= lo) & (x <= hi), axis=1)
        slab = (x[:, 0] > 33.0) & (x[:, 0] < 35.0)
        return np.where(inside & ~slab, 0.9, 0.1)

    x0 = np.array([30.0, 50.0, 50.0])
    truth = (np.array([20.0, 20.0, 20.0]), np.array([33.0, 80.0, 80.0]))
    r = find_region(f, x0, (np.zeros(3), np.full(3, 100.0)), method=method)
    assert r.worst_score is not None and r.worst_score >= T
    assert r.upper[0] <= 33.0 + 1e-9, r.box  # the slab is out
    assert iou(r.box, truth) >= 0.9, r.box
    assert r.info["certified"]
    probe = np.random.default_rng(5).uniform(r.lower, r.upper, (20000, 3))
    assert (f(probe) < T).mean() == 0.0


@pytest.mark.parametrize("n", [3, 4])
def test_budget_cert_reserve_covers_two_certification_rounds(n):
    """`Budget.cert_estimate` (the reserve the choice of the box and the trades leave the
    certification) is not below two rounds of what `certify.certify_grid` sends: changing
    the grid or the probes without the estimate fails here."""
    from robustlens.regions.certify import certify_grid

    sent: list[int] = []

    def f(x: np.ndarray) -> np.ndarray:
        sent.append(len(x))
        return np.where(x[:, 0] < 70.0, 0.9, 0.1)  # a bad slab inside: two rounds

    s = _state(n, width=100.0, f=f, x0=np.full(n, 33.3))
    s.axes = [np.linspace(0, 100, 9) for _ in range(n)]
    s.lo, s.hi = np.full(n, 10.0), np.full(n, 90.0)
    certify_grid(s)
    from robustlens.regions.state import PROBES

    rounds = [k for k in sent if k >= PROBES]  # grid + probes (the rest: face bisection)
    assert len(rounds) >= 2
    assert 2 * max(rounds) <= s.budget.cert_estimate(), (rounds, s.budget.cert_estimate())


def _state(n: int, periodic: np.ndarray | None = None, width: float = 10.0, f=None,
           x0=None, method: str = "naive"):
    """A fresh search state on [0, width]^n scoring ``f`` (default: 1 everywhere) from
    ``x0`` (default: the middle), every box face free."""
    from robustlens.regions.evaluator import Evaluator
    from robustlens.regions.params import OursParams
    from robustlens.regions.state import SearchState

    per = np.zeros(n, bool) if periodic is None else periodic
    lower, upper = np.zeros(n), np.full(n, width)
    f = (lambda x: np.ones(len(x))) if f is None else f
    ev = Evaluator(f, None, lower, upper, per, True)
    x0 = np.full(n, width / 2) if x0 is None else np.asarray(x0, dtype=float)
    return SearchState.create(ev, x0, lower, upper, per, method, dict(vars(OursParams())))


def _known(s, bad: np.ndarray) -> None:
    """Record ``bad`` as points scored below the threshold."""
    s.pts.append(np.asarray(bad, dtype=np.float64))
    s.vals.append(np.zeros(len(bad)))


def _largest_empty_box(lo, hi, x0, bad):
    """Brute force: the largest box in [lo, hi] containing x0 whose interior holds none
    of ``bad`` (faces on the points' coordinates)."""
    import itertools

    n = len(x0)
    lows = [sorted({lo[i], *[p[i] for p in bad if p[i] < x0[i]]}) for i in range(n)]
    highs = [sorted({hi[i], *[p[i] for p in bad if p[i] > x0[i]]}) for i in range(n)]
    best, arg = 0.0, None
    for a in itertools.product(*lows):
        for b in itertools.product(*highs):
            a_, b_ = np.array(a), np.array(b)
            if any(np.all((p > a_) & (p < b_)) for p in bad):
                continue
            v = float(np.prod(b_ - a_))
            if v > best:
                best, arg = v, (a_, b_)
    return best, arg


def test_exclude_known_bad_is_the_exact_largest_box_holding_none():
    """`certify.exclude_known_bad` (the final guard, and the cut of a kept or runner-up
    box): against a brute-force search, on random bad points in a 3-D box."""
    from robustlens.regions.certify import exclude_known_bad

    rng = np.random.default_rng(7)
    for _ in range(12):
        s = _state(3)
        s.lo, s.hi = np.zeros(3), np.full(3, 10.0)
        bad = rng.uniform(0, 10, (int(rng.integers(1, 7)), 3))
        _known(s, bad)
        exclude_known_bad(s)
        want, _ = _largest_empty_box(np.zeros(3), np.full(3, 10.0), s.x0, bad)
        assert not s.inside(bad, s.lo, s.hi).any()
        assert np.all(s.lo <= s.x0) and np.all(s.x0 <= s.hi)
        assert float(np.prod(s.hi - s.lo)) == pytest.approx(want, rel=1e-6), bad


def test_exclude_known_bad_opens_a_full_circle_at_the_point():
    """A full circle of azimuth cut by one bad point opens at it (all of the circle but
    the point), not at an arbitrary place."""
    from robustlens.regions.certify import exclude_known_bad

    s = _state(2, periodic=np.array([True, False]), width=360.0)
    s.lo, s.hi = np.array([0.0, 100.0]), np.array([360.0, 260.0])
    _known(s, np.array([[20.0, 180.0]]))  # on x0's elevation: only azimuth can cut it
    exclude_known_bad(s)
    assert s.hi[0] - s.lo[0] == pytest.approx(360.0, rel=1e-6)
    assert not s.inside(np.array([[20.0, 180.0]]), s.lo, s.hi).any()
    assert (s.lo[1], s.hi[1]) == (100.0, 260.0)


def test_cut_faces_grow_back_only_up_to_known_bad_points():
    """After a certification cut, a face the cut did not move may grow back, but not over
    a point already found bad in its way (inside the box's cross-section); a bad point
    outside the cross-section does not stop it; periodic dims look both ways."""
    from robustlens.regions.certify import bracket

    s = _state(3)
    s.lo, s.hi = np.full(3, 4.0), np.full(3, 6.0)
    known = np.array([[8.0, 5.0, 5.0], [7.0, 9.0, 5.0], [1.0, 4.5, 5.5]])
    up, down = bracket(s, known, 0, 1), bracket(s, known, 0, -1)
    assert (up.bad, up.step) == (8.0, None)  # (7, 9, 5) is outside the cross-section
    assert (down.bad, down.step) == (1.0, None)
    free = bracket(s, known, 2, 1)  # nothing beyond z = 6 inside the cross-section
    assert free.bad is None and free.step is not None and free.step > 0

    s = _state(3, periodic=np.array([True, False, False]))
    s.lo, s.hi = np.array([4.0, 4.0, 4.0]), np.array([6.0, 6.0, 6.0])
    only = np.array([[1.0, 5.0, 5.0]])  # 5 beyond the upper face, 3 beyond the lower
    assert bracket(s, only, 0, 1).bad == pytest.approx(11.0)
    assert bracket(s, only, 0, -1).bad == pytest.approx(1.0)


def test_a_kept_box_is_cut_by_points_found_bad_since():
    """`ours.keep_if_larger`: a certified box kept against a tried one that did not
    certify is cut away from the bad points the tried one's certification found inside
    it, and is no longer reported certified."""
    from robustlens.regions.ours import Snapshot, keep_if_larger

    s = _state(3)
    s.lo, s.hi, s.certified = np.full(3, 1.0), np.full(3, 9.0), True
    kept = Snapshot.of(s)
    s.lo, s.hi, s.certified = np.full(3, 2.0), np.full(3, 9.5), False  # tried: failed
    _known(s, np.array([[8.0, 5.0, 5.0]]))
    keep_if_larger(s, kept)
    assert s.hi[0] == pytest.approx(8.0) and s.hi[0] < 8.0
    assert (s.lo[0], s.lo[1], s.hi[1]) == (1.0, 1.0, 9.0)
    assert not s.certified


@pytest.mark.parametrize("method", ["naive", "oir_b"])
def test_scattered_holes_are_cut_out(method):
    """A box [20, 80]^3 scoring 1 but for scattered cubic holes 10 wide (like isolated
    bad cells of a real map), several between the flood lattice's nodes: the box keeps
    at most 2% of its volume in holes (the certification's guarantee) and at least 0.9
    of the largest box missing every hole, which brute force finds over the holes'
    faces."""
    import itertools

    rng = np.random.default_rng(3)
    c = rng.uniform(25, 75, (6, 3))
    c = c[np.abs(c - 50.0).max(axis=1) > 7]  # none on the start

    def f(x: np.ndarray) -> np.ndarray:
        inside = np.all((x >= 20.0) & (x <= 80.0), axis=1)
        hole = (np.abs(x[:, None, :] - c[None]) < 5.0).all(axis=2).any(axis=1)
        return np.where(inside & ~hole, 0.9, 0.1)

    lows = [sorted({20.0, *(c[c[:, i] + 5 < 50, i] + 5)}) for i in range(3)]
    highs = [sorted({80.0, *(c[c[:, i] - 5 > 50, i] - 5)}) for i in range(3)]
    want = 0.0
    for a in itertools.product(*lows):
        for b in itertools.product(*highs):
            a_, b_ = np.array(a), np.array(b)
            if not any(np.all((h + 5 > a_) & (h - 5 < b_)) for h in c):
                want = max(want, float(np.prod(b_ - a_)))
    assert len(c) >= 4 and want < 0.5 * 60.0**3  # the holes matter
    r = find_region(f, np.full(3, 50.0), (np.zeros(3), np.full(3, 100.0)), method=method)
    assert r.worst_score is not None and r.worst_score >= T
    assert r.n_evaluations <= default_max_evals(3)
    probe = np.random.default_rng(5).uniform(r.lower, r.upper, (40000, 3))
    assert (f(probe) < T).mean() <= 0.02, r.box
    assert r.volume >= 0.9 * want, (r.volume / want, r.box)


@pytest.mark.parametrize("witness", [True, False])
def test_a_cut_face_does_not_bisect_back_into_the_hole_that_cut_it(witness, monkeypatch):
    """A hole in the middle of a face (its corners and centre lines score well): the
    certification finds it and cuts the face back; bisecting towards it again with the
    face's corners only would walk back into it, round after round.  Each test of the
    cut face also scores the bad points of the line that cut it, so the face stops at the
    hole in one cut and the next round certifies.  Without those points (``witness``
    off) the same search must do worse: the test can fail."""
    import robustlens.regions.certify as certify

    def f(x: np.ndarray) -> np.ndarray:
        hole = ((x[:, 0] > 60) & (x[:, 0] < 70) & (np.abs(x[:, 1] - 47) < 6)
                & (np.abs(x[:, 2] - 53) < 6))
        return np.where(hole, 0.1, 0.9)

    if not witness:
        real = certify.Face
        monkeypatch.setattr(certify, "Face", lambda *a: real(*a[:4]))
    n = 3
    s = _state(n, width=100.0, f=f, x0=[30.0, 50.0, 50.0])
    s.axes = [np.linspace(0, 100, 11) for _ in range(n)]
    s.lo, s.hi = np.array([20.0, 20.0, 20.0]), np.array([69.0, 80.0, 80.0])
    cert = certify.certify_grid(s)
    probe = np.random.default_rng(0).uniform(s.lo, s.hi, (20000, n))
    if witness:
        assert cert.certified and cert.rounds <= 3, cert
        assert s.hi[0] <= 60.0 + 1e-9 and s.hi[0] >= 59.0, s.hi
        assert (f(probe) < T).mean() == 0.0
    else:  # the corners-only bisection walks back into the hole
        assert not cert.certified or s.hi[0] > 60.0 or cert.rounds > 3, (cert, s.hi)


def _certified_state(f, x0, start, want):
    """A search state holding the certified box [start, want] on a 15-cell lattice."""
    s = _state(3, width=100.0, f=f, x0=x0)
    s.axes = [np.linspace(0, 100, 16) for _ in range(3)]
    s.lo, s.hi, s.certified = np.array(start), np.array(want), True
    return s, s.ev


def _union(a, b):
    """Score 0.9 on the union of boxes a and b (each (lo, hi)), 0.1 elsewhere."""
    def f(x: np.ndarray) -> np.ndarray:
        ina = np.all((x >= a[0]) & (x <= a[1]), axis=1)
        inb = np.all((x >= b[0]) & (x <= b[1]), axis=1)
        return np.where(ina | inb, 0.9, 0.1)
    return f


@pytest.mark.parametrize("b_lo,b_hi", [
    # a quarter of A's x width off its lower face lets y grow to B's
    ((30.0, 20.0, 20.0), (60.0, 40.0, 40.0)),
    # a quarter is not enough (x in [30, 35] holds no B), a half is, and the x face
    # then grows back from 40 to 35
    ((35.0, 20.0, 20.0), (60.0, 50.0, 40.0)),
])
def test_shape_trades_leave_a_certified_local_optimum_for_the_largest_box(b_lo, b_hi):
    """`ours.shape_trades` (a rugged score, where slopes say nothing): the good set is
    A = [20, 60] x [20, 30] x [20, 40] (volume 8000) united with a larger B.  From the
    certified box A, moving its lower x face in lets the y face grow to B, and the x
    face grow back; B is certified and kept; from B nothing moves."""
    from robustlens.regions.ours import shape_trades

    a = ((20.0, 20.0, 20.0), (60.0, 30.0, 40.0))
    f = _union(a, (b_lo, b_hi))
    vb = float(np.prod(np.subtract(b_hi, b_lo)))
    for start, want in (a, (b_lo, b_hi)):
        s, ev = _certified_state(f, [50.0, 25.0, 25.0], start, want)
        shape_trades(s)
        assert s.certified
        assert np.all(s.lo >= np.subtract(b_lo, [0.2, 1e-9, 1e-9])), s.lo
        assert np.all(s.hi <= np.add(b_hi, 1e-9)), s.hi
        assert float(np.prod(s.hi - s.lo)) >= 0.98 * vb, (s.lo, s.hi)
        assert ev.n_evaluations <= s.budget.max_evals


def test_slab_trades_reach_a_box_of_another_shape():
    """`ours.slab_trades`: the good set is A = [40, 60]^2 x [20, 80] (24000) united with a
    slab B = [0, 100] x [47, 53] x [20, 80] (36000) through it.  No face of A moved in by
    a quarter or a half lets another face grow (x needs y inside [47, 53], both y faces
    in), so the trades of shape stay at A; the slab trade (y collapsed to x0's line, x and
    z grown, then y) reaches B, which is certified and kept."""
    from robustlens.regions.ours import shape_trades, slab_trades

    a = ((40.0, 40.0, 20.0), (60.0, 60.0, 80.0))
    b = ((0.0, 47.0, 20.0), (100.0, 53.0, 80.0))
    f = _union(a, b)
    s, ev = _certified_state(f, [50.0, 50.0, 50.0], *a)
    shape_trades(s)
    np.testing.assert_allclose(s.lo, a[0], atol=0.2)
    np.testing.assert_allclose(s.hi, a[1], atol=0.2)
    slab_trades(s)
    assert s.certified
    np.testing.assert_allclose(s.lo, b[0], atol=0.2)
    np.testing.assert_allclose(s.hi, b[1], atol=0.2)
    assert ev.n_evaluations <= s.budget.max_evals


def test_reach_bounds_the_regrown_box_and_prunes_for_free():
    """`ours.reach`, the bound that lets trades skip a candidate without evaluations: on
    random holed boxes the regrown volume never passes it; a box whose faces all touch
    known bad points cannot grow, and its bound is its volume."""
    from robustlens.regions.certify import known_bad
    from robustlens.regions.ours import reach, regrow

    rng = np.random.default_rng(3)
    for _ in range(20):
        holes = rng.uniform(0, 100, (8, 3))

        def f(x: np.ndarray, holes=holes) -> np.ndarray:
            near = (np.abs(x[:, None, :] - holes[None]) < 6).all(axis=2).any(axis=1)
            inb = np.all((x >= 10) & (x <= 90), axis=1)
            return np.where(inb & ~near, 0.9, 0.1)

        x0 = rng.uniform(30, 70, 3)
        if f(x0[None])[0] < T:
            continue
        s, ev = _certified_state(f, x0, x0 - 1, x0 + 1)
        s.score(np.concatenate([holes, rng.uniform(0, 100, (200, 3))]))
        moved = {(int(rng.integers(3)), int(rng.choice([-1, 1])))}
        bound = reach(s)
        regrow(s, moved)
        assert s.volume_ratio() <= bound + 1e-12
    s, ev = _certified_state(_union(((20.0,) * 3, (60.0,) * 3), ((20.0,) * 3, (60.0,) * 3)),
                             [40.0] * 3, (20.0,) * 3, (60.0,) * 3)
    edges = [np.r_[19.9, 40.0, 60.1]] * 3
    s.score(np.stack(np.meshgrid(*edges, indexing="ij"), -1).reshape(-1, 3))
    assert len(known_bad(s)) > 0
    assert reach(s) == pytest.approx(s.volume_ratio(np.full(3, 19.9), np.full(3, 60.1)))
