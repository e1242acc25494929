"""Which engine runs a classifier's forward-only passes: eager PyTorch or ONNX Runtime.

Maps, curves, region searches on the live renderer, SRVR and the predictions of the
attacks only need ``probs`` (no gradients), and that forward pass bounds them. ONNX Runtime
runs EfficientNet-Lite0 5-10x faster than eager PyTorch on the 2-core CPU (see the README's
benchmark table), so :func:`prepare_runtime` exports a torch model to ONNX once, caches the
export, proves it against PyTorch on a probe batch and then routes
:meth:`Classifier.probs` through it. CAMs (gradients) keep using the PyTorch module.

Cache: :func:`robustlens.fingerprint.cache_dir` (``$ROBUSTLENS_CACHE``), folder ``onnx/``:
``KEY.onnx`` + ``KEY.json`` (its sha256). KEY hashes the model's identity
(:func:`robustlens.fingerprint.model_key`: spec, weight and source hashes, preprocessing,
labels, CAM layer), every state-dict tensor, the architecture and the robustlens / torch
versions. A file whose sha256 does not match is rebuilt, never used.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..errors import BadInput, first_line, ref
from ..fingerprint import cache_dir, model_key, sha256_file
from ..io import atomic_path, write_text_atomic
from .base import Classifier

RUNTIMES = ("auto", "torch", "onnxruntime")
#: max |softmax(onnx) - softmax(torch)| allowed on the probe batch
PARITY_TOL = 1e-4
OPSET = 17
#: batch of the export's dummy input; the parity probe uses batches of 2 (the shape
#: load_model's probe already ran, so eager PyTorch has its kernels ready), so a batch size
#: frozen into the graph by tracing shows up as a parity failure
EXPORT_BATCH = 3
PROBE_BATCH = 2
Log = Callable[[str], None]
#: warnings (a corrupt cache entry, a failed parity check); the CLI styles them
LOG = logging.getLogger("robustlens.runtime")


class ExportError(Exception):
    """The model cannot be exported to ONNX (or the export does not load)."""




def ort_threads() -> int:
    """ONNX Runtime intra-op threads: ``$ROBUSTLENS_ORT_THREADS``, else all cores but one.

    The core left over runs the render thread (rendering overlaps inference). Measured on the
    2-core machine (benchmarks/bench_runtime.py, README "Runtimes"): in the map pipeline one
    ORT thread gave 75 poses/s, two gave 53 (and 41 with spinning on)."""
    env = os.environ.get("ROBUSTLENS_ORT_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, (os.cpu_count() or 1) - 1)


def ort_session(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> Any:
    """An ``onnxruntime.InferenceSession`` for ``path`` on ``device``.

    Graph optimisations all on; intra-op threads from :func:`ort_threads`; spinning off so
    idle ORT threads do not steal the core the render thread needs. ``cuda`` uses the
    CUDAExecutionProvider (with CPU as fallback for unsupported nodes)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = ort_threads()
    opts.inter_op_num_threads = 1
    if os.environ.get("ROBUSTLENS_ORT_SPIN", "0") != "1":
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    dev = torch.device(device)
    if dev.type == "cuda":
        cuda_opts = {"device_id": dev.index or 0}
        providers: list[Any] = [("CUDAExecutionProvider", cuda_opts), "CPUExecutionProvider"]
    else:
        providers = ["CPUExecutionProvider"]
    return ort.InferenceSession(str(path), sess_options=opts, providers=providers)


def cuda_provider_available() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


class OrtForward(nn.Module):
    """Normalised images ``(B, 3, S, S)`` -> logits ``(B, C)`` with an ONNX Runtime session.

    Also the ``module`` of ``onnx:PATH`` models. A model exported with a fixed batch size
    ``n`` is run in chunks of ``n`` (the last chunk padded)."""

    def __init__(self, path: str | os.PathLike[str], device: torch.device | str = "cpu") -> None:
        super().__init__()
        self.path = str(path)
        self.session = ort_session(path, device)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = list(inp.shape)
        b = self.input_shape[0] if self.input_shape else None
        self.fixed_batch = b if isinstance(b, int) and b > 0 else None

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        n = self.fixed_batch
        if n is None:
            out = self.session.run(None, {self.input_name: a})[0]
        else:
            parts = []
            for i in range(0, len(a), n):
                chunk = a[i:i + n]
                k = len(chunk)
                if k < n:
                    chunk = np.concatenate([chunk, np.repeat(chunk[-1:], n - k, axis=0)])
                parts.append(self.session.run(None, {self.input_name: chunk})[0][:k])
            out = np.concatenate(parts)
        return torch.from_numpy(np.asarray(out)).to(x.device)


