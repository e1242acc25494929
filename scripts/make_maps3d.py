"""Make the 3-D semantic maps the n-D region tests and benchmark use (tests/data/maps3d).

    .venv/bin/python scripts/make_maps3d.py [OUT] [--only NAME ...]

Each map is a 10-degree ``robustlens map`` of a real mesh and a default network over
azimuth x elevation x (distance or light elevation), rendered at the network's input
size: 36 x 10 x 6 poses, about a minute each on a 2-core CPU.  Each ``NAME.npz`` holds
``score`` (float32, in ``dims`` order), ``dims`` and one coordinate array per dim: what
`tests/test_regions_nd.py` and `benchmarks/bench_regions_nd.py` read.  ``HELD_OUT`` are
the maps the search was not tuned on.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GRID = ["azimuth=0:360:10", "elevation=-10:90:10"]
THIRD = {"dist": "distance=1.5:4.5:0.5", "light": "light_elevation=-30:90:20"}

#: name -> (network, mesh, third parameter)
MAPS = {
    "lite0_mug_azeldist": ("efficientnet_lite0", "demo:mug", "dist"),
    "lite1_mug_azeldist": ("efficientnet_lite1", "demo:mug", "dist"),
    "lite2_chair_azeldist": ("efficientnet_lite2", "demo:chair", "dist"),
    "lite0_vase_azeldist": ("efficientnet_lite0", "demo:vase", "dist"),
    "lite1_soccer_azeldist": ("efficientnet_lite1", "pkg:pybullet/soccerball", "dist"),
    "lite2_soccer_azeldist": ("efficientnet_lite2", "pkg:pybullet/soccerball", "dist"),
    "lite0_basket_azeldist": ("efficientnet_lite0", "pkg:libero/basket", "dist"),
    "lite2_basket_azeldist": ("efficientnet_lite2", "pkg:libero/basket", "dist"),
    "lite1_soccer_azellight": ("efficientnet_lite1", "pkg:pybullet/soccerball", "light"),
    # held out: the search was not tuned on these
    "lite1_pbmug_azeldist": ("efficientnet_lite1", "pkg:pybullet/mug", "dist"),
    "lite2_vase_azeldist": ("efficientnet_lite2", "demo:vase", "dist"),
    "lite0_basket_azellight": ("efficientnet_lite0", "pkg:libero/basket", "light"),
    "lite2_chair_azellight": ("efficientnet_lite2", "demo:chair", "light"),
}
HELD_OUT = {"lite1_pbmug_azeldist", "lite2_vase_azeldist", "lite0_basket_azellight",
            "lite2_chair_azellight"}


def make(name: str, out: Path) -> Path:
    """Render the map ``name`` with the CLI and write ``out/NAME.npz``."""
    model, mesh, third = MAPS[name]
    exe = Path(sys.executable).with_name("robustlens")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [str(exe), "map", "--model", f"builtin:{model}", "--mesh", mesh, "-q",
               "--out", tmp]
        for g in (*GRID, THIRD[third]):
            cmd += ["--grid", g]
        subprocess.run(cmd, check=True)
        from robustlens.semantic import load_map

        da = load_map(Path(tmp) / "map.nc")["score"].squeeze(drop=True).load()
    dims = [str(d) for d in da.dims]
    dest = out / f"{name}.npz"
    part = out / f"{name}.part.npz"  # renamed when whole: no half-written map
    np.savez_compressed(part, score=da.values.astype(np.float32), dims=np.array(dims),
                        **{d: da[d].values for d in dims})
    part.replace(dest)
    return dest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, nargs="?", default=ROOT / "tests" / "data" / "maps3d")
    ap.add_argument("--only", action="append", default=[], choices=sorted(MAPS),
                    help="make only this map (repeat)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only or MAPS:
        try:
            dest = make(name, args.out)
        except subprocess.CalledProcessError as exc:
            print(f"make_maps3d: `robustlens map` failed for {name} (exit {exc.returncode}); "
                  "its error is above", file=sys.stderr)
            return 1
        print(f"{name} -> {dest} ({dest.stat().st_size} bytes)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
