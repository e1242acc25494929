"""Where a study's units of work run: in this process, or as Ray tasks on a cluster.

Units of work: map chunks (`robustlens.semantic.chunks`), region searches (one task per
(model, mesh, method, start point)) and class-robustness CAM scoring (shards of batches,
images shipped as bytes). Both executors give the same numbers; the driver keeps
writing every result file, so a step's folder is complete or absent whoever computed it.

Ray specifics (nothing here is a scheduler of our own: placement, retries after a lost node
and worker reuse are Ray's):

* Tasks declare ``num_cpus`` / ``num_gpus`` (config ``ray:``), so a mixed CPU/GPU cluster
  places them correctly; ``max_retries`` lets Ray re-run a task whose node died.
* A worker process loads a model once (cache keyed by spec + overrides + weight hash) and a
  mesh once (cache keyed by the hash of its geometry); weights never travel with a task.
* Meshes travel as contents: the driver loads (and normalises) the mesh from the path it was
  given, puts it once into Ray's object store and passes the reference; workers never see
  the path. Model files named in a spec (torchscript:, onnx:, python:, --weights, --labels)
  are made absolute on the driver and must exist on every node (a shared file system or the
  same install); a preflight task on each node checks that robustlens imports and that those
  files exist, and names the node and the path when not.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import BadInput, first_line, ref
from ..models import Classifier, ModelOverrides

if TYPE_CHECKING:
    from ..semantic.chunks import OnChunk

ProgressFn = Callable[[int], None]


def local_node_id() -> str:
    """The node id recorded for work done in this process without Ray."""
    return f"local:{socket.gethostname()}"


class Executor:
    """Base: records which nodes ran the current step."""

    kind = "local"

    def __init__(self) -> None:
        self._nodes: set[str] = set()

    # ---------------------------------------------------------------- bookkeeping
    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind}

    def driver_node(self) -> str:
        return local_node_id()

    def begin_step(self) -> None:
        self._nodes = set()

    def end_step(self) -> list[str]:
        """Sorted node ids that ran the step (the driver's node when no task ran)."""
        nodes = sorted(self._nodes) or [self.driver_node()]
        self._nodes = set()
        return nodes

    def close(self) -> None:
        pass

    # ---------------------------------------------------------------- units of work
    def register_model(self, clf: Classifier, overrides: ModelOverrides) -> None:
        pass

    def map_chunks(self, clf: Classifier, mesh: Any, mesh_hash: str, job: Any,
                   todo: list[tuple[int, int]], renderer: Any, on_chunk: OnChunk,
                   progress: ProgressFn | None) -> None:
        from ..semantic.chunks import compute_chunks_inline

        self._nodes.add(self.driver_node())
        compute_chunks_inline(clf, mesh, job, todo, renderer, on_chunk, progress)

    def regions_for_mesh(self, clf: Classifier, mesh: Any, class_id: int, search: Any,
                         method: str, *, renderer: Any, batch_size: int,
                         on_result: Callable[[int, Any], None] | None = None) -> list[Any]:
        """`robustlens.regions.scene.regions_for_mesh` of a validated `SceneSearch` (one
        result per start)."""
        from ..regions.scene import regions_for_mesh

        self._nodes.add(self.driver_node())
        return regions_for_mesh(clf, mesh, class_id, search, method, renderer,
                                batch_size=batch_size, on_result=on_result)

    def class_robustness(self, **kwargs: Any) -> Any:
        """A `ClassRobustness` estimator whose batches run here."""
        from ..representation.scores import ClassRobustness

        self._nodes.add(self.driver_node())
        return ClassRobustness(**kwargs)


#: batches of CAM scoring per Ray task (a shard)
CAM_SHARD_BATCHES = 4

#: Ray's own command that starts a head node (a ``ray`` flag, not one of robustlens: the error
#: rule's scanner allows this literal, see tests/test_error_rule.py)
RAY_START_HEAD = "ray start --head"


# ====================================================================== worker side
@dataclasses.dataclass(frozen=True)
class ModelRef:
    """How a worker rebuilds a model: spec and overrides with absolute paths, and the
    driver's model key (:func:`~robustlens.fingerprint.model_key`: the whole identity)."""

    spec: str
    overrides: ModelOverrides
    weights_sha256: str | None
    runtime: str = "torch"  # the engine the driver chose (and proved) for forward passes
    identity_key: str = ""  # the driver's model_key(clf, runtime=False), spec left out

    def cache_key(self) -> str:
        return json.dumps([self.spec, dataclasses.asdict(self.overrides), self.identity_key,
                           self.runtime], sort_keys=True, default=str)

    def paths(self) -> list[str]:
        """Files the worker must find (weights, labels, model files named in the spec)."""
        out = [p for p in (self.overrides.weights, self.overrides.labels_file) if p]
        kind, _, rest = self.spec.partition(":")
        if kind in ("torchscript", "onnx"):
            out.append(rest)
        elif kind == "python":
            out.append(rest.rsplit(":", 1)[0])
        return out

    @classmethod
    def of(cls, clf: Classifier, ov: ModelOverrides, gpu: bool) -> ModelRef:
        def absolute(p: str | None) -> str | None:
            return str(Path(p).expanduser().resolve()) if p else None

        spec = clf.spec
        kind, _, rest = spec.partition(":")
        if kind in ("torchscript", "onnx"):
            spec = f"{kind}:{absolute(rest)}"
        elif kind == "python" and ":" in rest:
            file, func = rest.rsplit(":", 1)
            spec = f"python:{absolute(file)}:{func}"
        # a GPU task sees only the GPU(s) Ray gave it (CUDA_VISIBLE_DEVICES): plain "cuda"
        device = "cuda" if gpu else "cpu"
        ov2 = dataclasses.replace(ov, weights=absolute(ov.weights),
                                  labels_file=absolute(ov.labels_file), device=device)
        return cls(spec, ov2, clf.weights_sha256, getattr(clf, "runtime", "torch") or "torch",
                   worker_identity_key(clf))


def worker_identity_key(clf: Classifier) -> str:
    """A model's key as driver and worker must agree on it: the identity without the spec
    (a worker names files by absolute path) and without the runtime (set after loading)."""
    from ..fingerprint import digest_of

    ident = clf.identity(runtime=False)
    ident.pop("spec")
    return digest_of(ident)


_CACHE: dict[str, Any] = {}
_CACHE_LOCK = threading.Lock()


def _node_id() -> str:
    try:
        import ray

        return str(ray.get_runtime_context().get_node_id())
    except Exception:  # not in a Ray worker
        return local_node_id()


def _worker_model(ref: ModelRef) -> Classifier:
    from ..models import load_model
    from ..models.runtime import prepare_runtime

    key = "model:" + ref.cache_key()
    with _CACHE_LOCK:
        if key not in _CACHE:
            try:
                clf = load_model(ref.spec, ref.overrides, runtime="torch")
            except BadInput as exc:
                raise BadInput(f"ray node {_node_id()}: {exc}") from None
            if ref.weights_sha256 and clf.weights_sha256 != ref.weights_sha256:
                raise BadInput(f"ray node {_node_id()}: model {ref.spec} has other weights "
                               f"there (sha256 {clf.weights_sha256}, driver "
                               f"{ref.weights_sha256})")
            if ref.identity_key and worker_identity_key(clf) != ref.identity_key:
                raise BadInput(f"ray node {_node_id()}: model {ref.spec} loads differently "
                               f"there (source, preprocessing, labels or CAM layer differ "
                               f"from the driver's)")
            try:  # the same engine as the driver (the ONNX export is cached per node)
                prepare_runtime(clf, ref.runtime, log=lambda _m: None)
            except BadInput as exc:
                raise BadInput(f"ray node {_node_id()}: {exc}") from None
            _CACHE[key] = clf
        return _CACHE[key]


def _worker_mesh(mesh_hash: str, box: list[Any]) -> Any:
    key = "mesh:" + mesh_hash
    with _CACHE_LOCK:
        if key not in _CACHE:
            import ray

            _CACHE[key] = ray.get(box[0])  # fetched from the object store once per process
        return _CACHE[key]


def _worker_renderer(size: int) -> Any:
    from ..render import MeshRenderer

    # an OpenGL context belongs to the thread that made it
    key = f"renderer:{threading.get_ident()}:{size}"
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = MeshRenderer(image_size=size)
        return _CACHE[key]


def map_chunk_task(model: ModelRef, mesh_hash: str, mesh_box: list[Any], job: Any,
                   start: int, stop: int
                   ) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray, str]:
    """Ray task: scores, top-1 and margins of poses ``start:stop`` (``job.points`` holds
    only those)."""
    from ..semantic.chunks import compute_chunk

    clf = _worker_model(model)
    mesh = _worker_mesh(mesh_hash, mesh_box)
    s, t, m = compute_chunk(clf, mesh, job, 0, stop - start, _worker_renderer(clf.input_size))
    return start, stop, s, t, m, _node_id()


