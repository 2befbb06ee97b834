"""Shared pytest fixtures: repo root importable, and the shared face media (skipped when absent)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def media_root() -> Path:
    """``$SCORR_TEST_MEDIA`` or ``<repo>/../shared/data/faces``."""
    env = os.environ.get("SCORR_TEST_MEDIA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data" / "faces"


@pytest.fixture
def faces_media() -> Path:
    root = media_root()
    if not root.is_dir():
        pytest.skip(f"test media not found at {root} (set SCORR_TEST_MEDIA)")
    return root


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> Path:
    """A random-weight ``tiny`` model (64², seed 0) saved as a scorr checkpoint: fast end-to-end runs."""
    import torch

    from scorr_cli.checkpoints import save_checkpoint
    from scorr_cli.core.config import preset
    from scorr_cli.core.model import MRFA

    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", MRFA(preset("tiny")))
