"""Robust-region search: paper rules vs an independent implementation, our variant on
analytic plateaus with known boxes, batching, caching, bad input, results, plots."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.optimize import minimize

from robustlens.errors import BadInput
from robustlens.regions import RegionResult, RobustRegion, find_region, iou
from robustlens.regions.paper import corner_mask, corners

METHODS = ("naive", "oir_b", "oir_w")


# --------------------------------------------------------------------------- analytic
def _sig(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


class Plateau:
    """Score = combine_i sig((x_i - l_i)/w_i) * sig((u_i - x_i)/w_i), combine = prod or min.

    With ``comb="min"`` the 0.5 super-level set is a box whose edges are where each
    factor is 0.5 (solved exactly below); with ``comb="prod"`` the largest box is
    found numerically (the product of the per-dim minima must stay >= t).
    """

    def __init__(self, lo, hi, w, comb="prod", height=1.0):
        self.l, self.u, self.w = (np.asarray(v, dtype=float) for v in (lo, hi, w))
        self.comb = comb
        self.height = height
        self.n = self.l.size

    def factors(self, x: np.ndarray) -> np.ndarray:
        return _sig((x - self.l) / self.w) * _sig((self.u - x) / self.w)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        f = self.factors(np.asarray(x, dtype=float))
        return self.height * (f.prod(axis=1) if self.comb == "prod" else f.min(axis=1))

    def grad(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        a, b = _sig((x - self.l) / self.w), _sig((self.u - x) / self.w)
        f = a * b
        df = (a * (1 - a) * b - a * b * (1 - b)) / self.w
        if self.comb == "prod":
            g = np.empty_like(x)
            for i in range(self.n):
                g[:, i] = df[:, i] * np.prod(np.delete(f, i, axis=1), axis=1)
            return self.height * g
        k = np.argmin(f, axis=1)
        g = np.zeros_like(x)
        g[np.arange(len(x)), k] = df[np.arange(len(x)), k]
        return self.height * g

    def half_width(self, i: int, tau: float) -> float:
        """Closed form: the factor of dim i is >= tau on centre +- half_width."""
        half = (self.u[i] - self.l[i]) / 2
        k = math.exp(-2 * half / self.w[i])
        s = 1 / tau - 1 - k
        big = (s + math.sqrt(max(s * s - 4 * k, 0.0))) / 2
        return half + self.w[i] * math.log(big)

    def true_box(self, t: float, dlo, dhi) -> tuple[np.ndarray, np.ndarray]:
        c = (self.l + self.u) / 2
        t = t / self.height

        def box(taus):
            h = np.array([self.half_width(i, taus[i]) for i in range(self.n)])
            return np.maximum(c - h, dlo), np.minimum(c + h, dhi)

        if self.comb == "min" or self.n == 1:
            return box(np.full(self.n, t))
        pmax = np.array(
            [_sig(np.array(self.u[i] - self.l[i]) / 2 / self.w[i]) ** 2 for i in range(self.n)]
        )

        def neg_log_vol(lt):
            lo, hi = box(np.exp(lt))
            return -float(np.sum(np.log(np.maximum(hi - lo, 1e-300))))

        bounds = [(math.log(t), math.log(p) - 1e-12) for p in pmax]
        best = None
        for k in range(4):
            frac = (
                np.full(self.n, 1 / self.n)
                if k == 0
                else (np.random.default_rng(k).dirichlet(np.ones(self.n)))
            )
            # an interior start (every width > 0): each log-level below its dim's peak by
            # a share of the slack; a start at a peak has width 0 there and no gradient
            slack = float(np.log(pmax).sum()) - math.log(t)
            lt0 = np.clip(np.log(pmax) - slack * frac, [b[0] for b in bounds],
                          [b[1] for b in bounds])
            r = minimize(
                neg_log_vol,
                lt0,
                method="SLSQP",
                bounds=bounds,
                constraints=[{"type": "eq", "fun": lambda lt: lt.sum() - math.log(t)}],
                options={"ftol": 1e-12, "maxiter": 300},
            )
            if best is None or r.fun < best.fun:
                best = r
        return box(np.exp(best.x))


LO4 = np.array([20.0, 10.0, 30.0, 40.0])
HI4 = np.array([60.0, 45.0, 90.0, 70.0])
W4 = np.array([0.6, 0.3, 0.9, 0.45])


def case(n: int, comb: str = "prod"):
    f = Plateau(LO4[:n], HI4[:n], W4[:n], comb)
    dom = (np.zeros(n), np.full(n, 100.0))
    x0 = LO4[:n] + 0.3 * (HI4[:n] - LO4[:n])  # off-centre
    return f, x0, dom


class Counting:
    """Wraps a score function; records every call's points."""

    def __init__(self, f):
        self.f = f
        self.calls: list[np.ndarray] = []

    def __call__(self, x):
        self.calls.append(np.array(x, copy=True))
        return self.f(x)

    @property
    def n_points(self) -> int:
        return sum(len(c) for c in self.calls)


