"""The study configuration behind ``robustlens run CONFIG.yaml`` (pydantic, strict).

Every field has a default (the values below), so a config names only what it changes.
``robustlens run`` without a config runs the embedded default study
(``data/default_study.yaml``); an *empty* config file is an error rather than a silent
multi-hour run. Unknown fields, duplicated keys and wrongly typed values are errors that name
the field (a typo must not be silently ignored). The file is capped in size and in how far
YAML aliases may expand it (an "alias bomb" is refused, not expanded).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from .. import paper
from ..errors import BadInput

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "data" / "default_study.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ModelConfig(_Strict):
    """One model; ``spec`` as for ``--model``; the rest override the model's own settings."""

    spec: str = "default"
    weights: str | None = None
    input_size: StrictInt | None = None
    mean: tuple[StrictFloat, StrictFloat, StrictFloat] | None = None
    std: tuple[StrictFloat, StrictFloat, StrictFloat] | None = None
    interpolation: str | None = Field(
        None, description="resize interpolation (bilinear, bicubic, nearest); default: the "
                          "weights' own preset")
    labels: str | None = None
    target_layer: str | None = None
    grid: dict[str, str] | None = Field(
        None, description="this model's map grid (overrides semantic.grid), e.g. coarser "
                          "for a slow model")


class MeshConfig(_Strict):
    mesh: str
    class_: str | StrictInt | None = Field(None, alias="class")
    up: Literal["y", "z"] = "y"


class CurveConfig(_Strict):
    """A 1-D sweep per model and mesh."""

    param: str = "azimuth"
    grid: str = Field("0:360:3", description="START:STOP:STEP or V1,V2,...")
    at: dict[str, StrictFloat] = Field(default_factory=dict,
                                 description="fixed values of other parameters")


class ViewsConfig(_Strict):
    """Renders and top-5 predictions behind the report's clickable maps
    (`robustlens.semantic.views`)."""

    enabled: bool = True
    stride: StrictInt | Literal["auto"] = Field(
        "auto", description="store every stride-th map cell per parameter; auto: the smallest "
                            "stride that stores at most 320 poses (4 on the paper's 3-degree "
                            "grid, 310 poses)")
    size: StrictInt = Field(96, ge=16, le=512, description="thumbnail side in pixels")


class SemanticConfig(_Strict):
    meshes: list[str | MeshConfig] = Field(default_factory=lambda: [  # type: ignore[arg-type]
        "demo:mug", "demo:vase", "demo:bucket", "demo:chair", "demo:table"])
    grid: dict[str, str] = Field(default_factory=lambda: {  # the paper's domain, 3-degree steps
        n: f"{lo:g}:{hi:g}:3" for n, lo, hi in zip(("azimuth", "elevation"), *paper.DOMAIN,
                                                     strict=True)})
    fixed: dict[str, StrictFloat] = Field(default_factory=dict)
    curve: CurveConfig | None = Field(
        default_factory=lambda: CurveConfig(at={"elevation": 10.0}),
        description="1-D sweep per model and mesh: param, grid START:STOP:STEP, fixed values")
    batch_size: StrictInt = Field(32, ge=1)
    max_poses: StrictInt = Field(
        1_000_000, ge=1, description="refuse a map with more poses than this (a 10^6-pose map "
                                     "takes more than a day on a 2-core CPU); raise it to "
                                     "confirm")
    chunk_size: StrictInt = Field(256, ge=1, description="poses per map chunk: the unit persisted "
                                                   "for resume and the unit of a Ray task")
    views: ViewsConfig = Field(default_factory=ViewsConfig)


