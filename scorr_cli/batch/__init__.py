"""``scorr batch``: many (source, driving) jobs with one model load, resumable, shardable under torchrun."""

from scorr_cli.batch.manifest import (DEFAULT_NAME, ITEM_OPTIONS, PAIRINGS, BatchItem, BatchJobs, build_items, pair_folders,
                                      read_manifest)
from scorr_cli.batch.runner import BatchConfig, BatchProgress, BatchReport, BatchRunner, Outcome, plan, run_batch
from scorr_cli.batch.sharding import RankInfo, rank_info, shard
from scorr_cli.batch.state import ItemRecord, RankState, merged_state, state_path

__all__ = [
    "DEFAULT_NAME", "ITEM_OPTIONS", "PAIRINGS", "BatchItem", "BatchJobs", "build_items", "pair_folders", "read_manifest",
    "BatchConfig", "BatchProgress", "BatchReport", "BatchRunner", "Outcome", "plan", "run_batch", "RankInfo",
    "rank_info", "shard", "ItemRecord", "RankState", "merged_state", "state_path",
]