# ------------------------------------------------------- independent paper reference
def reference_paper(
    f,
    grad,
    x0,
    lower,
    upper,
    method,
    lr=0.1,
    alpha=0.05,
    beta=0.0009,
    reg=0.1,
    n_iter=800,
    half=1e-5,
):
    """The printed rules written out with per-corner / per-dim loops (1-D forms generalised).

    Scores are taken one point at a time; nothing is shared with the library code.
    """
    n = len(x0)
    a = [min(max(x0[i] - half, lower[i]), upper[i]) for i in range(n)]
    b = [min(max(x0[i] + half, lower[i]), upper[i]) for i in range(n)]
    out = []

    def bit(k, i):
        return (k >> i) & 1

    def corner(lo, hi, k):
        return [hi[i] if bit(k, i) else lo[i] for i in range(n)]

    def score(p):
        return float(f(np.array([p]))[0])

    for _ in range(n_iter):
        r = [b[i] - a[i] for i in range(n)]
        vol = 1.0
        for ri in r:
            vol *= ri
        big_v = vol / 2**n
        f_d = [score(corner(a, b, k)) for k in range(2**n)]
        da, db = [0.0] * n, [0.0] * n
        if method == "naive":
            for i in range(n):
                s0 = sum(f_d[k] for k in range(2**n) if not bit(k, i))
                s1 = sum(f_d[k] for k in range(2**n) if bit(k, i))
                da[i] = 2 * big_v / r[i] * s0 - reg * r[i]
                db[i] = -2 * big_v / r[i] * s1 + reg * r[i]
        elif method == "oir_b":
            outer_a = [a[i] - alpha * r[i] / 2 for i in range(n)]
            outer_b = [b[i] + alpha * r[i] / 2 for i in range(n)]
            f_c = [score(corner(outer_a, outer_b, k)) for k in range(2**n)]
            sc = (1 + alpha) ** (n - 1)
            for i in range(n):
                s0 = sum(f_d[k] for k in range(2**n) if not bit(k, i))
                s1 = sum(f_d[k] for k in range(2**n) if bit(k, i))
                wa = sum(
                    sc * ((alpha / 2) if bit(k, i) else (1 + alpha / 2)) * f_c[k]
                    for k in range(2**n)
                )
                wb = sum(
                    sc * ((1 + alpha / 2) if bit(k, i) else (alpha / 2)) * f_c[k]
                    for k in range(2**n)
                )
                da[i] = 2 * big_v / r[i] * (2 * s0 - wa)
                db[i] = 2 * big_v / r[i] * (-2 * s1 + wb)
        else:
            g = [grad(np.array([corner(a, b, k)]))[0] for k in range(2**n)]
            hi_w, lo_w = 2 - (2 * n - 1) * beta, -beta
            for i in range(n):
                mdc = sum((lo_w if bit(k, i) else hi_w) * f_d[k] for k in range(2**n))
                md = sum((hi_w if bit(k, i) else lo_w) * f_d[k] for k in range(2**n))
                diag_c = sum(g[k][i] for k in range(2**n) if not bit(k, i))
                diag = sum(g[k][i] for k in range(2**n) if bit(k, i))
                c_c = 0.0
                c = 0.0
                for j in range(n):
                    if j == i:
                        continue
                    c_c += r[j] * sum(
                        (1 - 2 * bit(k, j)) * g[k][j] for k in range(2**n) if not bit(k, i)
                    )
                    c += r[j] * sum((2 * bit(k, j) - 1) * g[k][j] for k in range(2**n) if bit(k, i))
                da[i] = big_v * (mdc / r[i] + beta * diag_c + beta * c_c / r[i])
                db[i] = big_v * (-md / r[i] + beta * diag + beta * c / r[i])
        a = [min(max(a[i] - lr * da[i], lower[i]), upper[i]) for i in range(n)]
        b = [min(max(b[i] - lr * db[i], lower[i]), upper[i]) for i in range(n)]
        out.append((np.array(a), np.array(b)))
    return out


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n,half,n_iter", [(1, 1e-5, 800), (2, 1e-5, 800), (3, 4.0, 120)])
def test_paper_matches_independent_reference(method, n, half, n_iter):
    f = Plateau(LO4[:n], HI4[:n], W4[:n] * 5)
    lower, upper = np.zeros(n), np.full(n, 100.0)
    x0 = (LO4[:n] + HI4[:n]) / 2 + 1.0
    res = find_region(
        f,
        x0,
        (lower, upper),
        method=method,
        variant="paper",
        grad_fn=f.grad,
        n_iter=n_iter,
        start_halfwidth=half,
    )
    ref = reference_paper(f, f.grad, x0, lower, upper, method, n_iter=n_iter, half=half)
    assert len(res.trace) == len(ref) == n_iter
    got = np.array([np.concatenate([lo, hi]) for lo, hi, _ in res.trace])
    want = np.array([np.concatenate(p) for p in ref])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    assert np.abs(want[-1] - want[0]).max() > 0.1  # the trajectory actually went somewhere


