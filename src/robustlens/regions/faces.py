"""Step 4 of variant "ours": face refinement, and the face tests every step uses.

Each face of the box lies on a good line and the next line out holds a bad node.  Each
face bisects its bracket to ``xtol`` with cheap tests (its corners; plus the face centre
for oir_b / oir_w), one dim per round, so a move is tested over exactly the box it bounds.
Then every moved face is tested densely at its final place *and at every line it
crossed*, in one call (`verify_since`): the lines crossing it and its corners (naive),
plus the centres of its cells (oir_b / oir_w).  A face failing that goes back and
bisects with dense tests.  From 3-D on the search skips that dense check
(``verify=False``): the certification checks the box, faces included (`certify`).  The
reserve the 1-D / 2-D grid stage keeps for the final bisection is
`state.Budget.refine_estimate`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from robustlens.regions.evaluator import BudgetExhausted
from robustlens.regions.rectilinear import cartesian
from robustlens.regions.state import Face, SearchState, StepResult

__all__ = ["axis_samples", "face_points", "lattice_box", "move_round", "proposals", "refine",
           "slab_points", "sweep", "verify_since"]


def lattice_box(s: SearchState, box: tuple[list[int], list[int]], shape: tuple[int, ...],
    coord: Callable[[int, int], float] | None = None,
) -> list[Face | None]:
    """Set the box to a lattice box; returns the 2n face brackets (each reaching to
    the next line out; None on a domain edge or a full circle).  ``coord(i, k)``:
    the coordinate of line k of dim i (default: the uniform flood lattice)."""
    coord = s.coord if coord is None else coord
    lo_k, hi_k = box
    faces: list[Face | None] = []
    for i in range(s.n):
        m = shape[i]
        full = s.periodic[i] and hi_k[i] - lo_k[i] + 1 >= m
        if full:
            s.lo[i], s.hi[i] = s.dlo[i], s.dhi[i]
            faces += [None, None]
            continue
        s.lo[i], s.hi[i] = coord(i, lo_k[i]), coord(i, hi_k[i])
        for side, k in ((-1, lo_k[i] - 1), (1, hi_k[i] + 1)):
            if not s.periodic[i] and not 0 <= k < m:
                faces.append(None)  # at the domain edge
            else:
                faces.append(Face(i, side, coord(i, k), None))
    return faces


def axis_samples(s: SearchState, j: int, a: float, b: float) -> np.ndarray:
    """Test coordinates on [a, b] along dim j: both ends and the lattice lines inside."""
    inner = s.lines(j, a, b)
    return np.unique(np.r_[a, inner[(inner > a) & (inner < b)], b])


def face_points(s: SearchState, i: int, q: float, dense: bool) -> np.ndarray:
    """Test points of the face of dim i at offset q spanning the current box.

    Cheap (bisection): the face corners, plus the face centre for oir_b / oir_w.
    Dense (verification): the lattice lines crossing the face and its corners,
    plus (oir_b / oir_w) the centres of the face's lattice cells.
    """
    other = [j for j in range(s.n) if j != i]
    if dense:
        axes = [axis_samples(s, j, s.lo[j], s.hi[j]) for j in other]
    else:
        axes = [np.unique(np.r_[s.lo[j], s.hi[j]]) for j in other]
    blocks = [cartesian(axes)]
    if s.fine_faces and other:
        mids = [0.5 * (a[:-1] + a[1:]) if len(a) > 1 else a for a in axes]
        blocks.append(cartesian(mids))
    pts = np.concatenate(blocks)
    out = np.empty((len(pts), s.n))
    out[:, other] = pts
    out[:, i] = q
    return out


def slab_points(s: SearchState, i: int, p: float, q: float) -> np.ndarray:
    """Dense test points of a face moved from ``p`` to ``q`` in dim i: the face at
    ``q`` and at every lattice line strictly between (so no hole of the slab between
    two lines is skipped: the box stays sound at the lattice step)."""
    crossed = s.lines(i, min(p, q), max(p, q))
    crossed = crossed[(crossed != p) & (crossed != q)]
    return np.concatenate([face_points(s, i, c, dense=True) for c in (*crossed, q)])


def proposals(s: SearchState, faces: list[Face | None], dim: int) -> dict[int, float]:
    """Outward offset to test for every face of ``dim`` still moving (drops finished
    faces: sets them to None)."""
    props: dict[int, float] = {}
    for fi, f in enumerate(faces):
        if f is None or f.dim != dim:
            continue
        i, side = f.dim, f.side
        p = s.lo[i] if side < 0 else s.hi[i]
        if s.full_circle(i, s.lo, s.hi):
            faces[fi] = None
            continue
        if f.bad is not None:
            gap = abs(f.bad - p)
            if gap <= s.tol[i]:
                faces[fi] = None
                continue
            c = gap / 2
        else:
            c = f.step
        if not s.periodic[i]:
            room = (p - s.dlo[i]) if side < 0 else (s.dhi[i] - p)
            if room <= 1e-12 * s.width[i]:
                faces[fi] = None
                continue
            c = min(c, float(room))
        if not c > 1e-12 * s.width[i]:
            faces[fi] = None
            continue
        props[fi] = c
    if s.periodic[dim] and props:
        # the two faces of a periodic dim must not overlap: share the gap left
        i = dim
        pair = list(props)
        room = float(s.width[i] - (s.hi[i] - s.lo[i]))
        tot = sum(props[fi] for fi in pair)
        if tot > room:
            for fi in pair:
                props[fi] *= room / tot
    return props


def move_round(s: SearchState, faces: list[Face | None], dense: bool, dim: int) -> bool:
    """One batched round: the moving faces of ``dim`` (at most two, which do not touch)
    test their candidates over the current box, so an accepted move is tested over
    exactly the box it bounds.  Returns False when no face of ``dim`` is left to move.
    """
    props = proposals(s, faces, dim)
    if not props:
        return False
    blocks, spans, start = [], [], 0
    for fi, c in props.items():
        f = faces[fi]
        assert f is not None
        i = f.dim
        p = s.lo[i] if f.side < 0 else s.hi[i]
        q = p - c if f.side < 0 else p + c
        x = slab_points(s, i, p, q) if dense else face_points(s, i, q, dense)
        if f.witness is not None and len(f.witness):
            w = f.witness.copy()
            w[:, i] = q
            x = np.concatenate([x, w])
        blocks.append(x)
        spans.append((fi, q, slice(start, start + len(x))))
        start += len(x)
    vals, _ = s.score(np.concatenate(blocks))
    for fi, q, sl in spans:
        f = faces[fi]
        assert f is not None
        i = f.dim
        if vals[sl].min() >= s.t:
            if f.side < 0:
                s.lo[i] = q
            else:
                s.hi[i] = q
            if f.bad is None and f.step is not None:
                f.step *= 2
        else:
            f.bad = q
    for i in np.flatnonzero(s.periodic).tolist():
        if s.full_circle(i, s.lo, s.hi):
            s.lo[i], s.hi[i] = s.dlo[i], s.dhi[i]
    s.log_trace()
    return True


def refine(s: SearchState, faces: list[Face | None], log_entry: bool = False,
           verify: bool = True) -> StepResult:
    """`refine_faces`; if the budget runs out midway the box goes back to its entry
    state (sound at the lattice resolution) before `BudgetExhausted` propagates."""
    entry = (s.lo.copy(), s.hi.copy())
    if log_entry:
        s.log_trace()
    try:
        refine_faces(s, faces, verify)
    except BudgetExhausted:
        s.lo, s.hi = entry
        s.log_trace()
        raise
    return s.box()


def refine_faces(s: SearchState, faces: list[Face | None], verify: bool = True) -> None:
    """Move faces out until every bracket is below tolerance (raises `BudgetExhausted`).

    A face with ``bad`` set bisects; one without grows by doubling ``step``.  The
    box at entry is sound at the lattice resolution.  Phase A moves the faces
    with cheap tests, one dim per round (so a move is tested over exactly the box
    it bounds, corners included); phase B tests every moved face densely at its
    final position over the final box (one call); a face that fails goes back to
    its entry position and bisects with dense tests (phase C).
    """
    entry = (s.lo.copy(), s.hi.copy())
    sweep(s, faces, dense=False)
    if verify:
        verify_since(s, entry)


def verify_since(s: SearchState, entry: tuple[np.ndarray, np.ndarray]) -> None:
    """Dense check of every face that moved since the sound box ``entry``: the face
    and every line it crossed, over the current box (one call); a face failing it
    goes back to its entry position and bisects with dense tests."""
    # only faces that moved out need a check: a face that moved in shrank the box
    moved = [(i, sd) for i in range(s.n) for sd in (-1, 1)
             if not s.full_circle(i, s.lo, s.hi)
             and (s.lo[i] < entry[0][i] if sd < 0 else s.hi[i] > entry[1][i])]
    if not moved:
        return
    blocks, spans, start = [], [], 0
    for i, sd in moved:
        # the final face and every lattice line it crossed: a face that moved by
        # more than a step (a regrown trade) must not skip a hole of the slab
        q, q0 = (s.lo[i], entry[0][i]) if sd < 0 else (s.hi[i], entry[1][i])
        x = slab_points(s, i, q0, q)
        blocks.append(x)
        spans.append((i, sd, slice(start, start + len(x))))
        start += len(x)
    vals, _ = s.score(np.concatenate(blocks))
    retry: list[Face | None] = []
    for i, sd, sl in spans:
        if vals[sl].min() >= s.t:
            continue
        if sd < 0:
            bad, s.lo[i] = s.lo[i], entry[0][i]
        else:
            bad, s.hi[i] = s.hi[i], entry[1][i]
        retry.append(Face(i, sd, bad, None))
    if not retry:
        return
    s.log_trace()
    sweep(s, retry, dense=True)


def sweep(s: SearchState, faces: list[Face | None], dense: bool) -> None:
    """Rounds over the dims in turn until no face moves."""
    active = True
    while active:
        active = False
        for d in range(s.n):
            active |= move_round(s, faces, dense, d)