def check_onnx_input(shape: list[Any], name: str, where: str, param: str | None = None) -> None:
    """BadInput (about ``where``, parameter ``param``) unless an ONNX input ``shape`` is
    ``(B, 3, H, W)`` (symbolic dims allowed)."""
    ok = len(shape) == 4 and (not isinstance(shape[1], int) or shape[1] == 3)
    ok = ok and all(not isinstance(d, int) or d > 0 for d in shape[2:])
    if not ok:
        dims = ", ".join(str(d) if d is not None else "?" for d in shape)
        raise BadInput(f"{where}: input {name!r} has shape ({dims}), expected (B, 3, H, W) images",
                       param=param)


# ------------------------------------------------------------------ export + cache
def state_hash(module: nn.Module) -> str:
    """sha256 over every state-dict tensor (name, dtype, shape, values)."""
    h = hashlib.sha256()
    for k, v in module.state_dict().items():
        if not isinstance(v, torch.Tensor):
            continue
        t = v.detach().cpu().contiguous().reshape(-1)
        h.update(f"{k}|{t.dtype}|{tuple(v.shape)}|".encode())
        if not t.numel():
            continue
        try:
            h.update(t.view(torch.uint8).numpy().tobytes())
        except (RuntimeError, TypeError):  # e.g. quantized tensors: hash their serialisation
            buf = io.BytesIO()
            torch.save(t, buf)
            h.update(buf.getvalue())
    return h.hexdigest()


def export_key(clf: Classifier) -> str:
    """Cache key: the model's identity (without the runtime, which this export decides),
    every weight tensor, the architecture, robustlens and torch versions and the opset."""
    return model_key(clf, type(clf.module).__qualname__, repr(clf.module),
                     state_hash(clf.module), __version__, torch.__version__, OPSET,
                     runtime=False)[:32]