def test_paper_one_step_equals_printed_1d_forms():
    f = Plateau([20.0], [60.0], [3.0])
    x0, lr, alpha, reg = np.array([50.0]), 0.1, 0.05, 0.1
    for method in ("naive", "oir_b"):
        res = find_region(
            f, x0, ([0.0], [100.0]), method=method, variant="paper", n_iter=1, start_halfwidth=2.0
        )
        a, b = 48.0, 52.0
        fa, fb = f(np.array([[a]]))[0], f(np.array([[b]]))[0]
        if method == "naive":
            da, db = fa - reg * (b - a), -fb + reg * (b - a)
        else:
            big_a, big_b = a - alpha * (b - a) / 2, b + alpha * (b - a) / 2
            f_big_a, f_big_b = f(np.array([[big_a]]))[0], f(np.array([[big_b]]))[0]
            da = 2 * fa - (1 + alpha / 2) * f_big_a - (alpha / 2) * f_big_b
            db = -2 * fb + (1 + alpha / 2) * f_big_b + (alpha / 2) * f_big_a
        lo, hi, _ = res.trace[0]
        assert lo[0] == pytest.approx(a - lr * da, abs=1e-12)
        assert hi[0] == pytest.approx(b - lr * db, abs=1e-12)


def test_paper_fd_gradient_close_to_analytic():
    f = Plateau(LO4[:2], HI4[:2], W4[:2] * 5)
    dom = (np.zeros(2), np.full(2, 100.0))
    x0 = np.array([42.0, 30.0])
    kw = dict(method="oir_w", variant="paper", n_iter=200, start_halfwidth=2.0)
    exact = find_region(f, x0, dom, grad_fn=f.grad, **kw)
    fd = find_region(f, x0, dom, **kw)
    np.testing.assert_allclose(fd.lower, exact.lower, atol=1e-3)
    np.testing.assert_allclose(fd.upper, exact.upper, atol=1e-3)
    assert fd.n_evaluations == 200 * 4 * (1 + 2 * 2)  # corners + central differences
    assert exact.n_evaluations == 200 * 4 * (1 + 2) and exact.n_grad_calls == 200


def test_paper_reproduces_known_defects():
    # no growth in 3-D from the 1e-5 start box (the step scales with V ~ 1e-15)
    f, x0, dom = case(3)
    res = find_region(f, x0, dom, method="oir_b", variant="paper")
    assert not res.grew
    assert np.all(res.upper - res.lower < 1e-3)
    # naive capped by its regulariser: f(a) = reg (b - a) -> ~9.5 wide at height 0.95
    wide = Plateau([5.0], [95.0], [0.5], height=0.95)
    res = find_region(wide, [50.0], ([0.0], [100.0]), method="naive", variant="paper")
    assert res.upper[0] - res.lower[0] == pytest.approx(9.5, abs=0.2)
    ours = find_region(wide, [50.0], ([0.0], [100.0]), method="naive")
    assert ours.upper[0] - ours.lower[0] > 85


