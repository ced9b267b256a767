"""Time the "scenes" generator: build the default dataset (or a given size) into a temp dir.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_scenes.py            # default: 10k/1k/1k images
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_scenes.py --train 1000 --dev 100 --test 100
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_scenes.py --probe assets/data/scenes
    .venv/bin/python benchmarks/bench_scenes.py --samples assets/data/scenes docs/images

``--probe DIR`` instead fits a linear classifier (softmax regression) per attribute — colour, shape,
size — on the region features of DIR's train split (regions that the grounding ties to an object)
and prints its accuracy on the test split: are these attributes linearly readable from the features?

Prints wall time, throughput, CPU seconds per image (all processes) and the machine's load
average, because on a shared machine wall time depends on what else runs.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from causmatch.data.scenes import DEFAULT_SIZES, build_scenes
from causmatch.runtime import configure


def _cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _labelled_regions(folder: Path, split: str):
    """Features ``[N, F]`` of grounded regions and their object's colour/shape/size names."""
    import json

    import numpy as np

    from causmatch.data import load_split

    data = load_split(folder, split)
    scenes = [json.loads(line)["objects"] for line in (folder / f"{split}_scenes.jsonl").open()]
    seen, rows, labels = set(), [], {"colour": [], "shape": [], "size": []}
    for g in data.grounding:
        for w in g["words"]:
            for r in w["regions"]:
                if (g["image"], r) not in seen:
                    seen.add((g["image"], r))
                    rows.append(np.asarray(data.features[g["image"], r], dtype=np.float32))
                    obj = scenes[g["image"]][w["object"]]
                    for k in labels:
                        labels[k].append(obj[k])
    return np.stack(rows), labels


def probe(folder: Path) -> None:
    import torch

    x_tr, y_tr = _labelled_regions(folder, "train")
    x_te, y_te = _labelled_regions(folder, "test")
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    xt, xe = torch.tensor((x_tr - mu) / sd), torch.tensor((x_te - mu) / sd)
    torch.manual_seed(0)
    for attr in ("colour", "shape", "size"):
        names = sorted(set(y_tr[attr]))
        yt = torch.tensor([names.index(v) for v in y_tr[attr]])
        ye = torch.tensor([names.index(v) for v in y_te[attr]])
        lin = torch.nn.Linear(xt.shape[1], len(names))
        opt = torch.optim.Adam(lin.parameters(), lr=0.05, weight_decay=1e-4)
        for _ in range(300):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(lin(xt), yt).backward()
            opt.step()
        acc = (lin(xe).argmax(1) == ye).float().mean().item()
        print(f"linear probe {attr:<6} classes {len(names)}  train regions {len(yt)}  test regions {len(ye)}  "
              f"test accuracy {acc:.3f}")


def samples(folder: Path, out: Path, indices: list[int]) -> None:
    """Copy test images to ``out/scenes_<i>.png``, one with its detected boxes drawn, and print
    their captions as Markdown (docs/scenes.md holds this output)."""
    import cv2

    from causmatch.data import load_split

    data = load_split(folder, "test")
    out.mkdir(parents=True, exist_ok=True)
    for n, i in enumerate(indices):
        img = cv2.imread(str(data.image_paths[i]))
        if n == 0:  # the first sample also shows the regions found from the pixels
            big = cv2.resize(img, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
            for r in range(1, int(data.region_mask[i].sum())):
                x1, y1, x2, y2 = (2 * data.boxes[i, r]).astype(int)
                cv2.rectangle(big, (x1, y1), (x2 - 1, y2 - 1), (0, 255, 255), 1)
                cv2.putText(big, str(r), (x1 + 2, y1 + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 255), 1)
            cv2.imwrite(str(out / f"scenes_{i:06d}_regions.png"), big, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        cv2.imwrite(str(out / f"scenes_{i:06d}.png"), img, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        print(f"![test image {i}](images/scenes_{i:06d}.png)\n")
        for c in data.captions_of(i):
            print(f"- {data.captions[c]}")
        print()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for split, n in DEFAULT_SIZES.items():
        p.add_argument(f"--{split}", type=int, default=n)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--keep", help="write here instead of a temp dir (and keep it)")
    p.add_argument("--probe", help="fit linear attribute probes on this existing scenes folder instead")
    p.add_argument("--samples", nargs=2, metavar=("FOLDER", "OUT"), help="write sample test images to OUT")
    args = p.parse_args()
    configure()  # the process settings, as the CLI applies them
    if args.samples:
        return samples(Path(args.samples[0]), Path(args.samples[1]), [0, 1, 2, 3])
    if args.probe:
        return probe(Path(args.probe))
    sizes = {"train": args.train, "dev": args.dev, "test": args.test}
    out = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_scenes_"))
    load0 = os.getloadavg()[0]
    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    build_scenes(out, sizes=sizes, workers=args.workers, progress=True)
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    n = sum(sizes.values())
    size_mb = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20
    print(f"images {n}  workers {args.workers}  cores {os.cpu_count()}")
    print(f"wall {wall:.1f} s  throughput {n / wall:.1f} img/s  cpu {1000 * cpu / n:.1f} ms/img  "
          f"disk {size_mb:.0f} MiB  load average {load0:.1f} -> {os.getloadavg()[0]:.1f}")
    if not args.keep:
        shutil.rmtree(out)


if __name__ == "__main__":
    main()