@contextlib.contextmanager
def _silenced_fds() -> Any:
    """Silence stdout and stderr at the file-descriptor level as well as in Python: the
    exporter's C++ side prints the whole TorchScript graph when an export fails, which
    ``contextlib.redirect_stdout`` cannot catch."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved: list[tuple[int, int]] = []
    try:
        with open(os.devnull, "w") as null:
            for fd in (1, 2):
                try:
                    saved.append((fd, os.dup(fd)))
                    os.dup2(null.fileno(), fd)
                except OSError:  # no such descriptor (embedded interpreters)
                    continue
            with contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()):
                yield
    finally:
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)


def export_onnx(clf: Classifier, path: Path) -> None:
    """Export ``clf.module`` (normalised images -> logits) to ``path`` with a dynamic batch."""
    try:
        import onnx  # noqa: F401  (torch's exporter needs it to write the file)
    except ImportError:
        raise ExportError("the 'onnx' package is not installed") from None
    if isinstance(clf.module, OrtForward):
        raise ExportError("already an ONNX model")
    dummy = torch.full((EXPORT_BATCH, 3, clf.input_size, clf.input_size), 0.0,
                       device=clf.device)
    try:
        with torch.no_grad(), warnings.catch_warnings(), _silenced_fds():
            warnings.simplefilter("ignore")
            torch.onnx.export(clf.module, (dummy,), str(path), opset_version=OPSET, dynamo=False,
                              input_names=["x"], output_names=["logits"],
                              dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})
    except Exception as exc:  # the exporter raises many kinds for unsupported ops
        raise ExportError(first_line(exc)) from None


def cached_export(clf: Classifier, log: Log = print) -> tuple[Path, bool]:
    """The cached ONNX export of ``clf`` (built when missing or corrupt): ``(path, built)``."""
    folder = cache_dir() / "onnx"
    key = export_key(clf)
    onnx_path, meta_path = folder / f"{key}.onnx", folder / f"{key}.json"
    if onnx_path.is_file():
        try:
            want = json.loads(meta_path.read_text()).get("sha256")
        except (OSError, ValueError, AttributeError):
            want = None
        if want and want == sha256_file(onnx_path):
            return onnx_path, False
        LOG.warning("ONNX cache entry %s does not match its recorded sha256; rebuilding it",
                    onnx_path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create the cache folder {folder} ({first_line(exc)})") from None
    try:
        with atomic_path(onnx_path) as tmp:
            export_onnx(clf, tmp)
            digest = sha256_file(tmp)
        write_text_atomic(meta_path, json.dumps({
            "sha256": digest, "spec": clf.spec, "input_size": clf.input_size,
            "robustlens": __version__, "torch": torch.__version__, "opset": OPSET}, indent=1))
    except OSError as exc:
        raise ExportError(f"cannot write the cache {folder} ({first_line(exc)})") from None
    return onnx_path, True


# ------------------------------------------------------------------ parity
def probe_images(size: int, n: int = 4, seed: int = 0) -> torch.Tensor:
    """``(n, 3, size, size)`` deterministic, non-trivial images in [0, 1]: smooth random
    colour fields at several scales, a grey image and fine noise."""
    g = torch.Generator().manual_seed(seed)
    imgs = []
    for k in range(n):
        if k == n - 1:
            imgs.append(torch.rand(1, 3, size, size, generator=g))
            continue
        cells = 3 + 4 * k
        low = torch.rand(1, 3, cells, cells, generator=g)
        imgs.append(torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic",
                                                    align_corners=False).clamp(0, 1))
    if n > 2:
        imgs[1] = torch.full_like(imgs[1], 0.5)
    return torch.cat(imgs)


@torch.no_grad()
def parity(clf: Classifier, forward: nn.Module, images: torch.Tensor | None = None) -> float:
    """max |softmax(forward) - softmax(torch module)| on the probe images, in batches of
    :data:`PROBE_BATCH` (a first eager call at a new batch shape costs seconds on 2 cores)."""
    imgs = probe_images(clf.input_size) if images is None else images
    worst = 0.0
    for i in range(0, len(imgs), PROBE_BATCH):
        x = clf.normalize(imgs[i:i + PROBE_BATCH])
        ref = clf.module(x)
        if isinstance(ref, (tuple, list)):
            ref = ref[0]
        got = forward(x)
        if got.shape != ref.shape:
            return float("inf")
        d = float((got.float().softmax(1) - ref.float().softmax(1)).abs().max().cpu())
        if not d == d or d == float("inf"):  # NaN / inf
            return float("inf")
        worst = max(worst, d)
    return worst


# ------------------------------------------------------------------ choice
def prepare_runtime(clf: Classifier, runtime: str = "auto", log: Log = print) -> Classifier:
    """Choose the engine of ``clf``'s forward-only passes; returns ``clf`` (modified).

    ``torch``: eager PyTorch. ``onnxruntime``: the cached ONNX export (BadInput naming the
    model when it cannot be exported). ``auto``: ONNX Runtime when the export works and
    matches PyTorch within :data:`PARITY_TOL`, else PyTorch; one line says which and why.
    A failed parity check always falls back to PyTorch with a warning giving the difference
    (a WARNING on the ``robustlens.runtime`` logger, as is a corrupt cache entry; the CLI
    prints those as ``warning: ...``).
    """
    if runtime not in RUNTIMES:
        raise BadInput(f"{runtime!r}: expected one of {', '.join(RUNTIMES)}", param="runtime")
    spec = clf.spec
    if isinstance(clf.module, OrtForward):  # onnx:PATH: ONNX Runtime is its only engine
        clf.runtime = "onnxruntime"
        if runtime == "torch":
            log(f"runtime: onnxruntime for {spec} (an ONNX file cannot run on PyTorch)")
        return clf
    clf.forward_only, clf.runtime = None, "torch"
    if runtime == "torch":
        return clf
    if clf.device.type == "cuda" and not cuda_provider_available():
        if runtime == "onnxruntime":
            raise BadInput(f"onnxruntime {ref('device')} {clf.device}: onnxruntime has no "
                           f"CUDAExecutionProvider here (install onnxruntime-gpu) for model "
                           f"{spec!r}; use {ref('runtime')} torch", param="runtime")
        log(f"runtime: torch on {clf.device} for {spec} (onnxruntime has no CUDA provider here)")
        return clf
    try:
        path, built = cached_export(clf, log)
        fwd = OrtForward(path, clf.device)
    except ExportError as exc:
        if runtime == "onnxruntime":
            raise BadInput(f"onnxruntime: model {spec!r} cannot be exported to ONNX "
                           f"({exc}); use {ref('runtime')} torch", param="runtime") from None
        log(f"runtime: torch for {spec} (ONNX export failed: {exc})")
        return clf
    except Exception as exc:  # onnxruntime rejects the exported graph
        if runtime == "onnxruntime":
            raise BadInput(f"onnxruntime: model {spec!r}: onnxruntime cannot load its "
                           f"ONNX export ({first_line(exc)}); use {ref('runtime')} torch",
                           param="runtime") from None
        log(f"runtime: torch for {spec} (onnxruntime cannot load its ONNX export: "
            f"{first_line(exc)})")
        return clf
    try:
        diff = parity(clf, fwd)
    except Exception as exc:  # a runtime error inside the exported graph
        diff, why = float("inf"), first_line(exc)
    else:
        why = f"max |Δ softmax| {diff:.1e}"
    if not diff <= PARITY_TOL:
        LOG.warning("runtime: torch for %s: its ONNX export disagrees with PyTorch on the "
                    "probe batch (%s, allowed %g)", spec, why, PARITY_TOL)
        return clf
    clf.forward_only, clf.runtime = fwd, "onnxruntime"
    dev = "" if clf.device.type == "cpu" else f" on {fwd.provider}"
    log(f"runtime: onnxruntime{dev} for {spec} ({'auto, ' if runtime == 'auto' else ''}"
        f"{'new' if built else 'cached'} ONNX export, max |Δ softmax| vs torch {diff:.0e})")
    return clf