def test_paper_bounds_stay_in_domain():
    f = Plateau([-50.0, -50.0], [150.0, 150.0], [1.0, 1.0])  # robust everywhere
    res = find_region(
        f,
        [99.0, 1.0],
        ([0.0, 0.0], [100.0, 100.0]),
        method="oir_b",
        variant="paper",
        start_halfwidth=2.0,
    )
    for lo, hi, _ in res.trace:
        assert np.all(lo >= 0) and np.all(hi <= 100)
    assert res.upper[0] == 100.0 and res.lower[1] == 0.0


# ----------------------------------------------------------------- our variant: quality
@pytest.mark.parametrize("n", [1, 2, 3, 4])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("comb", ["prod", "min"])
def test_ours_finds_true_box_with_half_the_paper_evaluations(n, method, comb):
    f, x0, dom = case(n, comb)
    truth = f.true_box(0.5, *dom)
    assert np.all(truth[0] < x0) and np.all(x0 < truth[1])
    grad = f.grad if method == "oir_w" and n == 2 else None  # both gradient paths
    ours = find_region(f, x0, dom, method=method, grad_fn=grad)
    paper = find_region(f, x0, dom, method=method, variant="paper", grad_fn=grad)
    assert ours.converged and ours.grew and ours.variant == "ours"
    assert iou(ours.box, truth) >= 0.9
    assert ours.n_evaluations <= 0.5 * paper.n_evaluations


@pytest.mark.parametrize("method", METHODS)
def test_ours_certifies_corners(method):
    f, x0, dom = case(3)
    res = find_region(f, x0, dom, method=method)
    assert f(corners(res.lower, res.upper, corner_mask(3))).min() >= 0.5
    # and the box is maximal: pushing any face out by 1 % of the domain breaks it
    for i in range(3):
        for side in (0, 1):
            lo, hi = res.lower.copy(), res.upper.copy()
            if side:
                hi[i] += 1.0
            else:
                lo[i] -= 1.0
            assert f(corners(lo, hi, corner_mask(3))).min() < 0.5


@pytest.mark.parametrize("method", METHODS)
def test_soft_products_trade_volume_between_dims(method):
    # soft, anisotropic edges: the largest box is a trade-off between the dims
    f = Plateau([20.0, 0.0, 30.0], [60.0, 45.0, 100.0], [2.0, 0.5, 3.0])
    dom = (np.zeros(3), np.full(3, 100.0))
    x0 = np.array([32.0, 13.5, 51.0])
    truth = f.true_box(0.5, *dom)
    v_true = float(np.prod(truth[1] - truth[0]))
    res = find_region(f, x0, dom, method=method)
    assert res.converged
    assert 0.95 * v_true <= res.volume <= 1.0001 * v_true
    assert iou(res.box, truth) >= 0.9
    greedy = find_region(f, x0, dom, method=method, trades=0, alternatives=0)
    assert res.volume >= greedy.volume


def test_budget_stops_with_a_sound_box_and_says_so():
    f = Plateau([20.0, 0.0, 30.0], [60.0, 45.0, 100.0], [2.0, 0.5, 3.0])
    dom = (np.zeros(3), np.full(3, 100.0))
    x0 = np.array([32.0, 13.5, 51.0])
    full = find_region(f, x0, dom, method="oir_w")
    assert full.converged and full.n_evaluations <= full.info["max_evals"] == 12000
    for budget in (50, 300, 600):
        cut = find_region(f, x0, dom, method="oir_b", max_evals=budget)
        assert not cut.converged and cut.stop_reason == "budget"
        assert cut.n_evaluations <= budget
        assert cut.worst_score is None or not cut.grew or cut.worst_score >= 0.5
        assert f(corners(cut.lower, cut.upper, corner_mask(3))).min() >= 0.5
        assert cut.volume <= full.volume * 1.0001


