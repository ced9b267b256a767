"""The training loop: one code path for CausMatch (``lambda_eff > 0``) and SCAN (``lambda_eff = 0``).

Output layout: ``OUT/`` holds the best checkpoint by dev rSum (``config.json`` +
``model.safetensors``), ``OUT/last/`` the latest one plus ``train_state.pt`` (optimizer,
scaler, step, best score, RNG) for ``--resume``. Only rank 0 writes. ``batch_size`` is per
process: with hardest in-batch negatives the batch is what the loss sees.
"""
from __future__ import annotations

import gc
import math
import os
import random
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from causmatch.checkpoint import check_checkpoint_out, load_matcher, load_train_state, save_matcher
from causmatch.data import CaptionPairs, Vocabulary, collate_pairs, load_split
from causmatch.errors import CheckpointError, ConfigError
from causmatch.evaluation import evaluate
from causmatch.interventions import parse_intervention
from causmatch.losses import CausMatchLoss
from causmatch.models import Matcher
from causmatch.outputs import os_error, recover_dir
from causmatch.training import distributed as D
from causmatch.training.config import TrainConfig

STATE_FILE = "train_state.pt"


class _LossStep(nn.Module):
    """Matcher + loss in one ``forward`` so DistributedDataParallel sees the whole step."""

    def __init__(self, matcher: nn.Module, loss: nn.Module):
        super().__init__()
        self.matcher, self.loss = matcher, loss

    def forward(self, features, region_mask, captions, image_index, caption_index) -> dict:
        img = self.matcher.encode_images(features, region_mask)     # regions [B,R,D]
        txt = self.matcher.encode_captions(captions)                # words [B,W,D]
        return self.loss(self.matcher, img, txt, (image_index, caption_index))


