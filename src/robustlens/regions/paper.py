"""The reference ("paper") update rules for robust regions, in n-D matrix form.

Implements the rules of Hamdi & Ghanem (see docs spec "Robust regions") exactly as
printed: gradient descent on the box bounds ``a -= lr*da, b -= lr*db`` from the
start box ``x0 +- 1e-5`` for ``n_iter`` steps, bounds clipped to the domain after
each step.  Corners are indexed by n-bit integers k, bit i = 1 meaning the corner
takes ``b_i``; ``mask[i, k]`` holds those bits.  OIR_W uses grad f (not the loss
gradient of the reference code).

Deliberate, documented choices where the printed rules are silent:

* the start box is clipped to the domain too (so ``x0`` on an edge starts inside);
* outer-box corners (OIR_B) and finite-difference points (OIR_W without
  ``grad_fn``) are evaluated where they fall, possibly outside the domain, as in
  the reference code;
* the run stops early with ``stop_reason="collapsed"`` when a bound crosses the
  other (``r <= 0`` makes ``R = diag(1/r)`` undefined) and ``"diverged"`` on
  non-finite bounds;
* the loss recorded for OIR_W is the inner term ``-V * sum(f_D)`` (the printed
  rules give only the gradient).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from robustlens.regions.evaluator import Evaluator
from robustlens.regions.params import PaperParams
from robustlens.regions.result import TraceStep

__all__ = ["PAPER_DEFAULTS", "corner_mask", "corners", "run_paper"]

PAPER_DEFAULTS: dict[str, Any] = asdict(PaperParams())


def corner_mask(n: int) -> np.ndarray:
    """``mask`` (n x 2^n): ``mask[i, k] = bit i of k`` (1 = corner takes b_i)."""
    k = np.arange(2**n)
    return ((k[None, :] >> np.arange(n)[:, None]) & 1).astype(np.float64)


def corners(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The 2^n corners (2^n x n) of the box [a, b] in mask order."""
    return np.where(mask.T.astype(bool), b[None, :], a[None, :])


