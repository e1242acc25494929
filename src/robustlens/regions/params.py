"""Hyper-parameters of the region search: one frozen value per variant.

`OursParams`' docstring is the one description of record of variant "ours"'s
hyper-parameters (a test checks that the defaults it states are the code's);
`PaperParams` holds the reference rules' constants (`robustlens.paper`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from robustlens import paper

__all__ = ["COMMON", "OursParams", "PaperParams", "params_class"]


@dataclass(frozen=True)
class OursParams:
    """Hyper-parameters of variant "ours" (tolerances are fractions of the domain width).

    - threshold = 0.5: the score the box must keep at every tested point.
    - max_evals = None: evaluation budget; None: 750 * 2**n, at least 12000 from 3-D on
      (1500 in 1-D, 3000 in 2-D, 12000 in 3-D and 4-D).  Never exceeded; when it runs out
      the result says converged=False, stop_reason="budget" and is still sound.
    - max_iter = 2000: score_fn calls (search rounds, cached ones included) at most.
    - lattice = None: flood-fill cells per dim (an int or one per dim); None: about
      (max_evals / 3) ** (1 / n), clipped to [8, 48].
    - xtol = 0.001: face bracket tolerance.
    - fd_step = 0.001: finite-difference step of the trades' slopes (oir_w uses
      grad_fn when given).
    - trades = None: volume trades at most; None: 1 in 1-D / 2-D (oir_w: 2 (n - 1)),
      3 n from 3-D on (the lattice choice is coarse there; on smooth scores the trades
      set the shape, and they run only where the first certification found no hole;
      then as many trades of shape: `ours.shape_trades`).
    - trade_frac = 0.04: how much of its width a trade first takes from a dim.
    - alternatives = None: runner-up boxes refined; None: 3 (n <= 2), 2 (3-D), 0 above.
    """

    threshold: float = 0.5
    max_evals: int | None = None
    max_iter: int = 2000
    lattice: int | list[int] | None = None
    xtol: float = 0.001
    fd_step: float = 0.001
    trades: int | None = None
    trade_frac: float = 0.04
    alternatives: int | None = None


@dataclass(frozen=True)
class PaperParams:
    """The reference update rules' constants (`robustlens.paper`): step size ``lr``, the
    growth weights ``alpha`` / ``beta``, the OIR_W regulariser ``reg``, ``n_iter``
    gradient steps, the start box's ``start_halfwidth`` and the finite-difference
    ``fd_step`` (fraction of the domain width) of OIR_W without ``grad_fn``."""

    lr: float = paper.LR
    alpha: float = paper.ALPHA
    beta: float = paper.BETA
    reg: float = paper.REG
    n_iter: int = paper.N_ITER
    start_halfwidth: float = paper.START_HALFWIDTH
    fd_step: float = paper.FD_STEP


#: hyper-parameters of both variants: ``periodic`` (bool mask (n,) or dim indices; only
#: "ours" wraps, the paper rules clip) and ``grow_tol`` (a region *grew* when the
#: geometric mean of its widths relative to the domain widths exceeds it)
COMMON: dict[str, Any] = {"periodic": None, "grow_tol": 1e-3}


def params_class(variant: str) -> type[OursParams] | type[PaperParams]:
    return PaperParams if variant == "paper" else OursParams


def defaults(variant: str) -> dict[str, Any]:
    """Every hyper-parameter of ``variant`` with its default (common ones included)."""
    return {**asdict(params_class(variant)()), **COMMON}


def names(variant: str) -> tuple[str, ...]:
    return tuple(f.name for f in fields(params_class(variant))) + tuple(COMMON)
