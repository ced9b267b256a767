"""Multi-process training support (``torchrun --nproc_per_node=N``).

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address; this
module turns those into an initialised process group (gloo on CPU, nccl on CUDA), says who
writes files (rank 0 only), and checks that the replicas really hold the same weights.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from causmatch.checkpoint import state_digest  # the one model fingerprint (re-exported for callers here)
from causmatch.errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"environment variable {name}={value!r} is not an integer — launch with torchrun") from None


def launched_distributed() -> bool:
    """True when started by ``torchrun`` (or equivalent) with more than one process."""
    return _env_int("WORLD_SIZE", 1) > 1


def init_distributed(device: str) -> DistInfo:
    """Join the process group that ``torchrun`` describes; a no-op for one process.

    ``device`` is ``"cpu"`` (gloo) or ``"cuda"`` (nccl; each process takes GPU ``LOCAL_RANK``).
    """
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0))
    if not launched_distributed():
        return DistInfo()
    info = DistInfo(_env_int("RANK", 0), _env_int("WORLD_SIZE", 1), _env_int("LOCAL_RANK", 0))
    if "MASTER_ADDR" not in os.environ:
        raise ConfigError("WORLD_SIZE > 1 but MASTER_ADDR is not set — launch with "
                          "`torchrun --nproc_per_node=N -m causmatch train ...`")
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if backend == "nccl":
        if torch.cuda.device_count() <= info.local_rank:
            raise ConfigError(f"LOCAL_RANK {info.local_rank} has no GPU ({torch.cuda.device_count()} visible) "
                              "— use --nproc_per_node up to the number of GPUs")
        torch.cuda.set_device(info.local_rank)
    dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
    return info


def device_for(device: str, info: DistInfo) -> torch.device:
    """The torch device of this process (``cuda:LOCAL_RANK`` under torchrun on GPUs)."""
    if device.startswith("cuda"):
        return torch.device("cuda", info.local_rank if info.enabled else torch.cuda.current_device())
    return torch.device(device)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def gather_digests(module: torch.nn.Module, info: DistInfo) -> list[str]:
    """Every rank's :func:`state_digest` (one entry per rank, rank order)."""
    digest = state_digest(module)
    if not info.enabled:
        return [digest]
    out: list = [None] * info.world_size
    dist.all_gather_object(out, digest)
    return out


def mean_across_ranks(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Average scalar statistics over ranks (for the progress display and logs)."""
    if not info.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    if dist.get_backend() == "nccl":  # nccl only reduces GPU tensors
        t = t.cuda()
    dist.all_reduce(t)  # gloo and nccl both sum; divide below
    return {k: float(v) / info.world_size for k, v in zip(keys, t.cpu().tolist())}
