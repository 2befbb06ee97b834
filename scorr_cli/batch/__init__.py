"""``scorr batch``: many (source, driving) jobs with one model load, resumable, shardable under torchrun.

Names are imported from their submodule on first use (``scorr_cli.lazy``), so parsing the command's
options does not load torch.
"""

from scorr_cli.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(("DEFAULT_NAME", "ITEM_OPTIONS", "PAIRINGS", "BatchItem", "BatchJobs", "build_items",
                     "pair_folders", "read_manifest"), "manifest"),
    **dict.fromkeys(("BatchConfig", "BatchProgress", "BatchReport", "BatchRunner", "Outcome", "plan", "run_batch"),
                    "runner"),
    **dict.fromkeys(("RankInfo", "rank_info", "shard"), "sharding"),
    **dict.fromkeys(("ItemRecord", "RankState", "merged_state", "state_path"), "state"),
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
