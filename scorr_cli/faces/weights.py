"""Where face-alignment's weight files live, and a precise one-line error when they are absent.

face-alignment downloads at construction; offline that fails after a timeout with a urllib error.
We check for the files first so users get: which file, which folder, and the offline alternative.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator, Optional

from scorr_cli.errors import MissingWeightsError

ENV_VAR = "SCORR_FACE_WEIGHTS"
FAN_FILE = "2DFAN4-11f355bf06.pth.tar"
DETECTOR_FILES = {
    "sfd": ("s3fd-619a316812.pth",),
    "blazeface": ("blazeface.pth", "anchors.npy"),
}


def hub_dir(weights_dir: Optional[str | os.PathLike] = None) -> Path:
    """The torch-hub root face-alignment reads from: explicit folder > $SCORR_FACE_WEIGHTS > torch default.

    A folder given by the user may be either the hub root or its ``checkpoints`` folder itself.
    """
    chosen = weights_dir or os.environ.get(ENV_VAR)
    if chosen:
        p = Path(chosen).expanduser()
        return p.parent if p.name == "checkpoints" else p
    import torch.hub

    return Path(torch.hub.get_dir())


def checkpoints_dir(weights_dir: Optional[str | os.PathLike] = None) -> Path:
    return hub_dir(weights_dir) / "checkpoints"


def required_files(face_detector: str = "sfd") -> tuple[str, ...]:
    return (FAN_FILE, *DETECTOR_FILES[face_detector])


def missing_files(face_detector: str = "sfd", weights_dir: Optional[str | os.PathLike] = None) -> list[str]:
    folder = checkpoints_dir(weights_dir)
    return [name for name in required_files(face_detector) if not (folder / name).is_file()]


def require_weights(face_detector: str = "sfd", weights_dir: Optional[str | os.PathLike] = None) -> Path:
    """Raise MissingWeightsError naming the first absent file; never lets face-alignment try a download."""
    missing = missing_files(face_detector, weights_dir)
    if missing:
        raise MissingWeightsError(
            f"face-alignment weights missing: {missing[0]} not found in {checkpoints_dir(weights_dir)} "
            f"(set --weights-dir or ${ENV_VAR}, or use --detector dlib for the offline detector)"
        )
    return checkpoints_dir(weights_dir)


@contextlib.contextmanager
def torch_hub_dir(root: Path) -> Iterator[None]:
    """Point torch.hub at ``root`` while face-alignment constructs, then restore the previous folder."""
    import torch.hub

    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(root))
    try:
        yield
    finally:
        torch.hub.set_dir(previous)
