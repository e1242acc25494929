"""The study configuration behind ``robustlens run CONFIG.yaml`` (pydantic, strict).

Every field has a default, so an empty file is the embedded default study. Unknown fields
are errors (a typo must not be silently ignored).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import BadInput

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "data" / "default_study.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ModelConfig(_Strict):
    """One model; ``spec`` as for ``--model``; the rest override the model's own settings."""

    spec: str = "default"
    weights: str | None = None
    input_size: int | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    labels: str | None = None
    target_layer: str | None = None
    grid: dict[str, str] | None = Field(
        None, description="this model's map grid (overrides semantic.grid), e.g. coarser "
                          "for a slow model")


class MeshConfig(_Strict):
    mesh: str
    class_: str | int | None = Field(None, alias="class")
    up: Literal["y", "z"] = "y"


class SemanticConfig(_Strict):
    meshes: list[str | MeshConfig] = Field(default_factory=lambda: [
        "demo:mug", "demo:vase", "demo:bucket", "demo:chair", "demo:table"])
    grid: dict[str, str] = Field(default_factory=lambda: {"azimuth": "0:360:3",
                                                          "elevation": "-10:90:3"})
    fixed: dict[str, float] = Field(default_factory=dict)
    curve: dict[str, Any] | None = Field(
        default_factory=lambda: {"param": "azimuth", "grid": "0:360:3", "at": {"elevation": 10}},
        description="1-D sweep per model and mesh: param, grid START:STOP:STEP, fixed values")
    batch_size: int = Field(32, ge=1)
    chunk_size: int = Field(256, ge=1, description="poses per map chunk: the unit persisted "
                                                   "for resume and the unit of a Ray task")


class RegionsConfig(_Strict):
    enabled: bool = True
    params: list[str] = Field(default_factory=lambda: ["azimuth", "elevation"])
    domain: dict[str, tuple[float, float]] = Field(
        default_factory=lambda: {"azimuth": (0.0, 360.0), "elevation": (-10.0, 90.0)})
    starts: list[list[float]] | Literal["auto"] = Field(
        default_factory=lambda: [[130, 30], [50, 20], [200, 15], [310, 50]],
        description="fixed start points (default: the paper's four), or 'auto' for "
                    "auto_starts only")
    auto_starts: int = Field(
        0, ge=0, le=64,
        description="also run from k start poses per object where the model's top-1 is "
                    "correct on its map, spread by farthest-point sampling (0 = off; "
                    "starts: auto with 0 means 4)")
    methods: list[Literal["naive", "oir_b", "oir_w"]] = Field(
        default_factory=lambda: ["naive", "oir_b", "oir_w"])
    variant: Literal["ours", "paper"] = "ours"
    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    max_evals: int | None = Field(None, ge=1)
    score: Literal["render", "map"] = Field(
        "render", description="search on the live renderer + model, or on the model's dense "
                              "semantic map (multilinear interpolation: fast, grid-limited)")

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
    demo_images_per_object: int = Field(8, ge=1)
    demo_background: Literal["photo", "procedural"] = Field(
        "photo", description="backgrounds of the demo set: object-free crops of real photos "
                             "(scikit-image's sample data) or procedural colour fields")
    cams: list[Literal["gradcam++", "gradcam", "scorecam", "smooth"]] = Field(
        default_factory=lambda: ["gradcam++"])
    correct_only: bool = False
    batch_size: int = Field(16, ge=1)
    attacks: bool = True
    attack_classes: int = Field(2, ge=0, description="attack the k least robust classes")


class RayConfig(_Strict):
    """Run the study's units of work as Ray tasks (``--ray ADDRESS`` overrides ``address``)."""

    address: str | None = Field(None, description="local, auto, HOST:PORT or ray://HOST:10001; "
                                                  "unset: run in this process")
    num_cpus: float = Field(1.0, gt=0, description="CPUs each task declares")
    num_gpus: float | None = Field(None, ge=0, description="GPUs each task declares (default: "
                                                           "1 when device is cuda, else 0)")
    max_retries: int = Field(3, ge=0, description="re-runs of a task whose node died")
    object_store_mb: int | None = Field(None, ge=64, description="object store size for "
                                                                 "address: local")


class StudyConfig(_Strict):
    """A whole study: models x meshes (semantic robustness) and datasets (representation)."""

    out: str = "results/study"
    seed: int = 0
    device: str = "cpu"
    models: list[str | ModelConfig] = Field(default_factory=lambda: ["default"])
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


def load_config(path: str | Path | None) -> StudyConfig:
    """Read and validate a YAML study file (None -> the embedded default study)."""
    p = Path(path) if path is not None else DEFAULT_CONFIG
    if not p.is_file():
        raise BadInput(f"config {path}: file not found")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise BadInput(f"config {p}:{where} is not valid YAML") from None
    if not isinstance(raw, dict):
        raise BadInput(f"config {p}: expected a mapping of fields at the top level")
    try:
        return StudyConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise BadInput(f"config {p}: field {loc}: {err['msg']}{more}") from None