def test_anisotropic_box_touching_domain_edge():
    f = Plateau([-20.0, 70.0], [30.0, 130.0], [0.2, 2.0])  # leaves the domain on two sides
    dom = (np.zeros(2), np.full(2, 100.0))
    x0 = np.array([5.0, 90.0])
    truth = f.true_box(0.5, *dom)
    assert truth[0][0] == 0.0 and truth[1][1] == 100.0
    for method in METHODS:
        res = find_region(f, x0, dom, method=method)
        assert res.lower[0] == 0.0 and res.upper[1] == 100.0
        assert iou(res.box, truth) >= 0.95
        assert res.volume == pytest.approx(float(np.prod(res.upper - res.lower)))


@pytest.mark.parametrize("variant", ["ours", "paper"])
@pytest.mark.parametrize("method", METHODS)
def test_start_point_not_robust(method, variant):
    f = Plateau([20.0, 20.0], [40.0, 40.0], [0.5, 0.5])
    res = find_region(f, [80.0, 80.0], ([0.0, 0.0], [100.0, 100.0]), method=method, variant=variant)
    assert not res.grew
    assert res.volume_ratio < 1e-8
    if variant == "ours":
        assert res.stop_reason == "not_robust"
        np.testing.assert_array_equal(res.lower, [80.0, 80.0])
        np.testing.assert_array_equal(res.upper, [80.0, 80.0])
        assert res.volume == 0.0 and res.n_calls == 1


@pytest.mark.parametrize("method", METHODS)
def test_a_notch_between_corners_stays_out_of_the_box(method):
    def f(x):  # good square [20, 80]^2 with a bad notch entering from the top middle
        inside = (np.abs(x - 50) <= 30).all(axis=1)
        notch = (np.abs(x[:, 0] - 50) < 5) & (x[:, 1] > 70)
        return (inside & ~notch).astype(float)

    dom = ([0.0, 0.0], [100.0, 100.0])
    res = find_region(f, [50.0, 40.0], dom, method=method)
    assert res.upper[1] <= 70  # the lattice saw the notch: the box stops below it
    # the largest box avoiding the notch is the full-width one below it: [20, 80] x [20, 70]
    assert res.volume >= 0.97 * 60 * 50
    grid = np.stack(
        np.meshgrid(*[np.linspace(lo, hi, 41) for lo, hi in zip(*res.box, strict=True)]), -1
    )
    assert f(grid.reshape(-1, 2)).min() == 1.0


def test_finer_lattice_costs_more_and_agrees():
    f, x0, dom = case(3)
    base = find_region(f, x0, dom, method="oir_b")
    fine = find_region(f, x0, dom, method="oir_b", lattice=24)
    assert fine.converged and iou(fine.box, base.box) > 0.95
    assert fine.n_evaluations > base.n_evaluations
    assert fine.resolution is not None and np.allclose(fine.resolution, 100.0 / 24)


def test_threshold_is_respected():
    f = Plateau([20.0], [80.0], [5.0])
    boxes = [find_region(f, [50.0], ([0.0], [100.0]), threshold=t).box for t in (0.3, 0.5, 0.9)]
    widths = [hi[0] - lo[0] for lo, hi in boxes]
    assert widths[0] > widths[1] > widths[2]
    for t, (lo, hi) in zip((0.3, 0.5, 0.9), boxes, strict=True):
        assert f(np.array([[lo[0]], [hi[0]]])).min() == pytest.approx(t, abs=0.01)


# ---------------------------------------------------------------- periodic dimensions
def _azimuth_plateau(centre: float, half: float, width: float = 1.0):
    def f(x):
        d = np.rad2deg(np.angle(np.exp(1j * np.deg2rad(x[:, 0] - centre))))
        el = _sig((x[:, 1] - 10) / 1.0) * _sig((50 - x[:, 1]) / 1.0)
        return _sig((half - np.abs(d)) / width) * el

    return f


