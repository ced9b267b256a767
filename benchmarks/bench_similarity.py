"""Similarity-matrix benchmark (speed and memory), all in one process.

  (a) reference: SCAN's evaluation procedure (128×128 shards, one caption at a time against the shard's images)
                 on the maths of causmatch.models.reference (context vectors built)
  (b) ours:      causmatch.models.sharded_similarity (same shards, exact Gram form, all pairs at once;
                 the default rule picks the ``fast`` implementation, attention.fast_scores)
  (b') fused:    the same with impl="compiled" (kernels torch.compile builds, causmatch.models.fused); with
                 --fused. Its first run compiles (fused_first_run_seconds); the second is timed (fused_seconds).
  (c) floor:     only the word–region dot products of every pair, in the same shards

On the CPU all phases run with glibc told to keep freed shard buffers (causmatch.runtime.configure,
which sharded_similarity applies anyway); --no-tune-malloc measures with glibc's defaults instead.

Inputs are random unit vectors: I images × R regions, C captions of 6..W words, dimension D.
Memory: a sampler thread reads the bytes malloc has handed out (glibc's mallinfo2; the RSS elsewhere) every
5 ms; each phase reports its peak above its start (torch allocations are invisible to tracemalloc). On CUDA,
torch.cuda.max_memory_allocated.

    .venv/bin/python benchmarks/bench_similarity.py                      # Flickr30K test scale
    .venv/bin/python benchmarks/bench_similarity.py --images 256 --captions 1280 --ref-shards 4
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

from causmatch.runtime import configure, libc

if "--no-tune-malloc" in sys.argv[1:]:  # read before the settings are applied, below
    os.environ["CAUSMATCH_TUNE_MALLOC"] = "0"
_SETTINGS = configure()  # the process settings, as the CLI applies them — before torch loads (OpenMP reads them)

import torch  # noqa: E402

from causmatch.data import Vocabulary  # noqa: E402
from causmatch.interventions import Random  # noqa: E402
from causmatch.losses import CausMatchLoss  # noqa: E402
from causmatch.models import ImageEmb, Matcher, MatcherConfig, TextConfig, TextEmb, reference, sharded_similarity  # noqa: E402
from causmatch.models import attention as A  # noqa: E402


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]


def _malloc_in_use():
    """A function giving the bytes glibc has handed out and not taken back (heap + mmapped), or None."""
    fn = getattr(libc(), "mallinfo2", None)  # glibc >= 2.33
    if fn is None:
        return None
    fn.restype = _MallInfo2
    return lambda: (lambda m: m.uordblks + m.hblkhd)(fn())


class PeakMemory:
    """Peak memory in use during a ``with`` block, above its start, in MiB.

    CPU: bytes allocated through malloc and not yet freed (glibc's ``mallinfo2``), sampled every 5 ms by a
    thread; this does not count memory the allocator keeps after a free, which the process RSS would (and
    :func:`causmatch.runtime.tune_allocator` makes glibc keep freed shard buffers). Without glibc, the RSS.
    CUDA: ``torch.cuda.max_memory_allocated``.
    """

    in_use = _malloc_in_use()
    measure = "malloc in use" if in_use is not None else "RSS"

    def __init__(self, device: str):
        self.device, self.peak_mib = device, 0.0

    @classmethod
    def _now(cls) -> int:
        if cls.in_use is not None:
            return cls.in_use()
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self):
        while not self._stop.is_set():
            self._peak = max(self._peak, self._now())
            time.sleep(0.005)

    def __enter__(self):
        if self.device == "cuda":
            torch.cuda.synchronize()
            self._base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        else:
            self._base = self._peak = self._now()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()
            peak = max(self._peak, self._now())
        self.peak_mib = (peak - self._base) / 2**20


def timed(fn, device: str):
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def random_inputs(I, C, R, W, D, device, seed=0):
    """Unit region vectors ``[I, R, D]``; captions ``[C, W, D]`` with 6..W valid words (zero padding)."""
    g = torch.Generator().manual_seed(seed)
    regions = A.F.normalize(torch.randn(I, R, D, generator=g), dim=-1)
    lengths = torch.randint(min(6, W), W + 1, (C,), generator=g)
    mask = torch.arange(W).unsqueeze(0) < lengths.unsqueeze(1)  # [C, W]
    words = A.F.normalize(torch.randn(C, W, D, generator=g), dim=-1) * mask.unsqueeze(-1)
    return regions.to(device), words.to(device), mask.to(device), lengths.tolist()


def matcher_for(D: int, device: str) -> Matcher:
    """A matcher with SCAN's default attention (t2i, clipped_l2norm, λ=9, LSE λ=6); its encoders are unused."""
    cfg = MatcherConfig(img_dim=4, embed_size=D, text=TextConfig(word_dim=4, bidirectional=False))
    return Matcher.from_config(cfg, Vocabulary()).to(device).eval()


def shard_t2i(regions: torch.Tensor, words: torch.Tensor, lengths: list[int], *, norm="clipped_l2norm",
              lambda_softmax=9.0, agg="lse", lambda_lse=6.0) -> torch.Tensor:
    """Scores ``[n_images, n_captions]`` of one shard, one caption at a time (SCAN's ``xattn_score_t2i``)."""
    n_img = regions.shape[0]
    all_regions = torch.ones(regions.shape[:2], dtype=torch.bool, device=regions.device)
    cols = []
    for c, n_word in enumerate(lengths):
        cap = words[c, :n_word].unsqueeze(0).expand(n_img, n_word, words.shape[-1])  # [n, W, D]
        all_words = torch.ones(cap.shape[:2], dtype=torch.bool, device=cap.device)
        cols.append(reference.direction_scores(cap, all_words, regions, all_regions, norm=norm,
                                               lambda_softmax=lambda_softmax, agg=agg, lambda_lse=lambda_lse)[0])
    return torch.stack(cols, 1)  # [n_images, n_captions]


@torch.no_grad()
def scan_similarity(regions: torch.Tensor, words: torch.Tensor, lengths: list[int], *, shard: int = 128,
                    max_shards: int | None = None, **opts) -> tuple[np.ndarray, int]:
    """SCAN's evaluation: the ``[I, C]`` matrix in ``shard × shard`` blocks; ``max_shards`` stops early (to time a
    subset). Returns the matrix (blocks not computed stay NaN) and the number of blocks computed."""
    I, C = regions.shape[0], words.shape[0]
    out = np.full((I, C), np.nan, dtype=np.float32)
    done = 0
    for i0 in range(0, I, shard):
        for c0 in range(0, C, shard):
            if max_shards is not None and done >= max_shards:
                return out, done
            block = shard_t2i(regions[i0:i0 + shard], words[c0:c0 + shard], lengths[c0:c0 + shard], **opts)
            out[i0:i0 + shard, c0:c0 + shard] = block.float().cpu().numpy()
            done += 1
    return out, done


@torch.no_grad()
def floor(img: ImageEmb, txt: TextEmb, shard: int) -> None:
    for i0 in range(0, len(img), shard):
        for c0 in range(0, len(txt), shard):
            A.cosine_sims(txt.words[c0:c0 + shard], img.regions[i0:i0 + shard])  # [i, c, W, R]


def similarity_benchmark(args) -> dict:
    dev = args.device
    regions, words, wmask, lengths = random_inputs(args.images, args.captions, args.regions, args.words, args.dim, dev)
    m = matcher_for(args.dim, dev)
    ours_shard = args.ours_shard or args.shard  # the reference always uses SCAN's --shard
    (img, txt), t_enc = timed(lambda: (ImageEmb(regions, torch.ones(regions.shape[:2], dtype=torch.bool, device=dev),
                                                regions @ regions.transpose(1, 2)),
                                       TextEmb(words, wmask, words @ words.transpose(1, 2), [[]] * len(lengths))), dev)
    res = {"images": args.images, "captions": args.captions, "regions": args.regions, "max_words": args.words,
           "dim": args.dim, "shard": args.shard, "ours_shard": ours_shard, "device": dev,
           "threads": torch.get_num_threads(), "gram_seconds": t_enc}
    floor(img[slice(0, 8)], txt[slice(0, 8)], args.shard)  # warm-up
    with PeakMemory(dev) as mem:
        _, res["floor_seconds"] = timed(lambda: floor(img, txt, ours_shard), dev)
    res["floor_peak_mib"] = mem.peak_mib
    with PeakMemory(dev) as mem:
        ours, res["ours_seconds"] = timed(lambda: sharded_similarity(m, img, txt, shard_images=ours_shard,
                                                                     shard_captions=ours_shard), dev)
    res["ours_peak_mib"] = mem.peak_mib
    if args.fused:
        def fused():
            return sharded_similarity(m, img, txt, shard_images=ours_shard, shard_captions=ours_shard,
                                      impl="compiled")
        # Compile on the shapes the run meets (full and ragged shards), then time a second, compiled run.
        _, res["fused_first_run_seconds"] = timed(fused, dev)  # compilation included
        with PeakMemory(dev) as mem:
            fz, res["fused_seconds"] = timed(fused, dev)
        res["fused_peak_mib"] = mem.peak_mib
        res["fused_max_abs_diff_vs_ours"] = float(np.abs(fz - ours).max())
    total_blocks = -(-args.images // args.shard) * -(-args.captions // args.shard)
    with PeakMemory(dev) as mem:
        (ref, done), t_ref = timed(lambda: scan_similarity(regions, words, lengths, shard=args.shard,
                                                           max_shards=args.ref_shards), dev)
    res.update(ref_blocks=done, total_blocks=total_blocks, ref_measured_seconds=t_ref,
               ref_seconds=t_ref * total_blocks / done, ref_extrapolated=done < total_blocks,
               ref_peak_mib=mem.peak_mib)
    sel = ~np.isnan(ref)
    res["max_abs_diff"] = float(np.abs(ours[sel] - ref[sel]).max())
    res["speedup_vs_ref"] = res["ref_seconds"] / res["ours_seconds"]
    res["ours_over_floor"] = res["ours_seconds"] / res["floor_seconds"]
    if args.fused:
        res["fused_max_abs_diff"] = float(np.abs(fz[sel] - ref[sel]).max())
        res["fused_speedup_vs_ref"] = res["ref_seconds"] / res["fused_seconds"]
        res["fused_over_floor"] = res["fused_seconds"] / res["floor_seconds"]
    res["shard_map_mib"] = args.shard * args.shard * args.words * args.regions * 4 / 2**20  # one [i,c,W,R] f32
    return res


def train_step_benchmark(args) -> dict:
    """Forward + backward of CausMatchLoss at demo-like settings (B=128, R=16, W<=12, D=256, F=128, GRU)."""
    dev, B, R, F_, D = args.device, 128, 16, 128, 256
    g = torch.Generator().manual_seed(1)
    words = [f"w{i}" for i in range(80)]
    caps = [" ".join(words[j] for j in torch.randint(0, 80, (int(n),), generator=g))
            for n in torch.randint(6, 13, (B,), generator=g)]
    torch.manual_seed(0)
    m = Matcher.from_config(MatcherConfig(img_dim=F_, embed_size=D), Vocabulary(words)).to(dev).train()
    feats = torch.randn(B, R, F_, generator=g).to(dev)
    ids = (torch.arange(B, device=dev), torch.arange(B, device=dev))
    out = {}
    for lam in (1.0, 0.0):
        loss_fn = CausMatchLoss(lambda_eff=lam, intervention=Random())

        def step(loss_fn=loss_fn):
            m.zero_grad(set_to_none=True)
            loss = loss_fn(m, m.encode_images(feats), m.encode_captions(caps), ids)["loss"]
            loss.backward()

        step()  # warm-up
        with PeakMemory(dev) as mem:
            _, t = timed(lambda: [step() for _ in range(args.train_steps)], dev)
        key = "causmatch" if lam else "scan"
        out[f"train_step_{key}_seconds"] = t / args.train_steps
        out[f"train_step_{key}_peak_mib"] = mem.peak_mib
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--captions", type=int, default=5000)
    p.add_argument("--regions", type=int, default=36)
    p.add_argument("--words", type=int, default=12, help="maximum caption length (lengths are 6..words)")
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--shard", type=int, default=128)
    p.add_argument("--ours-shard", type=int, default=None,
                   help="shard size for ours and the floor (default: --shard); the reference keeps --shard")
    p.add_argument("--ref-shards", type=int, default=None,
                   help="time the reference on this many blocks only and extrapolate (default: all)")
    p.add_argument("--train-steps", type=int, default=5)
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--fused", action="store_true", help="also time the compiled implementation (impl='compiled')")
    p.add_argument("--no-tune-malloc", action="store_true", help="keep glibc's allocator defaults (CPU)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but no CUDA GPU is visible", file=sys.stderr)
        return 2
    tuned = _SETTINGS["allocator_tuned"]  # applied at import, before torch (--no-tune-malloc read there)
    res = {"malloc_tuned": tuned if args.device == "cpu" else False,
           "memory_measure": "cuda allocated" if args.device == "cuda" else PeakMemory.measure}
    res.update(similarity_benchmark(args))
    if not args.skip_train:
        res.update(train_step_benchmark(args))
    for k, v in res.items():
        print(f"{k:28s} {v:.4g}" if isinstance(v, float) else f"{k:28s} {v}")
    print("JSON " + json.dumps(res))  # one machine-readable line (e.g. for the GPU run's log)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
