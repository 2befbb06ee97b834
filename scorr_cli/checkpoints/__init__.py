"""Checkpoint files: scorr's safetensors format, import of the authors' ``.pth``, and named weights.

scorr's format is one ``.safetensors`` file whose header metadata holds the format version, the full
model config (JSON), the preset name and free-form training info. Loading never unpickles; the
authors' pickled checkpoints are read with ``torch.load(weights_only=True)``, which refuses code.
"""

from scorr_cli.checkpoints.store import (FORMAT_VERSION, Checkpoint, build_model, export_checkpoint,
                                         load_checkpoint, publishable_metadata, read_checkpoint, save_checkpoint,
                                         validate_state_dict)
from scorr_cli.checkpoints.official import import_official, read_official
from scorr_cli.checkpoints.registry import (DEFAULT_NAME, WeightsEntry, list_weights, resolve_checkpoint,
                                            user_weights_dir)

__all__ = [
    "FORMAT_VERSION", "Checkpoint", "build_model", "export_checkpoint", "publishable_metadata", "load_checkpoint",
    "read_checkpoint", "save_checkpoint",
    "validate_state_dict", "import_official", "read_official", "DEFAULT_NAME", "WeightsEntry", "list_weights",
    "resolve_checkpoint", "user_weights_dir",
]
