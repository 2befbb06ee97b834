"""Scale-out under ``torchrun``: which items this process runs.

torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` for every process (any number of nodes).
Items are split into ``WORLD_SIZE`` contiguous blocks of the full, ordered item list, so the split
is the same on every re-run (no duplicates, no gaps) and items sharing a driving clip tend to land
on the same rank (its keypoints are computed once there).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, TypeVar

from scorr_cli.errors import InputError

T = TypeVar("T")


@dataclass(frozen=True)
class RankInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def rank_info(env: Optional[Mapping[str, str]] = None) -> RankInfo:
    env = os.environ if env is None else env
    try:
        rank = int(env.get("RANK", "0"))
        world = int(env.get("WORLD_SIZE", "1"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise InputError("RANK / WORLD_SIZE / LOCAL_RANK must be integers (as torchrun sets them)") from None
    if world < 1 or not 0 <= rank < world:
        raise InputError(f"RANK={rank} WORLD_SIZE={world}: need 0 <= RANK < WORLD_SIZE")
    return RankInfo(rank, world, local)


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    return n * rank // world_size, n * (rank + 1) // world_size


def shard(items: Sequence[T], rank: int, world_size: int) -> list[T]:
    """This rank's contiguous block; the blocks of ranks 0..W-1 concatenate to ``items``."""
    lo, hi = shard_bounds(len(items), rank, world_size)
    return list(items[lo:hi])


def device_for(info: RankInfo, device: str) -> str:
    """``auto`` under torchrun with CUDA: one GPU per local rank."""
    if device == "auto" and info.distributed:
        import torch

        if torch.cuda.is_available() and torch.cuda.device_count() > 0:
            return f"cuda:{info.local_rank % torch.cuda.device_count()}"
    return device