def test_periodic_region_wraps_around_the_seam():
    f = _azimuth_plateau(centre=350.0, half=40.0)
    dom = ((0.0, -10.0), (360.0, 90.0))
    plain = find_region(f, [10.0, 30.0], dom)
    wrap = find_region(f, [10.0, 30.0], dom, periodic=[0])
    assert plain.lower[0] == 0.0 and not plain.wrapped.any()
    assert wrap.wrapped.tolist() == [True, False]
    assert wrap.lower[0] < 0 < 10 < wrap.upper[0]
    # the largest box: equal margins c on both factors, sig(c)^2 = 0.5 at the corners
    c = math.log(math.sqrt(0.5) / (1 - math.sqrt(0.5)))
    truth = ((-50.0 + c, 10.0 + c), (30.0 - c, 50.0 - c))
    v_true = (80.0 - 2 * c) * (40.0 - 2 * c)
    assert 0.97 * v_true <= wrap.volume <= 1.0001 * v_true
    assert wrap.lower[0] == pytest.approx(truth[0][0], abs=3.0)
    assert wrap.upper[0] == pytest.approx(truth[1][0], abs=3.0)
    assert iou(wrap.box, truth, period=[360, None]) >= 0.9
    assert iou((wrap.lower + [360, 0], wrap.upper + [360, 0]), truth, period=[360, None]) >= 0.9
    assert wrap.volume == pytest.approx(float(np.prod(wrap.upper - wrap.lower)))
    assert wrap.volume > 2 * plain.volume


def test_periodic_full_circle_is_capped_at_the_period():
    def f(x):
        return _sig((x[:, 1] - 10) / 1.0) * _sig((50 - x[:, 1]) / 1.0)  # azimuth-free

    res = find_region(f, [200.0, 30.0], ((0.0, -10.0), (360.0, 90.0)), periodic=[True, False])
    assert (res.lower[0], res.upper[0]) == (0.0, 360.0)
    assert not res.wrapped[0] and res.converged
    assert res.volume == pytest.approx(360.0 * (res.upper[1] - res.lower[1]))


# ----------------------------------------------------------------- batching & caching
@pytest.mark.parametrize("variant", ["ours", "paper"])
@pytest.mark.parametrize("method", METHODS)
def test_one_call_per_step_and_batching(method, variant):
    f, x0, dom = case(3)
    fn = Counting(f)
    res = find_region(fn, x0, dom, method=method, variant=variant)
    assert res.n_calls == len(fn.calls)
    assert res.n_evaluations == fn.n_points  # FD points included, no grad_fn here
    corner_evals = fn.n_points
    assert corner_evals >= 5 * res.n_calls  # >= 5x fewer calls than one per point
    if variant == "paper":
        assert res.n_calls == 800  # exactly one call per iteration
        assert {len(c) for c in fn.calls} == {8 * {"naive": 1, "oir_b": 2, "oir_w": 7}[method]}
    else:
        assert res.n_calls <= res.hyper["max_iter"]


def test_cache_never_rescores_a_point():
    f, x0, dom = case(2)
    fn = Counting(f)
    find_region(fn, x0, dom, method="oir_w")
    pts = np.concatenate(fn.calls)
    keys = {tuple(np.round(p, 9)) for p in pts}
    assert len(keys) == len(pts)


def test_grad_fn_counted_as_n_evaluations_per_point():
    f, x0, dom = case(2)
    calls: list[int] = []

    def g(x):
        calls.append(len(x))
        return f.grad(x)

    fn = Counting(f)
    res = find_region(fn, x0, dom, method="oir_w", grad_fn=g)
    assert res.n_grad_calls == len(calls) >= 1
    assert res.n_evaluations == fn.n_points + 2 * sum(calls)


def test_evaluation_budget_stops_early_with_a_valid_box():
    f, x0, dom = case(3)
    res = find_region(f, x0, dom, method="oir_b", max_evals=60)
    assert res.stop_reason == "budget" and not res.converged
    assert res.n_evaluations <= 60  # never past the budget
    assert f(corners(res.lower, res.upper, corner_mask(3))).min() >= 0.5


def test_runs_are_deterministic_and_estimator_matches():
    f, x0, dom = case(2)
    a = find_region(f, x0, dom, method="oir_w")
    est = RobustRegion(method="oir_w").run(f, x0, dom)
    b = est.result_
    assert b is not None
    np.testing.assert_array_equal(a.lower, b.lower)
    np.testing.assert_array_equal(a.upper, b.upper)
    assert a.n_evaluations == b.n_evaluations
    assert est.get_params()["method"] == "oir_w"


# ----------------------------------------------------------------------- bad input
def _good(x):
    return np.ones(len(x))