def _fd_points(pts: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Central-difference stencil: for each point, +h_i e_i then -h_i e_i for each i."""
    n = pts.shape[1]
    e = np.eye(n) * h[None, :]
    plus = pts[:, None, :] + e[None, :, :]
    minus = pts[:, None, :] - e[None, :, :]
    return np.concatenate([plus.reshape(-1, n), minus.reshape(-1, n)], axis=0)


def _fd_grad(vals: np.ndarray, m: int, n: int, h: np.ndarray) -> np.ndarray:
    plus = vals[: m * n].reshape(m, n)
    minus = vals[m * n :].reshape(m, n)
    return (plus - minus) / (2.0 * h[None, :])


def paper_step(
    method: str,
    a: np.ndarray,
    b: np.ndarray,
    f_d: np.ndarray,
    f_c: np.ndarray | None,
    g_d: np.ndarray | None,
    mask: np.ndarray,
    alpha: float,
    beta: float,
    reg: float,
) -> tuple[np.ndarray, np.ndarray, float]:
    """(da, db, loss) of the printed rules for the box [a, b]."""
    n = a.shape[0]
    mask_c = 1.0 - mask
    r = b - a
    big_v = float(np.prod(r)) / 2**n
    if method == "naive":
        da = 2 * big_v * (mask_c @ f_d) / r - reg * r
        db = -2 * big_v * (mask @ f_d) / r + reg * r
        loss = -big_v * float(f_d.sum()) + reg * float(np.linalg.norm(r))
    elif method == "oir_b":
        assert f_c is not None
        scale = (1 + alpha) ** (n - 1)
        m_c = scale * ((1 + alpha / 2) * mask + (alpha / 2) * mask_c)
        m_cc = scale * ((1 + alpha / 2) * mask_c + (alpha / 2) * mask)
        da = 2 * big_v * (2 * (mask_c @ f_d) - m_cc @ f_c) / r
        db = 2 * big_v * (-2 * (mask @ f_d) + m_c @ f_c) / r
        loss = big_v * ((1 + alpha) ** n * float(f_c.sum()) - 2 * float(f_d.sum()))
    else:  # oir_w
        assert g_d is not None
        m_d = (2 - (2 * n - 1) * beta) * mask - beta * mask_c
        m_dc = (2 - (2 * n - 1) * beta) * mask_c - beta * mask
        diag_c = (mask_c * g_d.T).sum(axis=1)
        diag = (mask * g_d.T).sum(axis=1)
        # p[i, j] = (mask_c[i, j] - mask[i, j]) * G_D[j, i]
        p = (mask_c - mask) * g_d.T
        t_c = mask_c @ p.T  # t_c[k, i] = sum_j mask_c[k, j] p[i, j]
        t = mask @ (-p).T
        c_c = t_c @ r - np.diag(t_c) * r  # sum over i != k of r_i t_c[k, i]
        c = t @ r - np.diag(t) * r
        da = big_v * ((m_dc @ f_d) / r + beta * diag_c + beta * c_c / r)
        db = big_v * (-(m_d @ f_d) / r + beta * diag + beta * c / r)
        loss = -big_v * float(f_d.sum())
    return da, db, loss


def run_paper(
    ev: Evaluator,
    x0: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    method: str,
    hyper: dict[str, Any],
) -> dict[str, Any]:
    """Run the printed rules; returns the raw pieces of a `RegionResult`."""
    n = x0.shape[0]
    lr = float(hyper["lr"])
    alpha = float(hyper["alpha"])
    beta = float(hyper["beta"])
    reg = float(hyper["reg"])
    n_iter = int(hyper["n_iter"])
    h = float(hyper["fd_step"]) * (upper - lower)
    mask = corner_mask(n)
    n_corners = 2**n

    a = np.clip(x0 - hyper["start_halfwidth"], lower, upper)
    b = np.clip(x0 + hyper["start_halfwidth"], lower, upper)
    trace: list[TraceStep] = []
    stop = "max_iter"
    last_move = np.inf
    for _ in range(n_iter):
        r = b - a
        if (r <= 0).any():
            stop = "collapsed"
            break
        d_pts = corners(a, b, mask)
        blocks = [d_pts]
        if method == "oir_b":
            blocks.append(corners(a - alpha * r / 2, b + alpha * r / 2, mask))
        use_fd = method == "oir_w" and ev.grad_fn is None
        if use_fd:
            blocks.append(_fd_points(d_pts, h))
        grad_pts = d_pts if (method == "oir_w" and not use_fd) else None
        vals, grads = ev.evaluate(np.concatenate(blocks, axis=0), grad_pts)
        f_d = vals[:n_corners]
        f_c = vals[n_corners : 2 * n_corners] if method == "oir_b" else None
        g_d = None
        if method == "oir_w":
            g_d = _fd_grad(vals[n_corners:], n_corners, n, h) if use_fd else grads
        da, db, loss = paper_step(method, a, b, f_d, f_c, g_d, mask, alpha, beta, reg)
        a_new = np.clip(a - lr * da, lower, upper)
        b_new = np.clip(b - lr * db, lower, upper)
        if not (np.isfinite(a_new).all() and np.isfinite(b_new).all()):
            stop = "diverged"  # keep the last finite box
            break
        width = upper - lower
        last_move = float(max(np.max(np.abs(a_new - a) / width), np.max(np.abs(b_new - b) / width)))
        a, b = a_new, b_new
        trace.append((a.copy(), b.copy(), loss))
    if stop == "max_iter" and last_move <= 1e-9:
        stop = "converged"
    return {
        "lower": a,
        "upper": b,
        "trace": trace,
        "converged": stop == "converged",
        "stop_reason": stop,
        "wrapped": np.zeros(n, bool),
    }