class RegionsConfig(_Strict):
    enabled: bool = True
    params: list[str] = Field(default_factory=lambda: ["azimuth", "elevation"])
    domain: dict[str, tuple[StrictFloat, StrictFloat]] = Field(  # the paper's (paper.DOMAIN)
        default_factory=lambda: {"azimuth": (float(paper.DOMAIN[0][0]),
                                             float(paper.DOMAIN[1][0])),
                                 "elevation": (float(paper.DOMAIN[0][1]),
                                               float(paper.DOMAIN[1][1]))})
    starts: list[list[StrictFloat]] | Literal["auto"] = Field(
        default_factory=lambda: [[float(a), float(e)] for a, e in paper.STARTS],
        description="fixed start points (default: the paper's four), or 'auto' for "
                    "auto_starts only")
    auto_starts: StrictInt = Field(
        0, ge=0, le=64,
        description="also run from k start poses per object where the model's top-1 is "
                    "correct on its map, spread by farthest-point sampling (0 = off; "
                    "starts: auto with 0 means 4)")
    methods: list[Literal["naive", "oir_b", "oir_w"]] = Field(
        default_factory=lambda: ["naive", "oir_b", "oir_w"])  # type: ignore[arg-type]
    variant: Literal["ours", "paper"] = "ours"
    threshold: StrictFloat = Field(0.5, gt=0.0, lt=1.0)
    criteria: list[Literal["score", "top1"]] = Field(
        default_factory=lambda: ["score"],  # type: ignore[arg-type]
        description="what a robust pose is: 'score' (true-class probability >= threshold, "
                    "the paper's) and/or 'top1' (the true class is the top-1 at any "
                    "confidence); regions and SRVR are computed under each")
    max_evals: StrictInt | None = Field(None, ge=1)
    score: Literal["render", "map"] = Field(
        "render", description="search on the live renderer + model, or on the model's dense "
                              "semantic map (multilinear interpolation: fast, grid-limited)")
    grad: Literal["fd", "mitsuba"] = Field(
        "fd", description="oir_w score gradients: finite differences of the moderngl renderer "
                          "(fd), or through Mitsuba 3 (mitsuba: white box, the paper's OIR_W; "
                          "scores then come from Mitsuba too; needs the whitebox extra and "
                          "score: render; runs on the driver, also under Ray)")
    spp: StrictInt | None = Field(
        None, ge=1, description="grad: mitsuba only: samples per pixel of the Mitsuba image "
                                "(default 64); an error with grad: fd")
    spp_grad: StrictInt | None = Field(
        None, ge=1, description="grad: mitsuba only: samples per pixel of Mitsuba's gradient "
                                "(adjoint) pass (default 16); an error with grad: fd")

    @field_validator("spp", "spp_grad")
    @classmethod
    def _spp_needs_mitsuba(cls, v: int | None, info: ValidationInfo) -> int | None:
        if v is not None and info.data.get("grad") == "fd":
            raise ValueError(f"{v}: applies only with grad: mitsuba (samples per pixel of the "
                             f"Mitsuba renders; grad: fd renders with moderngl)")
        return v

    @field_validator("criteria")
    @classmethod
    def _criteria_once(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("give at least one criterion (score, top1)")
        if len(set(v)) != len(v):
            raise ValueError("a criterion is listed twice")
        return v

    def n_auto_starts(self) -> int:
        """How many automatic start points per object (see ``auto_starts``)."""
        return self.auto_starts or (4 if self.starts == "auto" else 0)

    def fixed_starts(self) -> list[list[float]]:
        return [] if self.starts == "auto" else self.starts


class RepresentationConfig(_Strict):
    enabled: bool = True
    datasets: list[str] = Field(default_factory=lambda: ["demo"],
                                description="'demo' (the study's meshes rendered onto backgrounds) "
                                            "or paths to box-annotated datasets")
    demo_images_per_object: StrictInt = Field(8, ge=1)
    demo_background: Literal["photo", "procedural"] = Field(
        "photo", description="backgrounds of the demo set: object-free crops of real photos "
                             "(scikit-image's sample data) or procedural colour fields")
    cams: list[str] = Field(default_factory=lambda: ["gradcam++"],
                            description="CAM methods (robustlens.representation.cam.CAM_METHODS)")
    correct_only: bool = False
    batch_size: StrictInt = Field(16, ge=1)
    attacks: bool = True
    attack_classes: StrictInt = Field(2, ge=0, description="attack the k least robust classes")

    @field_validator("cams")
    @classmethod
    def _known_cams(cls, v: list[str]) -> list[str]:
        from ..representation.cam_methods import CAM_METHODS  # the one list (no torch)

        for m in v:
            if m not in CAM_METHODS:
                raise ValueError(f"unknown CAM method {m!r}; expected one of "
                                 f"{', '.join(CAM_METHODS)}")
        return v


class RayConfig(_Strict):
    """Run the study's units of work as Ray tasks (``--ray ADDRESS`` overrides ``address``)."""

    address: str | None = Field(None, description="local, auto, HOST:PORT or ray://HOST:10001; "
                                                  "unset: run in this process")
    num_cpus: StrictFloat = Field(1.0, gt=0, description="CPUs each task declares")
    num_gpus: StrictFloat | None = Field(None, ge=0, description="GPUs each task declares (default: "
                                                           "1 when device is cuda, else 0)")
    max_retries: StrictInt = Field(3, ge=0, description="re-runs of a task whose node died")
    object_store_mb: StrictInt | None = Field(None, ge=64, description="object store size for "
                                                                 "address: local")


class StudyConfig(_Strict):
    """A whole study: models x meshes (semantic robustness) and datasets (representation)."""

    out: str = "results/study"
    seed: StrictInt = 0
    device: str = "cpu"
    runtime: Literal["auto", "torch", "onnxruntime"] = Field(
        "auto", description="engine of forward-only passes (maps, curves, regions, attack "
                            "predictions): auto = ONNX Runtime when the model exports and "
                            "matches PyTorch, else PyTorch; CAMs always use PyTorch")
    models: list[str | ModelConfig] = Field(
        default_factory=lambda: ["default"])  # type: ignore[arg-type]
    semantic: SemanticConfig = Field(default_factory=SemanticConfig)
    regions: RegionsConfig = Field(default_factory=RegionsConfig)
    representation: RepresentationConfig = Field(default_factory=RepresentationConfig)
    turntable: bool = True
    report: bool = True
    ray: RayConfig = Field(default_factory=RayConfig)

    @field_validator("models")
    @classmethod
    def _nonempty(cls, v: list[Any]) -> list[Any]:
        if not v:
            raise ValueError("give at least one model")
        return v

    def model_configs(self) -> list[ModelConfig]:
        return [m if isinstance(m, ModelConfig) else ModelConfig(spec=m) for m in self.models]

    def mesh_configs(self) -> list[MeshConfig]:
        return [m if isinstance(m, MeshConfig) else MeshConfig(mesh=m)
                for m in self.semantic.meshes]


#: a config file larger than this is refused (real ones are a few KiB)
MAX_CONFIG_BYTES = 1 << 20
#: at most this many YAML nodes after expanding aliases (refuses "billion laughs" files)
MAX_CONFIG_NODES = 100_000


class _ConfigError(Exception):
    pass


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicated keys instead of keeping the last value."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else id(key_node)
                if key in seen:
                    raise _ConfigError(f"line {key_node.start_mark.line + 1}: duplicate key "
                                       f"{key!r} (each key may appear once)")
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: Any, memo: dict[int, int], depth: int = 0) -> int:
    """Nodes of the document with every alias expanded (memoised: linear in the file)."""
    if id(node) in memo:
        return memo[id(node)]
    if depth > 200:
        raise _ConfigError("nested too deeply")
    memo[id(node)] = MAX_CONFIG_NODES + 1  # a cycle counts as too large
    if isinstance(node, yaml.SequenceNode):
        n = 1 + sum(_expanded_size(c, memo, depth + 1) for c in node.value)
    elif isinstance(node, yaml.MappingNode):
        n = 1 + sum(_expanded_size(k, memo, depth + 1) + _expanded_size(v, memo, depth + 1)
                    for k, v in node.value)
    else:
        n = 1
    memo[id(node)] = n = min(n, MAX_CONFIG_NODES + 1)
    return n


