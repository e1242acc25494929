"""White-box OIR_W: scores *and* score gradients from one differentiable renderer.

`WhiteBoxScore` is the Mitsuba counterpart of `robustlens.regions.scene.SceneScore`: calling
it gives the scores ``(N,)`` (true-class probability, or ``(1 + margin) / 2`` for the top-1
criterion) rendered by `robustlens.render.diff.DiffMeshRenderer`; ``.grad`` gives their
gradients ``(N, n)`` per unit of each searched parameter (per degree for angles), taken
through the renderer and the classifier (torch autograd into Dr.Jit's adjoint pass). The
two share renderer, samples per pixel and seed, so a score and its gradient describe the
same function (never moderngl scores with Mitsuba gradients). Pass both to `find_region`:
``find_region(fn, x0, domain, "oir_w", grad_fn=fn.grad)``.

`scene_score_fn` picks the score function for ``--grad fd|mitsuba`` (``regions.grad``);
`check_spp` validates the samples per pixel (``--spp`` / ``--spp-grad``, ``regions.spp`` /
``regions.spp_grad``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from robustlens.errors import BadInput, ref
from robustlens.regions.criterion import margin_values
from robustlens.regions.scene import GRADS, PoseScore, check_grad

__all__ = ["GRADS", "WhiteBoxScore", "check_grad", "check_spp", "scene_score_fn"]

#: ``fd``: finite differences of the moderngl renderer (the default); ``mitsuba``: gradients
#: through Mitsuba 3 (white box, the paper's OIR_W).

#: samples per pixel of the primal image and of the adjoint pass (see benchmarks/bench_whitebox.py)
DEFAULT_SPP = 64
DEFAULT_SPP_GRAD = 16


def check_spp(grad: str, spp: int | None = None, spp_grad: int | None = None,
              param: str = "grad") -> tuple[int, int] | None:
    """Samples per pixel ``(primal, adjoint)`` for ``grad``: ``spp`` / ``spp_grad`` or the
    defaults (`DEFAULT_SPP`, `DEFAULT_SPP_GRAD`) with ``mitsuba``; None with ``fd``.

    BadInput (``param`` ``spp`` / ``spp_grad``) for a value that is not an integer >= 1, or
    for one given with ``fd`` (samples per pixel apply only to Mitsuba: moderngl renders with
    4 fixed MSAA samples); ``param`` names the gradient choice in that message.
    """
    check_grad(grad, param)
    given = {"spp": spp, "spp_grad": spp_grad}
    for name, v in given.items():
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise BadInput("expected an integer >= 1", param=name, value=v)
        if grad == "fd":
            raise BadInput(f"applies only with {ref(param)} mitsuba (samples per pixel of "
                           f"the Mitsuba renders; {ref(param)} fd renders with moderngl)",
                           param=name, value=v)
    if grad == "fd":
        return None
    return (DEFAULT_SPP if spp is None else int(spp),
            DEFAULT_SPP_GRAD if spp_grad is None else int(spp_grad))


class WhiteBoxScore(PoseScore):
    """Score and gradient of ``class_id`` on ``mesh`` over ``names``, rendered by Mitsuba.

    Non-periodic coordinates are clamped to ``domain`` (as `SceneScore`); periodic ones
    wrap. ``renderer``: a `DiffMeshRenderer` (default: one at the model's input size with
    ``spp`` / ``spp_grad`` / ``seed``).
    """

    def __init__(self, classifier: Any, mesh: Any, class_id: int, names: Sequence[str],
                 domain: tuple[np.ndarray, np.ndarray] | None = None,
                 fixed: Mapping[str, float] | None = None, renderer: Any = None,
                 criterion: str = "score", spp: int = DEFAULT_SPP,
                 spp_grad: int = DEFAULT_SPP_GRAD, seed: int = 0,
                 image_size: int | None = None) -> None:
        from robustlens.render.diff import DiffMeshRenderer

        self._setup(classifier, names, domain, fixed, criterion)
        self.classifier = classifier
        self.mesh = mesh
        self.class_id = int(class_id)
        self.renderer = renderer or DiffMeshRenderer(
            image_size=image_size or classifier.input_size, spp=spp, spp_grad=spp_grad,
            seed=seed)
        self.n_calls = 0
        self.n_evaluations = 0
        self.n_grad_calls = 0
        self.n_gradients = 0

    # ------------------------------------------------------------------ helpers
    def _params(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return {n: x[:, j] for j, n in enumerate(self.names)}

    def _value(self, probs: torch.Tensor) -> torch.Tensor:
        """Criterion value per row of ``(B, C)`` probabilities (differentiable)."""
        p = probs[:, self.class_id]
        if self.criterion == "score":
            return p
        others = probs.clone()
        others[:, self.class_id] = -1.0
        return (1.0 + p - others.max(dim=1).values) / 2.0

    # ------------------------------------------------------------------ public
    def outputs(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scores, top-1 ids and margins ``(N,)`` each, from Mitsuba renders."""
        from robustlens.semantic.score import true_class_outputs

        x = self._points(points, wrap=True)
        imgs = self.renderer.render(self.mesh, self._params(x), fixed=self.fixed)
        return true_class_outputs(self.classifier.probs(imgs), self.class_id)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        x = self._points(points, wrap=True)
        score, _, margin = self.outputs(x)
        self.n_calls += 1
        self.n_evaluations += len(x)
        s = score if self.criterion == "score" else margin_values(margin)
        return self._finite(np.asarray(s, dtype=np.float64), x)

    def value_and_grad(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores ``(N,)`` and their gradients ``(N, n)`` (per degree for angles), from the
        same Mitsuba image of each pose."""
        x = self._points(points, wrap=True)

        def weight(img: torch.Tensor) -> tuple[float, torch.Tensor]:
            img = img.detach().clone().requires_grad_(True)
            with torch.enable_grad():
                probs = self.classifier.logits(img).float().softmax(dim=1)
                v = self._value(probs).sum()
                (g,) = torch.autograd.grad(v, img)
            return float(v.detach()), g

        _, vals, grads = self.renderer.render_grad(self.mesh, self._params(x), self.names,
                                                   weight, fixed=self.fixed)
        self.n_grad_calls += 1
        self.n_gradients += len(x)
        # clamped coordinates: the score does not change past the domain edge
        keep = ~self.periodic
        at_edge = (x[:, keep] <= self.lower[keep]) & (np.asarray(points)[:, keep] < self.lower[keep]) \
            | (x[:, keep] >= self.upper[keep]) & (np.asarray(points)[:, keep] > self.upper[keep])
        sub = grads[:, keep]
        sub[at_edge] = 0.0
        grads[:, keep] = sub
        return self._finite(vals, x), grads

    def grad(self, points: np.ndarray) -> np.ndarray:
        """Gradients ``(N, n)`` of the scores: a ``grad_fn`` for `find_region`."""
        return self.value_and_grad(points)[1]

    def close(self) -> None:
        self.renderer.close()


def scene_score_fn(grad: str, classifier: Any, mesh: Any, class_id: int, names: Sequence[str],
                   domain: tuple[np.ndarray, np.ndarray], fixed: Mapping[str, float] | None,
                   renderer: Any, batch_size: int, criterion: str,
                   image_size: int | None = None, param: str = "grad",
                   spp: int | None = None, spp_grad: int | None = None
                   ) -> tuple[Any, Any]:
    """``(score_fn, grad_fn)`` for ``grad``: ``fd`` -> (`SceneScore` on ``renderer``, None:
    finite differences of it); ``mitsuba`` -> (`WhiteBoxScore`, its ``grad``), both from
    Mitsuba, rendered with ``spp`` / ``spp_grad`` samples per pixel (default 64 / 16; an
    error with ``fd``, see `check_spp`). The score function is a context manager."""
    samples = check_spp(grad, spp, spp_grad, param)
    if grad == "fd":
        from robustlens.regions.scene import SceneScore

        fn = SceneScore(classifier, mesh, class_id, names, domain, fixed, renderer, batch_size,
                        criterion)
        return fn, None
    from robustlens.render.diff import backend_problem

    problem = backend_problem()
    if problem is not None:
        raise BadInput(f"mitsuba: {problem}", param=param)
    assert samples is not None
    wb = WhiteBoxScore(classifier, mesh, class_id, names, domain, fixed, criterion=criterion,
                       spp=samples[0], spp_grad=samples[1],
                       image_size=image_size or getattr(renderer, "image_size", None))
    return wb, wb.grad
