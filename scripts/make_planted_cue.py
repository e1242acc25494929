"""Train the planted-cue classifier (builtin model ``planted_cue``) and commit its weights.

    .venv/bin/python scripts/make_planted_cue.py [--out src/robustlens/data/planted_cue]
        [--n-per-class 600] [--epochs 8] [--seed 0] [--data-out DIR]

The training images come from :func:`robustlens.representation.planted.planted_arrays`
with ``seed`` (default 0), so the data can be re-made at any time; ``--data-out DIR`` also
writes a box-annotated copy of a held-out set (seed + 1) as ``DIR/boxes.csv`` + PNGs.
Deterministic (fixed seeds, deterministic algorithms, 2 threads; the weight file is
byte-identical between runs on one machine); about 1.5 minutes on 2 idle CPU cores.
Writes ``model.pt`` (state dict, < 1 MB) and ``labels.txt`` into ``--out``.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from robustlens.io import atomic_path, write_text_atomic
from robustlens.representation.planted import (
    EMPTY_CLASS,
    OBJECT_CLASSES,
    PLANTED_LABELS,
    PLANTED_MEAN,
    PLANTED_STD,
    WEIGHTS_DIR,
    PlantedCueNet,
    make_planted_dataset,
    planted_arrays,
)


def to_input(imgs: np.ndarray) -> torch.Tensor:
    """uint8 ``(N, S, S, 3)`` -> normalised float ``(N, 3, S, S)``."""
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(PLANTED_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(PLANTED_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", default=str(WEIGHTS_DIR))
    ap.add_argument("--n-per-class", type=int, default=600)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-out", default=None)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    t0 = time.time()
    imgs, labels, _ = planted_arrays(args.n_per_class, args.seed,
                                     classes=(*OBJECT_CLASSES, EMPTY_CLASS))
    x, y = to_input(imgs), torch.from_numpy(labels)
    vimgs, vlabels, _ = planted_arrays(100, args.seed + 1, classes=(*OBJECT_CLASSES, EMPTY_CLASS))
    vx, vy = to_input(vimgs), torch.from_numpy(vlabels)
    print(f"data: {len(x)} train, {len(vx)} held-out images ({time.time() - t0:.1f} s)")

    net = PlantedCueNet()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = args.epochs * ((len(x) + 63) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        net.train()
        perm = torch.randperm(len(x), generator=gen)
        tot = 0.0
        for i in range(0, len(x), 64):
            idx = perm[i:i + 64]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach()) * len(idx)
        net.eval()
        with torch.no_grad():
            pred = net(vx).argmax(1)
        acc = (pred == vy).float().mean().item()
        per = [(pred[vy == c] == c).float().mean().item() for c in range(len(PLANTED_LABELS))]
        print(f"epoch {epoch + 1}: loss {tot / len(x):.4f}  held-out acc {acc:.3f}  per class "
              + " ".join(f"{n}={a:.2f}" for n, a in zip(PLANTED_LABELS, per, strict=True))
              + f"  ({time.time() - t0:.0f} s)")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()  # saved via memory: the archive's inner folder name is then fixed
    torch.save(net.state_dict(), buf)
    with atomic_path(out / "model.pt") as tmp:
        tmp.write_bytes(buf.getvalue())
    write_text_atomic(out / "labels.txt", "\n".join(PLANTED_LABELS) + "\n")
    print(f"wrote {out / 'model.pt'} ({(out / 'model.pt').stat().st_size / 1024:.0f} KiB)")
    if args.data_out:
        print(f"wrote {make_planted_dataset(args.data_out, 40, args.seed + 1)}")


if __name__ == "__main__":
    main()
