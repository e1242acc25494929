"""Shared CLI pieces: model options, progress bars, error reporting."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from ..errors import printable
from ..models import Classifier, ModelOverrides, load_model
from ..models.base import as_list

F = TypeVar("F", bound=Callable[..., Any])
# markup off: paths and names such as dir/br[/x].obj or "[bold red]" are printed verbatim,
# never interpreted (styles are applied with Text objects where wanted)
class _Console(Console):
    """Prints file names that are not UTF-8 (surrogate escapes) as ``\\xe9``, so any stderr
    encoding can take them."""

    def print(self, *objects: Any, **kwargs: Any) -> None:  # type: ignore[override]
        super().print(*(printable(o) if isinstance(o, str) else o for o in objects), **kwargs)


console = _Console(stderr=True, markup=False, highlight=False, emoji=False, soft_wrap=True)

#: set by the top-level --quiet / --verbose flags
VERBOSITY = {"level": 1}


def model_options(fn: F) -> F:
    """Add ``--model --weights --input-size --mean --std --interpolation --labels
    --target-layer --device``."""
    opts = [
        click.option("--model", "model_spec", default="default", show_default=True,
                     help="Model spec: default, builtin:NAME, torchvision:NAME, timm:NAME, "
                          "torchscript:PATH, onnx:PATH or python:FILE.py:FUNC."),
        click.option("--weights", default=None, type=str,
                     help="Weight file (state dict) for the model; hub names otherwise read "
                          "the local cache only."),
        click.option("--input-size", type=int, default=None, help="Override the model's input side S."),
        click.option("--mean", default=None, help="Override normalisation mean, e.g. 0.485,0.456,0.406."),
        click.option("--std", default=None, help="Override normalisation std, e.g. 0.229,0.224,0.225."),
        click.option("--interpolation", default=None,
                     help="Override the resize interpolation: bilinear, bicubic or nearest "
                          "(default: the weights' own preset)."),
        click.option("--labels", "labels_file", default=None, help="Class names file, one per line."),
        click.option("--target-layer", default=None,
                     help="Dotted module path of the CAM layer, e.g. layer4 or features.7."),
        click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def runtime_option(fn: F) -> F:
    """Add ``--runtime auto|torch|onnxruntime`` (the engine of forward-only passes)."""
    return click.option(
        "--runtime", type=click.Choice(["auto", "torch", "onnxruntime"]), default="auto",
        show_default=True,
        help="Engine for forward-only passes (maps, regions, predictions): auto = ONNX Runtime "
             "when the model exports and matches PyTorch, else PyTorch. CAMs use PyTorch.")(fn)


def use_runtime(clf: Classifier, runtime: str) -> Classifier:
    """Run ``clf``'s forward-only passes on ``runtime`` (call it once the command's inputs
    are validated: it may export the model and prints one line saying what it chose)."""
    from ..models.runtime import prepare_runtime

    return prepare_runtime(clf, runtime, log=info)


def model_from_options(model_spec: str, weights: str | None, input_size: int | None,
                       mean: str | None, std: str | None, labels_file: str | None,
                       target_layer: str | None, device: str,
                       interpolation: str | None = None) -> Classifier:
    """Build a :class:`Classifier` from the values of :func:`model_options`."""

    ov = ModelOverrides(
        input_size=input_size,
        mean=as_list(mean, 3, "mean") if mean else None,  # type: ignore[arg-type]
        std=as_list(std, 3, "std") if std else None,  # type: ignore[arg-type]
        labels_file=labels_file, target_layer=target_layer, weights=weights, device=device,
        interpolation=interpolation,
    )
    clf = load_model(model_spec, ov, runtime="torch")  # the command chooses it later
    debug(clf.describe())
    return clf


def pop_model_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Remove and return the :func:`model_options` values from a command's kwargs."""
    keys = ["model_spec", "weights", "input_size", "mean", "std", "labels_file", "target_layer",
            "device", "interpolation"]
    return {k: kwargs.pop(k) for k in keys}


class _Progress(Progress):
    """A rich bar that vanishes when its ``with`` block fails (the error stays the one line
    on stderr)."""

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.live.transient = True
        super().__exit__(exc_type, exc, tb)


