"""Peak memory and time of evaluating a Flickr30K-shaped test split end to end.

Writes a fake Flickr30K-shaped folder to a temp dir — random features ``[images, 36, 2048]``
float32 (1,000 images = 295 MB, like Flickr30K's 1K test split) and 5 captions per image from a
small vocabulary — saves a randomly initialised matcher (embed 1024, bi-GRU, t2i, SCAN's
defaults), then runs ``python -m causmatch evaluate`` on it in a subprocess and reports that
subprocess's peak resident set size (``getrusage(RUSAGE_CHILDREN).ru_maxrss``) and wall time.

Run:  OMP_NUM_THREADS=2 python benchmarks/bench_f30k_memory.py [--images 1000] [--json FILE]

The peak RSS counts the pages of the feature memmap the process has touched (file-backed, the
kernel can drop them under pressure) as well as its own allocations; the features file size is
printed next to it so the two can be told apart.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WORDS = ("a man woman dog child girl boy people group two young old red blue green white black "
         "wearing shirt hat jacket sitting standing running walking playing riding holding in on at "
         "with of the street park beach water grass field building table ball bike car near front").split()


def write_fake_f30k(folder: Path, n_images: int, regions: int = 36, dim: int = 2048, k: int = 5,
                    seed: int = 0) -> None:
    """Random features written block by block (the writer itself never holds them whole)."""
    rng = np.random.default_rng(seed)
    feats = np.lib.format.open_memmap(folder / "test_ims.npy", "w+", np.float32, (n_images, regions, dim))
    for lo in range(0, n_images, 100):
        hi = min(lo + 100, n_images)
        feats[lo:hi] = np.abs(rng.normal(size=(hi - lo, regions, dim))).astype(np.float32)  # ReLU-like
    feats.flush()
    del feats
    lengths = rng.integers(8, 19, size=n_images * k)  # Flickr30K captions: ~12 words on average
    caps = [" ".join(rng.choice(WORDS, size=n)) for n in lengths]
    (folder / "test_caps.txt").write_text("\n".join(caps) + "\n", encoding="utf-8")
    (folder / "meta.json").write_text(json.dumps({"name": "fake-f30k", "caps_per_image": k}))


def save_random_matcher(ckpt: Path, folder: Path, embed_size: int) -> None:
    import torch

    from causmatch.checkpoint import save_matcher
    from causmatch.data import Vocabulary
    from causmatch.models import Matcher, MatcherConfig

    torch.manual_seed(0)
    caps = (folder / "test_caps.txt").read_text(encoding="utf-8").splitlines()
    save_matcher(Matcher(MatcherConfig(img_dim=2048, embed_size=embed_size), Vocabulary.from_captions(caps)),
                 ckpt)


def run(n_images: int, embed_size: int, shard: int, device: str = "cpu") -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-f30k-") as tmp:
        folder, ckpt, out = Path(tmp) / "f30k", Path(tmp) / "ckpt", Path(tmp) / "result.json"
        folder.mkdir()
        write_fake_f30k(folder, n_images)
        save_random_matcher(ckpt, folder, embed_size)
        cmd = [sys.executable, "-m", "causmatch", "evaluate", "--checkpoint", str(ckpt), "--data", str(folder),
               "--split", "test", "--no-grounding", "--shard", str(shard), "--json", str(out), "--device", device]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"evaluate failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # Linux: KiB
        result = json.loads(out.read_text())
        return {"images": n_images, "captions": result["n_captions"], "regions": 36, "feature_dim": 2048,
                "embed_size": embed_size, "shard": shard, "device": device,
                "features_file_mib": round((folder / "test_ims.npy").stat().st_size / 2**20, 1),
                "peak_rss_mib": round(peak_kib / 1024, 1), "wall_s": round(wall, 1),
                "rsum_random_model": round(result["metrics"]["rsum"], 2),
                "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=1000, help="test images (5 captions each); Flickr30K: 1000")
    p.add_argument("--embed-size", type=int, default=1024)
    p.add_argument("--shard", type=int, default=128, help="images and captions per similarity shard")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device of the evaluate run")
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args(argv)
    figures = run(args.images, args.embed_size, args.shard, args.device)
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
