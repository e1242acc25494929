"""The study folder: where every result of ``robustlens run`` lives, and how folders are named.

The runner writes through these paths and the report reads through them, so the layout is
known in one place::

    OUT/maps/<model>/<mesh>/map.nc, map.png
    OUT/views/<model>/<mesh>/views.json, thumbs/, examples/ (the clickable maps' renders)
    OUT/curves/<model>/<mesh>/map.nc, map.png
    OUT/regions/<model>/<mesh>/<method>[_auto][_top1]/regions.json, regions.png, traces/
    OUT/srvr/srvr.csv, srvr_runs.csv, srvr.png
    OUT/data/demo/boxes.csv (the rendered demo dataset)
    OUT/representation/<model>/<dataset>/<cam>/class_scores.csv, image_scores.csv, ...
    OUT/attacks/<model>/<dataset>/attacks.csv, examples/
    OUT/turntable/<model>__<mesh>.gif
    OUT/config.yaml, provenance.json, report.html, figures/

Folder names are `slug` of the model spec / mesh spec / dataset name and `cam_slug` of the
CAM method; every step folder holds ``.done.json`` with its `step_key`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import BadInput

__all__ = ["PARTS", "SLUG_MAX", "StudyLayout", "cam_slug", "check_unique_slugs", "slug",
           "step_key"]


#: between the model's and the mesh's slug in a turntable GIF's name
_TURNTABLE_SEP = "__"
#: longest folder name a slug gives (a longer one keeps its end and a hash of the whole)
SLUG_MAX = 80


def slug(text: str) -> str:
    """Filesystem-safe name: ``builtin:efficientnet_lite0`` -> ``builtin_efficientnet_lite0``.

    A name longer than :data:`SLUG_MAX` keeps its last characters plus 8 hex digits of a hash
    of the whole text, so two long paths that end alike get different folders. Names that
    differ only in characters the slug replaces (``a b`` and ``a_b``) still meet: the study
    refuses such pairs up front (:func:`check_unique_slugs`)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_")
    if len(s) > SLUG_MAX:
        digest = hashlib.sha256(str(text).encode("utf-8", "surrogateescape")).hexdigest()[:8]
        s = s[-(SLUG_MAX - 9):].lstrip("_.") + "-" + digest
    return s or "x"


def check_unique_slugs(names: Iterable[str], what: str, param: str,
                       folder: Callable[[str], str] = slug) -> None:
    """BadInput naming both inputs when two different ``names`` get the same ``folder``
    name (compared case-insensitively: some file systems are)."""
    seen: dict[str, str] = {}
    for n in names:
        key = folder(n).lower()
        if key in seen and seen[key] != n:
            raise BadInput(f"{seen[key]!r} and {n!r}: two {what} that would write into the "
                           f"same folder {folder(n)!r}; rename or move one of them",
                           param=param)
        seen[key] = n


def cam_slug(cam: str) -> str:
    """Folder name of a CAM method: ``gradcam++`` -> ``gradcampp`` (distinct from gradcam)."""
    return slug(cam.replace("+", "p"))


def step_key(*parts: Any) -> str:
    """The key of a step: a hash of everything that determines its result (and the version)."""
    return hashlib.sha256(json.dumps([__version__, *parts], sort_keys=True,
                                     default=str).encode()).hexdigest()[:16]


#: the parts of a study, in report order: (key, title, what marks it as run)
PARTS: list[tuple[str, str, str]] = [
    ("maps", "Semantic maps", "maps/<model>/<mesh>/map.nc"),
    ("curves", "Score curves", "curves/<model>/<mesh>/map.nc"),
    ("regions", "Robust regions", "regions/<model>/<mesh>/<method>/regions.json"),
    ("srvr", "SRVR", "srvr/srvr.csv"),
    ("representation", "Class robustness",
     "representation/<model>/<dataset>/<cam>/class_scores.csv"),
    ("attacks", "Attacks", "attacks/<model>/<dataset>/attacks.csv"),
]