@pytest.mark.parametrize(
    "kwargs, culprit",
    [
        (dict(x0=[150.0, 5.0]), "x0"),
        (dict(x0=[5.0, 5.0, 5.0]), "domain"),
        (dict(x0=[[5.0, 5.0]]), "x0"),
        (dict(x0=[np.nan, 5.0]), "x0"),
        (dict(domain=([0.0, 10.0], [100.0, 10.0])), "domain"),
        (dict(domain=([0.0, 0.0], [100.0])), "domain"),
        (dict(domain=[0.0, 1.0, 2.0]), "domain"),
        (dict(method="gradient"), "method"),
        (dict(variant="authors"), "variant"),
        (dict(lr=0.1), "lr"),  # a paper hyper-parameter given to "ours"
        (dict(threshold=float("nan")), "threshold"),
        (dict(xtol=-1.0), "xtol"),
        (dict(periodic=[5]), "periodic"),
        (dict(max_iter=1.5), "max_iter"),
        (dict(lattice=1), "lattice"),
        (dict(lattice=[8, "x"]), "lattice"),
        (dict(alternatives=-1), "alternatives"),
        (dict(variant="paper", n_iter=0), "n_iter"),
        (dict(trade_frac=1.5), "trade_frac"),
        (dict(score_fn=lambda x: np.ones((len(x), 2))), "score_fn"),
        (dict(score_fn=lambda x: np.ones(len(x) + 1)), "score_fn"),
        (dict(score_fn=lambda x: 0.7), "score_fn"),
        (dict(score_fn="not callable"), "score_fn"),
        (dict(method="oir_w", grad_fn=lambda x: np.ones(len(x))), "grad_fn"),
    ],
)
def test_bad_input_raises_one_line_naming_the_argument(kwargs, culprit):
    args = dict(score_fn=_good, x0=[5.0, 5.0], domain=([0.0, 0.0], [100.0, 100.0]))
    args.update(kwargs)
    with pytest.raises(BadInput) as exc:
        find_region(**args)
    msg = str(exc.value)
    assert culprit in msg and "\n" not in msg


@pytest.mark.parametrize("variant", ["ours", "paper"])
def test_non_finite_scores_are_named(variant):
    def f(x):
        out = np.ones(len(x))
        out[x[:, 0] > 60] = np.nan
        return out

    with pytest.raises(BadInput, match=r"^score_fn returned non-finite scores at"):
        find_region(f, [50.0], ([0.0], [100.0]), variant=variant)


# ------------------------------------------------------------------ results & plots
def test_result_to_dict_is_json_and_round_trips():
    f, x0, dom = case(2)
    res = find_region(f, x0, dom, method="oir_w", periodic=[1])
    d = json.loads(json.dumps(res.to_dict()))
    assert d["method"] == "oir_w" and d["variant"] == "ours" and len(d["trace"]) == len(res.trace)
    back = RegionResult.from_dict(d)
    np.testing.assert_array_equal(back.lower, res.lower)
    assert back.volume_ratio == pytest.approx(res.volume_ratio)
    assert back.periodic.tolist() == [False, True]
    paper = find_region(f, x0, dom, variant="paper", n_iter=5).to_dict(trace=False)
    assert "trace" not in paper and paper["threshold"] is None and json.dumps(paper)