class EpochSampler(DistributedSampler):
    """DistributedSampler (shuffled by ``seed + epoch``, split across ranks) that optionally keeps only
    the first ``limit`` captions of each epoch's permutation: a fresh random subset per epoch."""

    def __init__(self, dataset, *, num_replicas: int, rank: int, seed: int, limit: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.per_rank = min(self.num_samples, max(1, limit // num_replicas)) if limit else self.num_samples

    def __iter__(self):
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)  # as DistributedSampler: same permutation on every rank
        order = torch.randperm(len(self.dataset), generator=g).tolist()[:self.total_size]
        return iter(order[self.rank:self.total_size:self.num_replicas][:self.per_rank])

    def __len__(self) -> int:
        return self.per_rank


def lr_at(step: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """Learning rate of optimizer step ``step`` (a pure function of the step, so resume is exact)."""
    if cfg.lr_schedule == "constant":
        return cfg.lr
    if cfg.lr_schedule == "step":
        return cfg.lr * cfg.lr_decay ** ((step // steps_per_epoch) // cfg.lr_decay_epochs)
    total = max(1, cfg.epochs * steps_per_epoch)
    return 0.5 * cfg.lr * (1.0 + math.cos(math.pi * min(step, total) / total))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_matcher(cfg: TrainConfig, train_split) -> Matcher:
    """A fresh Matcher for ``cfg.model``, with ``img_dim`` from the data and a vocabulary from train."""
    model_cfg = cfg.model.matcher_config(int(train_split.features.shape[-1]))
    vocab = None
    if model_cfg.text.encoder == "gru":
        vocab = Vocabulary.from_captions(train_split.captions, min_count=cfg.vocab_min_count,
                                         tokenizer=model_cfg.text.tokenizer)
    return Matcher(model_cfg, vocab=vocab)


def _autocast(device: torch.device, amp: str):
    if device.type != "cuda" or amp == "off":
        return nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


class Trainer:
    """Holds the run's state; :meth:`fit` runs the remaining epochs."""

    def __init__(self, data_dir: str | Path, out: str | Path, cfg: TrainConfig, *, device: str = "cpu",
                 resume: bool = False, progress: bool = True, log=None, overwrite: bool = False):
        self.cfg, self.out, self.progress = cfg, Path(os.path.abspath(Path(out).expanduser())), progress
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        if resume and overwrite:
            raise ConfigError("--resume continues the run in OUT and --overwrite starts it again — pass only one")
        # an existing OUT must be an earlier `causmatch train` output, and the user must say what to do with it
        state = check_checkpoint_out(self.out, command="train", consent=resume or overwrite, subdirs=("last",),
                                     consent_hint="--resume (to continue it) or --overwrite (to start again)")
        self._drop_old_last = state == "previous" and not resume  # --overwrite: the old run's last/ is not ours
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError("--device cuda but no CUDA GPU is visible; use --device cpu")
        self.info = D.init_distributed(device)
        self.device = D.device_for(device, self.info)
        self.train_split = load_split(data_dir, "train")
        self.dev_split = load_split(data_dir, "dev")
        seed_everything(cfg.seed)  # same seed on every rank: identical initial weights
        self.matcher = build_matcher(cfg, self.train_split).to(self.device)
        intervention = parse_intervention(cfg.counterfactual, seed=cfg.seed)
        self.loss = CausMatchLoss(cfg.lambda_eff, intervention, cfg.margin, hardest=cfg.max_violation,
                                  effect_margin=cfg.effect_margin, effect_violation=cfg.effect_violation,
                                  effect_loss=cfg.effect_loss, effect_temperature=cfg.effect_temperature,
                                  effect_warmup_epochs=cfg.effect_warmup_epochs,
                                  max_violation_warmup_epochs=cfg.max_violation_warmup_epochs)
        params = [p for p in self.matcher.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.device.type == "cuda" and cfg.amp == "fp16")
        self.epoch, self.step, self.best_rsum, self.best_epoch, self.history = 0, 0, -1.0, -1, []
        if resume:
            self._resume()
        step_module = _LossStep(self.matcher, self.loss)
        if self.info.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            step_module = nn.parallel.DistributedDataParallel(step_module, device_ids=ids)
        self.step_module = step_module
        self.sampler = EpochSampler(CaptionPairs(self.train_split), num_replicas=self.info.world_size,
                                    rank=self.info.rank, seed=cfg.seed, limit=cfg.captions_per_epoch)
        self.loader = DataLoader(self.sampler.dataset, batch_size=cfg.batch_size, sampler=self.sampler,
                                 collate_fn=collate_pairs, num_workers=cfg.workers, drop_last=True,
                                 pin_memory=self.device.type == "cuda")
        if len(self.loader) == 0:
            raise ConfigError(f"batch_size={cfg.batch_size} is larger than the {len(self.sampler)} training "
                              "captions per process; lower batch_size")

    # ---------------------------------------------------------------- checkpoints
    def _resume(self) -> None:
        last = self.out / "last"
        recover_dir(self.out)  # a save killed half-way: its parked complete version is put back
        recover_dir(last)
        state = load_train_state(last) if last.is_dir() else None
        if state is None:
            raise CheckpointError(f"--resume but {last / STATE_FILE} does not exist; train without --resume first")
        loaded = load_matcher(last)
        if loaded.config != self.matcher.config or loaded.vocab != self.matcher.vocab:
            raise CheckpointError(f"--resume: the model settings in {last} differ from this run's config; "
                                  "resume with the same config or start a new --out")
        self.matcher.load_state_dict(loaded.state_dict())
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.best_rsum, self.best_epoch = float(state["best_rsum"]), int(state["best_epoch"])
        self.history = list(state.get("history", []))
        torch.set_rng_state(state["torch_rng"])
        self.log(f"resumed from {last} at epoch {self.epoch} (best dev rSum {self.best_rsum:.2f})")

    def _train_state(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                "epoch": self.epoch, "step": self.step, "best_rsum": self.best_rsum,
                "best_epoch": self.best_epoch, "history": self.history, "torch_rng": torch.get_rng_state()}

    def _save(self, metrics: dict | None, is_best: bool) -> None:
        if not self.info.is_main:
            return
        extra = {"dataset_fingerprint": self.train_split.fingerprint(), "epoch": self.epoch, "dev": metrics,
                 "world_size": self.info.world_size}
        # Best first, then last: a kill between them leaves the previous last/, whose state says the best
        # was not saved yet, so --resume redoes this epoch (deterministically) and saves both again.
        if is_best:  # OUT is replaced as a whole; its last/ is carried into the new version by hard links
            save_matcher(self.matcher, self.out, train_config=self.cfg.to_dict(), extra=extra,
                         keep=() if self._drop_old_last else ("last",),
                         drop=("last",) if self._drop_old_last else (), label="best")
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise os_error(err, self.out, "create the output folder") from None
        save_matcher(self.matcher, self.out / "last", train_config=self.cfg.to_dict(),
                     train_state=self._train_state(), extra=extra, label="last")
        self._drop_old_last = False  # from now on last/ belongs to this run

    # ---------------------------------------------------------------- loop
    def _run_epoch(self) -> dict:
        cfg, steps = self.cfg, len(self.loader)
        self.sampler.set_epoch(self.epoch)
        self.loss.set_epoch(self.epoch)  # the effect term's warm-up
        self.matcher.train()
        sums: dict[str, float] = {}
        bar = self._bar(steps)
        for batch in self.loader:
            for group in self.optimizer.param_groups:
                group["lr"] = lr_at(self.step, steps, cfg)
            stats = self._optimizer_step(batch)
            for key, value in stats.items():
                sums[key] = sums.get(key, 0.0) + value
            self.step += 1
            if bar is not None:
                bar.set_postfix(loss=f"{stats['loss']:.3f}", eff_pos=f"{stats['mean_effect_pos']:.3f}",
                                eff_neg=f"{stats['mean_effect_neg']:.3f}", refresh=False)
                bar.update(1)
        if bar is not None:
            bar.close()
        return D.mean_across_ranks({k: v / steps for k, v in sums.items()}, self.info)

    def _bar(self, steps: int):
        if not (self.progress and self.info.is_main):
            return None
        from tqdm.auto import tqdm
        return tqdm(total=steps, desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}", leave=False,
                    file=sys.stderr, dynamic_ncols=True)

    def _optimizer_step(self, batch: dict) -> dict:
        dev = self.device
        with _autocast(dev, self.cfg.amp):
            out = self.step_module(batch["features"].to(dev, non_blocking=True),      # [B,R,F]
                                   batch["region_mask"].to(dev, non_blocking=True),   # [B,R]
                                   batch["captions"],
                                   batch["image_index"].to(dev), batch["caption_index"].to(dev))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(out["loss"]).backward()
        if self.cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.matcher.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {k: float(v.detach()) for k, v in out.items() if torch.is_tensor(v) and v.numel() == 1}

    def validate(self) -> dict:
        """Dev metrics (every rank takes part when distributed; the matrix is sharded across ranks)."""
        limit = self.cfg.val_limit_images or None
        result = evaluate(self.matcher, self.dev_split, limit_images=limit, grounding=False)
        return result["metrics"]

    def fit(self) -> dict:
        """Run the remaining epochs; returns a summary (best dev rSum, its epoch, per-epoch history)."""
        cfg = self.cfg
        while self.epoch < cfg.epochs:
            start = time.perf_counter()
            stats = self._run_epoch()
            self.epoch += 1
            metrics = None
            if self.epoch % cfg.val_every == 0 or self.epoch == cfg.epochs:
                metrics = self.validate()
            is_best = metrics is not None and metrics["rsum"] > self.best_rsum
            if is_best:
                self.best_rsum, self.best_epoch = metrics["rsum"], self.epoch
            self.history.append({"epoch": self.epoch, "seconds": round(time.perf_counter() - start, 2),
                                 **{k: round(v, 5) for k, v in stats.items()},
                                 **({"dev_" + k: v for k, v in metrics.items()} if metrics else {})})
            self._save(metrics, is_best)
            if self.info.is_main:
                self._log_epoch(stats, metrics)
            D.barrier(self.info)
        return self._finish()

    def _log_epoch(self, stats: dict, metrics: dict | None) -> None:
        pos, neg = stats.get('mean_effect_pos', float('nan')), stats.get('mean_effect_neg', float('nan'))
        effect = "effect not computed" if math.isnan(pos) else f"effect +{pos:.4f} -{neg:.4f}"
        line = f"epoch {self.epoch}/{self.cfg.epochs} loss {stats.get('loss', float('nan')):.4f} {effect}"
        if metrics:
            line += (f" | dev R@1 i2t {metrics['i2t_r1']:.1f} t2i {metrics['t2i_r1']:.1f} "
                     f"rSum {metrics['rsum']:.1f} (best {self.best_rsum:.1f} @ {self.best_epoch})")
        self.log(line)

    def _finish(self) -> dict:
        digests = D.gather_digests(self.matcher, self.info)
        if len(set(digests)) != 1:
            raise RuntimeError(f"replicas diverged: state digests {digests}")  # a bug, not a user error
        if self.info.enabled:
            self.log(f"rank {self.info.rank}: final state sha256 {digests[self.info.rank]}")
        return {"best_rsum": self.best_rsum, "best_epoch": self.best_epoch, "epochs": self.epoch,
                "history": self.history, "state_sha256": digests[0], "world_size": self.info.world_size}


def train(data_dir: str | Path, out: str | Path, cfg: TrainConfig, *, device: str = "cpu",
          resume: bool = False, progress: bool = True, log=None, overwrite: bool = False) -> dict:
    """Train a Matcher on ``data_dir`` (needs train and dev splits) into checkpoint dir ``out``.

    An existing ``out`` must be an earlier output of ``train``: ``resume`` continues it, ``overwrite``
    starts again over it (its files are replaced as the new run saves); anything else is refused.
    """
    initialised_here = not (torch.distributed.is_available() and torch.distributed.is_initialized())
    trainer = None
    try:
        trainer = Trainer(data_dir, out, cfg, device=device, resume=resume, progress=progress, log=log,
                          overwrite=overwrite)
        return trainer.fit()
    finally:
        if initialised_here:
            # DDP's reducer holds the process group. Left to interpreter exit (the trainer sits in reference
            # cycles), gloo's threads were torn down during finalisation and a rank sometimes died with
            # SIGABRT ("terminate called without an active exception") after a finished run.
            trainer = None
            gc.collect()
            D.shutdown()