@dataclass(frozen=True)
class StudyLayout:
    """Paths inside one study folder ``root``."""

    root: Path

    def map_dir(self, model: str, mesh: str) -> Path:
        return self.root / "maps" / slug(model) / slug(mesh)

    def views_dir(self, model: str, mesh: str) -> Path:
        """Renders and top-5 at a subsample of the map's poses (`robustlens.semantic.views`)."""
        return self.root / "views" / slug(model) / slug(mesh)

    def curve_dir(self, model: str, mesh: str) -> Path:
        return self.root / "curves" / slug(model) / slug(mesh)

    def regions_dir(self, model: str, mesh: str, method: str, starts: str = "fixed",
                    criterion: str = "score") -> Path:
        """Runs from automatic start points go to ``<method>_auto``, runs under the top-1
        criterion to ``<method>[_auto]_top1``."""
        sub = method if starts == "fixed" else f"{method}_{starts}"
        if criterion != "score":
            sub += f"_{criterion}"
        return self.root / "regions" / slug(model) / slug(mesh) / sub

    @property
    def srvr_dir(self) -> Path:
        return self.root / "srvr"

    @property
    def demo_data_dir(self) -> Path:
        return self.root / "data" / "demo"

    @staticmethod
    def dataset_name(dataset: str) -> str:
        """Folder name of a dataset: ``demo``, else the file's stem / the folder's name."""
        if dataset == "demo":
            return "demo"
        p = Path(dataset)
        return slug(p.stem if p.is_file() else p.name)

    def representation_dir(self, model: str, dataset_name: str, cam: str) -> Path:
        return self.root / "representation" / slug(model) / dataset_name / cam_slug(cam)

    def attacks_dir(self, model: str, dataset_name: str) -> Path:
        return self.root / "attacks" / slug(model) / dataset_name

    @property
    def config_yaml(self) -> Path:
        return self.root / "config.yaml"

    @property
    def provenance_json(self) -> Path:
        return self.root / "provenance.json"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    @property
    def figures_dir(self) -> Path:
        """The report's figures (drawn again by every report)."""
        return self.root / "figures"

    def turntable_gif(self, model: str, mesh: str) -> Path:
        return self.root / "turntable" / f"{slug(model)}{_TURNTABLE_SEP}{slug(mesh)}.gif"

    @staticmethod
    def attack_example(class_id: int, class_name: str) -> str:
        """File name of a class's attack example strip (in ``attacks_dir(...)/examples``)."""
        return f"{int(class_id)}_{slug(class_name)[:40]}.png"

    # ------------------------------------------------------------------ reading
    # Each reader returns (folder names, path) of the files one part wrote, sorted; the
    # folder names are slugs (`spec_of` maps them back to specs).
    def maps(self) -> list[tuple[tuple[str, ...], Path]]:
        """``map.nc`` of every (model, mesh)."""
        return self.find("maps", "map.nc", 2)

    def curves(self) -> list[tuple[tuple[str, ...], Path]]:
        """The curve ``map.nc`` of every (model, mesh)."""
        return self.find("curves", "map.nc", 2)

    def regions_files(self) -> list[tuple[tuple[str, ...], Path]]:
        """``regions.json`` of every (model, mesh, method folder)."""
        return self.find("regions", "regions.json", 3)

    def class_scores_files(self) -> list[tuple[tuple[str, ...], Path]]:
        """``class_scores.csv`` of every (model, dataset, CAM folder)."""
        return self.find("representation", "class_scores.csv", 3)

    def attacks_files(self) -> list[tuple[tuple[str, ...], Path]]:
        """``attacks.csv`` of every (model, dataset)."""
        return self.find("attacks", "attacks.csv", 2)

    @property
    def srvr_csv(self) -> Path:
        return self.srvr_dir / "srvr.csv"

    def turntables(self) -> list[tuple[tuple[str, ...], Path]]:
        """Every turntable GIF with its (model, mesh) folder names; a GIF elsewhere in the
        study (outside hidden folders) comes with an empty key."""
        out: list[tuple[tuple[str, ...], Path]] = []
        for p in sorted(self.root.rglob("*.gif")):
            rel = p.relative_to(self.root).parts
            if not p.is_file() or any(part.startswith(".") for part in rel):
                continue
            model, sep, mesh = p.stem.partition(_TURNTABLE_SEP)
            key = (model, mesh) if rel[:-1] == ("turntable",) and sep else ()
            out.append((key, p))
        return out

    def find(self, part: str, name: str, depth: int) -> list[tuple[tuple[str, ...], Path]]:
        """Files called ``name`` exactly ``depth`` folders below ``root/part`` (sorted), with
        those folder names."""
        base = self.root / part
        if not base.is_dir():
            return []
        out = []
        for p in sorted(base.rglob(name)):
            parts = p.relative_to(base).parts[:-1]
            if p.is_file() and len(parts) == depth:
                out.append((tuple(parts), p))
        return out


def spec_of(folder: str, specs: Iterable[str]) -> str:
    """The spec among ``specs`` whose `slug` is the folder name ``folder`` (else ``folder``)."""
    for s in specs:
        if s == folder or slug(s) == folder:
            return s
    return folder