def test_regions_figure_from_results_writes_png_atomically(tmp_path):
    """Regions found by `find_region`, stored as `RegionsFile` records, drawn by the one
    regions figure (`robustlens.figures.map_regions_figure`) over a 2-D and a 1-D map."""
    import xarray as xr

    from robustlens.figures import map_regions_figure
    from robustlens.regions.records import RegionRecord, RegionsFile

    az = np.arange(0.0, 360.0, 6.0)
    el = np.arange(-10.0, 91.0, 5.0)
    f = _azimuth_plateau(centre=350.0, half=40.0, width=4.0)
    grid = np.array(np.meshgrid(az, el, indexing="ij")).reshape(2, -1).T
    ds = xr.Dataset({"score": (("azimuth", "elevation"), f(grid).reshape(az.size, el.size))},
                    coords={"azimuth": az, "elevation": el})

    def doc(method: str, results: list, names: list[str]) -> RegionsFile:
        r0 = results[0]
        return RegionsFile(model="m", mesh="x", class_id=0, class_name="c", method=method,
                           variant="ours", params=names,
                           domain={n: [float(r0.domain_lower[i]), float(r0.domain_upper[i])]
                                   for i, n in enumerate(names)},
                           periodic=["azimuth"],
                           regions=[RegionRecord.from_result(k, r, names)
                                    for k, r in enumerate(results)])

    docs = [doc(m, [find_region(f, [10.0, 30.0], ((0.0, -10.0), (360.0, 90.0)), method=m,
                                periodic=[0])], ["azimuth", "elevation"])
            for m in ("naive", "oir_b")]
    out = map_regions_figure(ds, docs, tmp_path / "fig" / "regions.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    one_d = [find_region(lambda x: f(np.c_[x, np.full(len(x), 30.0)]), [10.0], ([0.0], [360.0]),
                         periodic=[0])]
    out1 = map_regions_figure(ds.sel(elevation=30.0), [doc("oir_b", one_d, ["azimuth"])],
                              tmp_path / "one.svg")
    assert out1.read_text().lstrip().startswith("<?xml")
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["one.svg", "regions.png"]


# ------------------------------------------------------------- narrow dips inside a step
def _plateau_with_dip(x: np.ndarray) -> np.ndarray:
    """Plateau on [-50, 50] with a narrow dip on [20, 28]: the robust box from 0 is [-50, 20]."""
    v = x[:, 0]
    plateau = _sig((50 - np.abs(v)) / 0.5)
    dip = _sig((v - 20) / 0.3) * _sig((28 - v) / 0.3)
    return plateau * (1 - 0.9 * dip)


def test_long_steps_do_not_jump_over_a_narrow_dip():
    dom = ((-100.0,), (100.0,))
    for method in ("naive", "oir_b", "oir_w"):
        r = find_region(_plateau_with_dip, [0.0], dom, method=method)
        assert r.upper[0] == pytest.approx(20.0, abs=1.0), method
        assert r.lower[0] == pytest.approx(-50.0, abs=1.0), method


# --------------------------------------------- hyper-parameters: one description of record
def test_documented_defaults_of_variant_ours_are_the_codes():
    """`OursParams`' docstring is the description of record: every field is documented
    as ``name = default`` and the default it states is the code's."""
    import dataclasses
    import re

    from robustlens.regions.params import OursParams, PaperParams

    doc = OursParams.__doc__ or ""
    documented = dict(re.findall(r"^\s*- (\w+) = ([^:]+):", doc, flags=re.M))
    fields = {f.name: f.default for f in dataclasses.fields(OursParams)}
    assert set(documented) == set(fields)
    for name, default in fields.items():
        assert documented[name] == repr(default), name
    for f in dataclasses.fields(PaperParams):  # the paper's constants, named in its doc
        assert f.name in (PaperParams.__doc__ or "")


def test_robust_region_follows_scikit_learn_rules():
    """Parameters are stored as given, checked in run(), readable and settable."""
    f = Plateau([20, 30], [60, 70], [1.0, 1.0])
    est = RobustRegion(method="bogus", xtol=-1)  # stored, not checked yet
    assert est.get_params()["method"] == "bogus" and est.get_params()["xtol"] == -1
    with pytest.raises(BadInput, match="method: unknown method 'bogus'"):
        est.run(f, [40, 50], ([0, 0], [100, 100]))
    est.set_params(method="naive")
    with pytest.raises(BadInput, match="xtol"):
        est.run(f, [40, 50], ([0, 0], [100, 100]))
    est.set_params(xtol=None, lr=0.1)
    with pytest.raises(BadInput, match="lr"):  # a paper hyper-parameter on variant ours
        est.run(f, [40, 50], ([0, 0], [100, 100]))
    est.set_params(lr=None, max_evals=400)
    res = est.run(f, [40, 50], ([0, 0], [100, 100])).result_
    assert res is not None and res.n_evaluations <= 400 and res.hyper["max_evals"] == 400
    with pytest.raises(BadInput, match="not a parameter of RobustRegion"):
        est.set_params(bogus=1)
    clone = RobustRegion(**est.get_params())
    assert clone.get_params() == est.get_params()
