"""torch.distributed plumbing for ``scorr train``: torchrun environment, devices, the resumable sampler.

``torchrun --nproc_per_node N [--nnodes M --node_rank R --rdzv_endpoint HOST:PORT] -m scorr_cli train ...``
sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (and the rendezvous address); with ``WORLD_SIZE`` > 1
we join the process group (NCCL on CUDA, Gloo on CPU). A plain ``scorr train`` is one process.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from scorr_cli.errors import InputError, ScorrError


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None  # None: not distributed
    owns_group: bool = False  # we initialised the process group (and so destroy it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ScorrError(f"environment variable {name}={value!r} is not an integer") from None


def resolve_device(pref: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:LOCAL_RANK`` when CUDA is usable, else ``cpu``."""
    if pref == "auto":
        pref = "cuda" if torch.cuda.is_available() else "cpu"
    if pref.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError("--device cuda: CUDA is not available on this machine (use --device cpu or auto)")
        if pref == "cuda":
            return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
        return torch.device(pref)
    if pref != "cpu":
        raise InputError(f"unknown device {pref!r} (expected auto, cpu or cuda)")
    return torch.device("cpu")


def init_distributed(device_pref: str = "auto") -> DistInfo:
    """Read the torchrun environment and join the process group when ``WORLD_SIZE`` > 1."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", 0)
    if dist.is_available() and dist.is_initialized():  # an embedding program set it up already
        world, rank = dist.get_world_size(), dist.get_rank()
        device = resolve_device(device_pref, local)
        return DistInfo(rank, world, local, device, dist.get_backend(), owns_group=False)
    device = resolve_device(device_pref, local)
    if world <= 1:
        return DistInfo(0, 1, 0, device)
    if not dist.is_available():
        raise ScorrError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, init_method="env://", world_size=world, rank=rank,
                            **({"device_id": device} if device.type == "cuda" else {}))
    return DistInfo(rank, world, local, device, backend, owns_group=True)


def cleanup(info: DistInfo) -> None:
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def all_reduce_mean(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean over ranks (a copy; ``values`` on any device)."""
    if not info.distributed:
        return values
    t = values.detach().to(info.device if info.backend == "nccl" else "cpu", torch.float64).clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return (t / info.world_size).to(values.device)


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank if ``flag`` is true on any (used to stop all ranks at the same step)."""
    if not info.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device if info.backend == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


class ResumableDistributedSampler(DistributedSampler):
    """``DistributedSampler`` (shuffled by ``seed + epoch``, ``set_epoch`` each epoch) that

    * keeps only whole optimiser steps (``drop_last`` to a multiple of the global batch),
    * can start part-way through an epoch: ``set_epoch(epoch, start)`` skips the first ``start``
      positions of the *global* permutation (the samples all ranks consumed before a checkpoint), so a
      resume continues with exactly the unseen samples — even with another number of ranks,
    * yields ``(epoch, index)`` pairs, which :class:`~scorr_cli.train.data.FramesDataset` accepts, so
      the per-item randomness never depends on loader-worker state.

    Rank ``r`` takes positions ``r, r + W, r + 2W, ...`` of the remaining permutation (interleaved,
    as ``DistributedSampler``); consecutive micro-batches of all ranks thus cover consecutive global
    positions.
    """

    def __init__(self, dataset_len: int, global_batch: int, num_replicas: int = 1, rank: int = 0,
                 seed: int = 0, shuffle: bool = True):
        self._n = int(dataset_len)
        super().__init__(range(self._n), num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=True)
        if global_batch % num_replicas:
            raise ValueError("global batch must be a multiple of the number of ranks")
        self.global_batch = int(global_batch)
        self.start = 0

    @property
    def usable(self) -> int:
        """Samples per epoch used by training (a multiple of the global batch)."""
        return self._n // self.global_batch * self.global_batch

    @property
    def steps_per_epoch(self) -> int:
        return self._n // self.global_batch

    def set_epoch(self, epoch: int, start: int = 0) -> None:  # type: ignore[override]
        super().set_epoch(epoch)
        if start < 0 or start > self.usable or start % self.num_replicas:
            raise ValueError(f"bad sampler start {start} (usable {self.usable}, ranks {self.num_replicas})")
        self.start = int(start)

    def global_order(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            return torch.randperm(self._n, generator=g).tolist()
        return list(range(self._n))

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        rest = self.global_order()[self.start:self.usable]
        for i in rest[self.rank::self.num_replicas]:
            yield (self.epoch, i)

    def __len__(self) -> int:
        return math.ceil((self.usable - self.start - self.rank) / self.num_replicas) if self.usable > self.start else 0


__all__ = ["DistInfo", "init_distributed", "cleanup", "resolve_device", "barrier", "all_reduce_mean", "any_rank",
           "ResumableDistributedSampler"]