def region_task(model: ModelRef, mesh_hash: str, mesh_box: list[Any], k: int,
                class_id: int, search: Any, method: str, batch_size: int
                ) -> tuple[int, Any, str]:
    """Ray task: the robust region from the one start point of ``search`` (a `SceneSearch`)."""
    from ..regions.scene import regions_for_mesh

    clf = _worker_model(model)
    mesh = _worker_mesh(mesh_hash, mesh_box)
    res = regions_for_mesh(clf, mesh, class_id, search, method,
                           _worker_renderer(clf.input_size), batch_size=batch_size)[0]
    return k, res, _node_id()


def cam_shard_task(model: ModelRef, params: dict[str, Any], items: list[Any]
                   ) -> tuple[list[dict[str, Any]], str]:
    """Ray task: class-robustness rows of a shard of items (images shipped as bytes)."""
    from ..representation.scores import ClassRobustness

    clf = _worker_model(model)
    est = ClassRobustness(**params)
    rows: list[dict[str, Any]] = []
    for i in range(0, len(items), est.batch_size):
        rows += est.score_batch(clf, items[i:i + est.batch_size])
    return rows, _node_id()


def _with_image_bytes(item: Any) -> Any:
    """The item with a file image replaced by its contents (workers never open driver paths)."""
    import io

    img = item.image
    if isinstance(img, str | os.PathLike):
        try:
            data = Path(img).read_bytes()
        except OSError as exc:
            raise BadInput(f"{item.ref}: cannot read image {img} ({first_line(exc)})") from None
        return item._replace(image=io.BytesIO(data))
    return item