def parse_yaml(text: str) -> Any:
    """Parse one YAML document with the checks above; raises _ConfigError / yaml.YAMLError."""
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_CONFIG_NODES:
            raise _ConfigError(f"expands to more than {MAX_CONFIG_NODES:,} values (YAML "
                               f"aliases nested too far)")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_config(path: str | Path | None) -> StudyConfig:
    """Read and validate a YAML study file (None -> the embedded default study)."""
    p = Path(path) if path is not None else DEFAULT_CONFIG
    if not p.is_file():
        raise BadInput(f"config {path}: file not found")
    if p.stat().st_size > MAX_CONFIG_BYTES:
        raise BadInput(f"config {p}: {p.stat().st_size:,} bytes; a study config is at most "
                       f"{MAX_CONFIG_BYTES:,} bytes")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"config {p}: not UTF-8 text (byte {exc.start})") from None
    try:
        raw = parse_yaml(text)
    except _ConfigError as exc:
        raise BadInput(f"config {p}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise BadInput(f"config {p}:{where} is not valid YAML") from None
    except RecursionError:
        raise BadInput(f"config {p}: nested too deeply") from None
    if raw is None:
        raise BadInput(f"config {p}: the file is empty; name the fields to change (see "
                       f"configs/quick.yaml), or run `robustlens run` without a config for the "
                       f"embedded default study")
    if not isinstance(raw, dict):
        raise BadInput(f"config {p}: expected a mapping of fields at the top level")
    try:
        return StudyConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise BadInput(f"config {p}: field {loc}: {err['msg']}{more}") from None


#: library parameter (``BadInput.param``) -> the config field that sets it, so an error
#: raised deep in the library names the field the user wrote (like the CLI names its flag)
CONFIG_FIELDS: dict[str, str] = {
    "model": "models", "weights": "models.weights", "input_size": "models.input_size",
    "mean": "models.mean", "std": "models.std", "interpolation": "models.interpolation",
    "labels": "models.labels",
    "target_layer": "models.target_layer", "device": "device", "runtime": "runtime",
    "mesh": "semantic.meshes", "up": "semantic.meshes.up", "class": "semantic.meshes.class",
    "data": "representation.datasets", "dataset": "representation.datasets",
    "cam": "representation.cams", "class_id": "semantic.meshes.class",
    # the regions search (`regions.scene.SceneSearch`)
    "names": "regions.params", "domain": "regions.domain", "starts": "regions.starts",
    "methods": "regions.methods", "variant": "regions.variant",
    "criterion": "regions.criteria", "threshold": "regions.threshold",
    "max_evals": "regions.max_evals", "grad": "regions.grad", "fixed": "semantic.fixed",
    "ray.address": "ray.address", "num_cpus": "ray.num_cpus", "num_gpus": "ray.num_gpus",
}


def config_error(exc: BadInput, flags: Mapping[str, str] | None = None) -> BadInput:
    """``exc`` re-worded for a study config: its parameter named by the config field
    (``config models timm:x: unknown timm model``); unchanged when there is no such field.
    ``flags`` maps the parameters the user gave on the command line instead of in the file
    to the command's flags (``{"ray": "--ray"}``); those are named by the flag."""
    flags = flags or {}
    param = exc.param or ""
    field = CONFIG_FIELDS.get(param)
    lead = flags.get(param) or (f"config {field}" if field else None)
    # every parameter the message mentions by its field too; the result has no param left,
    # so no front end renames it again
    return BadInput(exc.render(lambda p: flags.get(p) or CONFIG_FIELDS.get(p, p), lead=lead))
