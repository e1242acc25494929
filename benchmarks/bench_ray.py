"""A 4-mesh study in-process vs on Ray with 1 and 2 worker nodes (ray.cluster_utils.Cluster).

    .venv/bin/python benchmarks/bench_ray.py [--grid-step 15] [--chunk 16] [--out FILE]

Maps only (regions, curves, CAMs off): 4 demo meshes x azimuth 0:360:STEP x elevation 0:60:30
with EfficientNet-Lite0, chunks of --chunk poses (one Ray task each). Each Ray node has 1 CPU,
so a task's torch runs 1 thread; the in-process run uses every core. Prints a markdown table
and writes it to benchmarks/results/ray.md.

Ray overhead per task is measured two ways: the round trip of a no-op task on the running
cluster, and (Ray-1-worker map time - in-process 1-thread map time) / tasks (same torch thread
count), which also carries the worker's one-off model load and the render/classify overlap
lost at each chunk boundary. Every configuration runs --repeats times (alternating, so that
load from other jobs hits all of them); the table keeps each one's fastest run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import yaml

from robustlens.study import Study, load_config

HERE = Path(__file__).resolve().parent
MESHES = ["demo:mug", "demo:vase", "demo:bucket", "demo:chair"]


def study_cfg(step: float, chunk: int) -> dict:
    return {"seed": 0, "models": ["default"],
            "semantic": {"meshes": MESHES, "curve": None, "batch_size": 16, "chunk_size": chunk,
                         "grid": {"azimuth": f"0:360:{step:g}", "elevation": "0:60:30"}},
            "regions": {"enabled": False}, "representation": {"enabled": False},
            "turntable": False, "report": False}


def run_once(cfg_path: Path, out: Path, ray: str | None, threads: int | None = None) -> dict:
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    t = time.perf_counter()
    study = Study(load_config(cfg_path), out=out, log=lambda m: None, ray=ray)
    try:
        study.run()
    finally:
        torch.set_num_threads(before)
    wall = time.perf_counter() - t
    maps = sum(v for k, v in study.timings_.items() if k.startswith("map "))
    return {"wall": wall, "maps": maps,
            "connect": getattr(study.executor_, "connect_s_", 0.0)}


def noop_latency(n: int = 50) -> float:
    import ray

    @ray.remote(num_cpus=1)
    def noop(x: int) -> int:
        return x

    ray.get([noop.remote(i) for i in range(4)])  # warm workers
    t = time.perf_counter()
    for i in range(n):  # sequential round trips: the latency a chunk pays, not throughput
        ray.get(noop.remote(i))
    return (time.perf_counter() - t) / n


def ray_run(cfg_path: Path, out: Path, workers: int) -> dict:
    import ray
    from ray.cluster_utils import Cluster

    small = {"num_cpus": 1, "object_store_memory": 100 * 2**20}
    t = time.perf_counter()
    c = Cluster(initialize_head=True, head_node_args={**small, "include_dashboard": False})
    for _ in range(workers - 1):
        c.add_node(**small)
    c.wait_for_nodes()
    start = time.perf_counter() - t
    try:
        r = run_once(cfg_path, out, c.address)
        ray.init(address=c.address, log_to_driver=False)
        r["noop"] = noop_latency()
        ray.shutdown()
    finally:
        c.shutdown()
    r["cluster_start"] = start
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--grid-step", type=float, default=15.0)
    ap.add_argument("--chunk", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "ray.md")
    args = ap.parse_args()
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(HERE.parent / "src"), *[p for p in os.environ.get("PYTHONPATH", "").split(
            os.pathsep) if p]])
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = Path(tmp) / "study.yaml"
        cfg = study_cfg(args.grid_step, args.chunk)
        cfg_path.write_text(yaml.safe_dump(cfg))
        n_az = len(range(0, 360 * 1000, int(args.grid_step * 1000)))
        poses = n_az * 2
        images = poses * len(MESHES)
        tasks = len(MESHES) * -(-poses // args.chunk)
        runs: dict[str, list[dict]] = {"local": [], "local1": [], "ray1": [], "ray2": []}
        for i in range(args.repeats):
            runs["local"].append(run_once(cfg_path, Path(tmp) / f"local{i}", None))
            runs["local1"].append(run_once(cfg_path, Path(tmp) / f"local1_{i}", None, 1))
            runs["ray1"].append(ray_run(cfg_path, Path(tmp) / f"ray1_{i}", 1))
            runs["ray2"].append(ray_run(cfg_path, Path(tmp) / f"ray2_{i}", 2))
    local, local1, r1, r2 = (min(runs[k], key=lambda r: r["maps"])
                             for k in ("local", "local1", "ray1", "ray2"))
    rows = [("in-process (torch on all cores)", local), ("in-process, 1 torch thread", local1),
            ("Ray, 1 worker node (1 CPU)", r1), ("Ray, 2 worker nodes (1 CPU each)", r2)]
    lines = [f"4-mesh study, EfficientNet-Lite0, {images} images ({len(MESHES)} maps x {poses} "
             f"poses), chunks of {args.chunk} poses = {tasks} Ray tasks; "
             f"{os.cpu_count()} cores, {platform.machine()}, shared with other jobs (1-min "
             f"load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end).",
             "",
             "| executor | maps wall (s) | images/s | vs in-process | study wall (s) | "
             "Ray connect + node check (s) |", "|---|---:|---:|---:|---:|---:|"]
    for name, r in rows:
        lines.append(f"| {name} | {r['maps']:.1f} | {images / r['maps']:.1f} | "
                     f"{local['maps'] / r['maps']:.2f}x | {r['wall']:.1f} | "
                     f"{r['connect']:.1f} |")
    over = (r1["maps"] - local1["maps"]) / tasks
    lines += ["", f"- Ray overhead per task: no-op round trip {1000 * r1['noop']:.1f} ms "
              f"(1 node) / {1000 * r2['noop']:.1f} ms (2 nodes); (Ray 1 worker - in-process "
              f"1 thread) map time / tasks = {1000 * over:.0f} ms (includes the worker's "
              f"one-off model load).",
              f"- 2 workers / 1 worker: {r1['maps'] / r2['maps']:.2f}x.",
              f"- Local cluster start (ray.cluster_utils): {r1['cluster_start']:.1f} s "
              f"(1 node), {r2['cluster_start']:.1f} s (2 nodes); not in the times above.",
              f"- fastest of {args.repeats} alternating runs each; raw maps seconds: "
              f"{json.dumps({k: [round(r['maps'], 1) for r in v] for k, v in runs.items()})}"]
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("# Ray scale-out benchmark (`benchmarks/bench_ray.py`)\n\n" + text + "\n")


if __name__ == "__main__":
    main()