def _make_probe() -> Callable[[list[str]], tuple[str, str | None, str | None]]:
    # Defined inside a function so that cloudpickle ships it by value: it must run on a
    # worker that cannot import robustlens, to say so.
    def probe(paths: list[str]) -> tuple[str, str | None, str | None]:
        import os as _os

        import ray as _ray

        node = str(_ray.get_runtime_context().get_node_id())
        try:
            import robustlens
            import robustlens.study.executor  # noqa: F401
        except Exception as exc:  # the worker's Python lacks robustlens
            return node, f"cannot import robustlens ({type(exc).__name__}: {exc})", None
        for p in paths:
            if not _os.path.exists(p):
                return node, f"cannot find {p}", robustlens.__file__
        return node, None, robustlens.__file__

    return probe


# ====================================================================== driver side
def _tcp_reachable(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


#: the HTTP/2 client preface and an empty SETTINGS frame (RFC 9113, 3.4 and 6.5)
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def _speaks_grpc(host: str, port: int, timeout: float) -> bool:
    """Whether ``host:port`` answers like a gRPC server (a Ray GCS or Ray Client server):
    after the HTTP/2 client preface, the server's first frame is a SETTINGS frame. Anything
    else (an HTTP/1 server, a database, silence) is not Ray, and ``ray.init`` would only
    retry and log for about 20 s before failing."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(_H2_PREFACE)
            head = b""
            while len(head) < 9:
                chunk = sock.recv(9 - len(head))
                if not chunk:
                    return False
                head += chunk
    except OSError:
        return False
    return head[3] == 0x04  # frame type SETTINGS


def _host_port(address: str) -> tuple[str, int] | None:
    rest = address.split("://", 1)[-1]
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


class RayExecutor(Executor):
    """Map chunks, region searches and CAM shards as Ray tasks on the cluster at ``address``.

    Args:
        address: ``local`` (start Ray on this machine), ``auto`` (the running cluster this
            machine belongs to), ``HOST:PORT`` (a head node's GCS) or ``ray://HOST:10001``
            (Ray Client; needs ``ray[client]``).
        num_cpus, num_gpus: resources each task declares.
        max_retries: how often Ray re-runs a task whose worker or node died.
        object_store_mb: object store size when ``address`` is ``local``.
        connect_timeout: seconds to wait for the head node's port before giving up.
        param: the name of the parameter that gave ``address``, for errors: ``ray`` (a
            :class:`~robustlens.study.Study`'s ``ray=``, the CLI's ``--ray``) or
            ``ray.address`` (the study config's field).
    """

    kind = "ray"

    def __init__(self, address: str, num_cpus: float = 1.0, num_gpus: float = 0.0,
                 max_retries: int = 3, object_store_mb: int | None = None,
                 connect_timeout: float = 5.0, param: str = "ray") -> None:
        super().__init__()
        self.address = address
        self.param = param
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.max_retries = max_retries
        self.object_store_mb = object_store_mb
        self.connect_timeout = connect_timeout
        self._models: dict[int, ModelRef] = {}
        self._meshes: dict[str, list[Any]] = {}
        self._started = False
        self.worker_files_: dict[str, str] = {}  # node id -> robustlens/__init__.py there
        self.connect_s_ = 0.0  # seconds to connect and check the nodes

    def describe(self) -> dict[str, Any]:
        return {"kind": "ray", "address": self.address, "resolved": getattr(self, "gcs_", None),
                "task_num_cpus": self.num_cpus, "task_num_gpus": self.num_gpus,
                "max_retries": self.max_retries}

    def driver_node(self) -> str:
        return self.driver_node_

    # ---------------------------------------------------------------- connect
    def _runtime_env(self) -> dict[str, Any]:
        import robustlens

        src = str(Path(robustlens.__file__).resolve().parent.parent)
        if "site-packages" in src or "dist-packages" in src:
            return {}
        # a source checkout (PYTHONPATH=src or an editable install): workers must import the
        # same code as the driver, not another install on the path
        paths = [src, *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
        return {"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}}

    def start(self, model_paths: Sequence[str] = ()) -> None:
        """Connect (or start Ray), then check every node; BadInput with one line on failure."""
        import logging

        import ray

        def bad(message: str) -> BadInput:  # the address is the culprit
            return BadInput(message, param=self.param, value=self.address)

        kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR,
                                  "runtime_env": self._runtime_env()}
        if self.address == "local":
            kwargs.update(include_dashboard=False)
            if self.object_store_mb:
                kwargs["object_store_memory"] = int(self.object_store_mb) * 2**20
            target: str | None = None
        else:
            target = self.address
            if self.address == "auto":
                from ray._private.services import canonicalize_bootstrap_address

                try:
                    target = canonicalize_bootstrap_address("auto")
                except Exception:
                    target = None
                if not target:
                    raise bad(f"no running Ray cluster found on this machine (start one with "
                              f"`{RAY_START_HEAD}` or give HOST:PORT)")
            if target.startswith("ray://"):
                try:
                    import grpc  # noqa: F401
                except ImportError:
                    raise bad(f"Ray Client addresses need `pip install 'ray[client]==2.60.0'`; "
                              f"or run the driver on a cluster node with {ref(self.param)} "
                              f"auto") from None
            hp = _host_port(target)
            if hp is None:
                raise bad("expected local, auto, HOST:PORT or ray://HOST:PORT")
            if not _tcp_reachable(*hp, timeout=self.connect_timeout):
                raise bad(f"cannot reach {hp[0]}:{hp[1]} (no Ray head node answering there)")
            if not _speaks_grpc(*hp, timeout=self.connect_timeout):
                raise bad(f"{hp[0]}:{hp[1]} answers, but not as a Ray head node (no gRPC "
                          f"there; the GCS port is usually 6379)")
        try:
            ray.init(address=target, **kwargs)
        except Exception as exc:
            raise bad(f"cannot connect to Ray ({first_line(exc)})") from None
        self._started = True
        self.gcs_ = ray.get_runtime_context().gcs_address
        self.driver_node_ = str(ray.get_runtime_context().get_node_id())
        self._preflight(list(model_paths))

    def _preflight(self, paths: list[str]) -> None:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        probe = ray.remote(_make_probe())
        alive = [n for n in ray.nodes() if n.get("Alive")]
        nodes = [n["NodeID"] for n in alive]
        # a task no node can hold would wait forever (Ray only warns): say so now
        if not any(n.get("Resources", {}).get("CPU", 0) >= self.num_cpus and
                   n.get("Resources", {}).get("GPU", 0) >= self.num_gpus for n in alive):
            self.close()
            nodes_free = ", ".join(f"{n.get('Resources', {}).get('CPU', 0):g} CPU/"
                                   f"{n.get('Resources', {}).get('GPU', 0):g} GPU" for n in alive)
            raise BadInput(f"no node has {ref('num_cpus')}={self.num_cpus:g} and "
                           f"{ref('num_gpus')}={self.num_gpus:g} free for one task (nodes: "
                           f"{nodes_free})", param=self.param, value=self.address)
        refs = [probe.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
            n, soft=False)).remote(paths) for n in nodes]
        try:
            results = ray.get(refs, timeout=300)
        except Exception as exc:
            self.close()
            raise BadInput(f"a node did not answer the start-up check ({first_line(exc)})",
                           param=self.param, value=self.address) from None
        for node, err, file in results:
            if err:
                self.close()
                raise BadInput(f"ray node {node}: {err}")
            self.worker_files_[node] = str(file)

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    # ---------------------------------------------------------------- plumbing
    def register_model(self, clf: Classifier, overrides: ModelOverrides) -> None:
        self._models[id(clf)] = ModelRef.of(clf, overrides, gpu=self.num_gpus > 0)

    def _model(self, clf: Classifier) -> ModelRef:
        if id(clf) not in self._models:  # not registered: rebuild from what it says
            self.register_model(clf, ModelOverrides())
        return self._models[id(clf)]

    def _mesh_box(self, mesh: Any, mesh_hash: str) -> list[Any]:
        import ray

        if mesh_hash not in self._meshes:
            self._meshes[mesh_hash] = [ray.put(mesh)]
        return self._meshes[mesh_hash]

    def _remote(self, fn: Callable[..., Any]) -> Any:
        import ray

        return ray.remote(fn).options(num_cpus=self.num_cpus, num_gpus=self.num_gpus,
                                      max_retries=self.max_retries)

    def _gather(self, refs: list[Any], on_done: Callable[[Any], None]) -> None:
        """Wait for ``refs``, calling ``on_done(result)`` in completion order."""
        import ray
        from ray.exceptions import RayTaskError

        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for r in ready:
                    try:
                        out = ray.get(r)
                    except RayTaskError as exc:
                        cause = getattr(exc, "cause", None)
                        if isinstance(cause, BadInput):
                            raise BadInput(first_line(cause)) from None
                        raise
                    on_done(out)
        except BaseException:
            for r in pending:
                ray.cancel(r, force=True)
            raise

    # ---------------------------------------------------------------- units of work
    def map_chunks(self, clf: Classifier, mesh: Any, mesh_hash: str, job: Any,
                   todo: list[tuple[int, int]], renderer: Any, on_chunk: OnChunk,
                   progress: ProgressFn | None) -> None:
        model, box = self._model(clf), self._mesh_box(mesh, mesh_hash)
        task = self._remote(map_chunk_task)
        refs = [task.remote(model, mesh_hash, box,
                            dataclasses.replace(job, points=job.points[a:b].copy()), a, b)
                for a, b in todo]

        def done(out: tuple[int, int, np.ndarray, np.ndarray, np.ndarray, str]) -> None:
            a, b, s, t, m, node = out
            self._nodes.add(node)
            on_chunk(a, b, s, t, m)
            if progress:
                progress(b - a)

        self._gather(refs, done)

    def regions_for_mesh(self, clf: Classifier, mesh: Any, class_id: int, search: Any,
                         method: str, *, renderer: Any, batch_size: int,
                         on_result: Callable[[int, Any], None] | None = None) -> list[Any]:
        from ..semantic.chunks import geometry_digest

        mhash = geometry_digest(mesh)
        model, box = self._model(clf), self._mesh_box(mesh, mhash)
        task = self._remote(region_task)
        refs = [task.remote(model, mhash, box, k, int(class_id), search.with_starts([x0]),
                            method, batch_size)
                for k, x0 in enumerate(search.starts)]
        results: dict[int, Any] = {}

        def done(out: tuple[int, Any, str]) -> None:
            k, res, node = out
            self._nodes.add(node)
            results[k] = res
            if on_result:
                on_result(k, res)

        self._gather(refs, done)
        return [results[k] for k in range(len(refs))]

    def class_robustness(self, **kwargs: Any) -> Any:
        """A `ClassRobustness` estimator whose batches run as Ray tasks (shards of
        `CAM_SHARD_BATCHES` batches); rows still reach the driver's partial file, so a
        killed run resumes."""
        from ..representation.scores import ClassRobustness

        ex = self

        class RayClassRobustness(ClassRobustness):
            def _score_items(self, classifier: Classifier, todo: list[Any],
                             on_rows: Callable[[list[dict[str, Any]]], None]) -> None:
                ex._cam_shards(self, classifier, todo, on_rows)

        return RayClassRobustness(**kwargs)

    def _cam_shards(self, est: Any, clf: Classifier, todo: list[Any],
                    on_rows: Callable[[list[dict[str, Any]]], None]) -> None:
        params = {"cam": est.cam, "batch_size": est.batch_size,
                  "target_layer": est.target_layer, "scorecam_batch": est.scorecam_batch}
        model = self._model(clf)
        task = self._remote(cam_shard_task)
        step = est.batch_size * CAM_SHARD_BATCHES
        refs = [task.remote(model, params, [_with_image_bytes(it) for it in todo[i:i + step]])
                for i in range(0, len(todo), step)]

        def done(out: tuple[list[dict[str, Any]], str]) -> None:
            rows, node = out
            self._nodes.add(node)
            on_rows(rows)

        self._gather(refs, done)



def make_executor(address: str | None, ray_config: Any, device: str,
                  models: Sequence[tuple[Classifier, ModelOverrides]]) -> Executor:
    """The executor a study asked for (``address``, a Study's ``ray=``, wins over the config's
    ``ray.address``).

    Connects and checks the cluster now, before anything is written.
    """
    param = "ray" if address else "ray.address"  # who gave the address, for errors
    address = address or (ray_config.address if ray_config is not None else None)
    if not address:
        return Executor()
    gpu = ray_config.num_gpus if ray_config is not None and ray_config.num_gpus is not None \
        else (1.0 if str(device).startswith("cuda") else 0.0)
    ex = RayExecutor(address, num_cpus=ray_config.num_cpus if ray_config else 1.0,
                     num_gpus=gpu, max_retries=ray_config.max_retries if ray_config else 3,
                     object_store_mb=ray_config.object_store_mb if ray_config else None,
                     param=param)
    t = time.perf_counter()
    for clf, ov in models:
        ex.register_model(clf, ov)
    paths = sorted({p for ref in ex._models.values() for p in ref.paths()})
    ex.start(paths)
    ex.connect_s_ = time.perf_counter() - t
    return ex