def progress() -> Progress | LineProgress:
    """The one progress helper of the commands and the study: on stderr, a live rich bar on a
    terminal (it vanishes when the ``with`` block fails); in a log (not a terminal) lines at
    least every 10% or 30 s of a long step and one at its end (see :class:`LineProgress`).
    Hidden with --quiet."""
    if not console.is_terminal:
        return LineProgress(disable=VERBOSITY["level"] == 0)
    return _Progress(TextColumn("{task.description}", style="bold", markup=False), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                    console=console, disable=VERBOSITY["level"] == 0, transient=False)


class LineProgress:
    """The part of :class:`rich.progress.Progress` the commands use, for logs: a line such as
    ``map lite0 mug: 1224/4080 (30%) 0:00:21 elapsed, eta 0:00:49`` each time a task passes
    another 10% or 30 s have gone by, and when it ends (none at its start, so a command that
    fails on its first batch still says only its one error line; none in a task's first
    :attr:`QUIET_SECONDS`, so short steps say one line)."""

    EVERY_FRACTION = 0.1
    EVERY_SECONDS = 30.0
    #: a step shorter than this says only its final line (a study has hundreds of short ones)
    QUIET_SECONDS = 5.0

    def __init__(self, disable: bool = False, out: Any = None) -> None:
        self.disable = disable
        self._out = out
        self._tasks: dict[TaskID, dict[str, Any]] = {}

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        for t in self._tasks.values():
            t["finished"] = True

    def add_task(self, description: str, total: float | None = None, **_: Any) -> TaskID:
        tid = TaskID(len(self._tasks))
        self._tasks[tid] = {"description": description, "total": total, "completed": 0.0,
                            "t0": time.monotonic(), "last_t": time.monotonic(),
                            "last_frac": 0.0, "finished": False}
        return tid

    def advance(self, task: TaskID, advance: float = 1) -> None:
        self.update(task, advance=advance)

    def update(self, task: TaskID, total: float | None = None, completed: float | None = None,
               advance: float | None = None, **_: Any) -> None:
        t = self._tasks[task]
        if total is not None:
            t["total"] = total
        if completed is not None:
            t["completed"] = float(completed)
        if advance:
            t["completed"] += float(advance)
        now = time.monotonic()
        frac = t["completed"] / t["total"] if t["total"] else 0.0
        done = bool(t["total"]) and t["completed"] >= t["total"]
        if done and not t["finished"]:
            t["finished"] = True
            self._line(task)
        elif not done and now - t["t0"] >= self.QUIET_SECONDS and (
                frac - t["last_frac"] >= self.EVERY_FRACTION
                or now - t["last_t"] >= self.EVERY_SECONDS):
            self._line(task)

    def _line(self, task: TaskID) -> None:
        t = self._tasks[task]
        now = time.monotonic()
        t["last_t"] = now
        total, done = t["total"], t["completed"]
        t["last_frac"] = done / total if total else 0.0
        if self.disable:
            return
        elapsed = now - t["t0"]
        text = f"{t['description']}: {done:.0f}"
        if total:
            text += f"/{total:.0f} ({done / total:.0%})"
        text += f" {_hms(elapsed)} elapsed"
        if total and 0 < done < total:
            text += f", eta {_hms(elapsed * (total - done) / done)}"
        print(printable(text), file=self._out or sys.stderr, flush=True)


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def info(msg: str) -> None:
    if VERBOSITY["level"] >= 1:
        console.print(msg)


def debug(msg: str) -> None:
    if VERBOSITY["level"] >= 2:
        console.print(Text(printable(msg), style="dim"))


def hold_out_dir(path: str, param: str = "out") -> Path:
    """Create ``path`` and hold its exclusive lock until the command ends (see
    :func:`robustlens.io.locked_out_dir`); a second run into the same folder is refused."""
    from ..io import locked_out_dir

    return click.get_current_context().with_resource(locked_out_dir(path, param))


def resolve_class(clf: Classifier, class_: str | None, mesh_spec: str) -> int:
    """``--class`` if given, else the known class of a ``demo:`` mesh; BadInput otherwise."""
    from ..errors import BadInput, ref
    from ..render import demo_class

    if class_ is None:
        class_ = demo_class(mesh_spec)
        if class_ is None:
            raise BadInput(f": required for {ref('mesh')} {mesh_spec} (a class id or label name)",
                           param="class_id")
    return clf.class_index(class_)
