"""Evaluation metrics, each following its protocol exactly.

- L1: mean |pred − gt| on [0, 1] (all pixels and channels), per frame.
- PSNR: 10·log10(1 / MSE) with peak 1.0 on [0, 1], per frame (a perfect frame is +inf).
- SSIM: Wang et al. 2004 via ``scorr_cli.core.losses.ssim`` (11×11 Gaussian, σ 1.5), per frame.
- LPIPS v0.1 (Zhang et al. 2018): own AlexNet/VGG-16 feature stacks with the published linear heads;
  inputs converted to [-1, 1] here (the authors' evaluation fed [0, 1], docs/ARCHITECTURE.md §4). Needs the
  torchvision ImageNet backbone file and the ``lpips`` head file; missing ones skip LPIPS with a reason.
- AKD: mean Euclidean distance, in pixels at the evaluated resolution, between the 68 landmarks of the
  ground-truth and generated frames; frames whose ground truth has no detected face are left out, and
  MKR is the fraction of the remaining frames whose generated face is not found (FOMM's protocol).
- AED: mean Euclidean distance between identity embeddings (dlib ResNet, 128-d) of the ground-truth and
  generated faces.

Every metric returns per-frame values (numpy, float64) with NaN where a frame does not count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

# ----------------------------------------------------------------------------- pixel metrics


def _check(pred: torch.Tensor, gt: torch.Tensor) -> None:
    if pred.shape != gt.shape or pred.dim() != 4:
        raise ValueError(f"metrics need two B×C×H×W tensors of one shape, got {tuple(pred.shape)}, {tuple(gt.shape)}")


def l1(pred: torch.Tensor, gt: torch.Tensor) -> np.ndarray:
    """Per-frame mean absolute error on [0, 1]."""
    _check(pred, gt)
    return (pred.double() - gt.double()).abs().flatten(1).mean(1).cpu().numpy()


def mse(pred: torch.Tensor, gt: torch.Tensor) -> np.ndarray:
    _check(pred, gt)
    return (pred.double() - gt.double()).pow(2).flatten(1).mean(1).cpu().numpy()


def psnr(pred: torch.Tensor, gt: torch.Tensor, peak: float = 1.0) -> np.ndarray:
    """Per-frame PSNR in dB with ``peak`` 1.0 for [0, 1] images; identical frames give +inf."""
    m = mse(pred, gt)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(peak * peak / m)


def ssim(pred: torch.Tensor, gt: torch.Tensor) -> np.ndarray:
    """Per-frame SSIM (the training loss's implementation, float32 or better, autocast off)."""
    from scorr_cli.core.losses import ssim as _ssim

    _check(pred, gt)
    return _ssim(pred.float(), gt.float(), data_range=1.0, reduction="none").double().cpu().numpy()


# ----------------------------------------------------------------------------- LPIPS

LPIPS_NETS = ("vgg", "alex")
_BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
# torchvision ``features`` indices that end each LPIPS slice (relu1_2 ... relu5_3 / relu1 ... relu5)
_SLICES = {"alex": (2, 5, 8, 10, 12), "vgg": (4, 9, 16, 23, 30)}


def _features(net: str) -> nn.Sequential:
    """torchvision's ``alexnet().features`` / ``vgg16().features`` layouts (same keys, no torchvision needed)."""
    if net == "alex":
        return nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(True), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(True), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(True), nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(True), nn.MaxPool2d(3, 2))
    layers: list[nn.Module] = []
    c = 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, int(v), 3, padding=1), nn.ReLU(True)]
            c = int(v)
    return nn.Sequential(*layers)


class _Lin(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))


class LPIPS(nn.Module):
    """LPIPS v0.1 with ``net`` 'vgg' or 'alex'. ``forward`` takes images in [-1, 1]; use :meth:`score01`
    for [0, 1] images (it converts). Weights come from :meth:`from_files` (or stay random, for tests)."""

    def __init__(self, net: str = "vgg"):
        super().__init__()
        if net not in LPIPS_NETS:
            raise ValueError(f"unknown LPIPS network {net!r}; expected one of {', '.join(LPIPS_NETS)}")
        self.net = net
        self.features = _features(net)
        self.lins = nn.ModuleList(_Lin(c) for c in _CHANNELS[net])
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_files(cls, net: str, backbone: str | Path, head: str | Path) -> "LPIPS":
        model = cls(net)
        bb = torch.load(str(backbone), map_location="cpu", weights_only=True)
        feats = {k[len("features."):]: v for k, v in bb.items() if k.startswith("features.")}
        model.features.load_state_dict(feats, strict=True)
        heads = torch.load(str(head), map_location="cpu", weights_only=True)
        lin = {k: v for k, v in heads.items() if k.startswith("lin")}
        model.lins.load_state_dict({k[len("lin"):]: v for k, v in lin.items()}, strict=True)
        return model

    def _stack(self, x: torch.Tensor) -> list[torch.Tensor]:
        out, h, start = [], (x - self.shift) / self.scale, 0
        for end in _SLICES[self.net]:
            for layer in self.features[start:end]:
                h = layer(h)
            out.append(h)
            start = end
        return out

    @torch.no_grad()
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-image distance; ``x``, ``y`` B×3×H×W in [-1, 1]."""
        total = torch.zeros(x.shape[0], device=x.device, dtype=torch.float32)
        for fx, fy, lin in zip(self._stack(x.float()), self._stack(y.float()), self.lins):
            nx = fx / (fx.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            ny = fy / (fy.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total += lin.model((nx - ny).pow(2)).mean((2, 3))[:, 0]
        return total

    def score01(self, pred: torch.Tensor, gt: torch.Tensor) -> np.ndarray:
        """Per-frame LPIPS of [0, 1] images, converted to [-1, 1] as the protocol requires."""
        _check(pred, gt)
        dev = self.shift.device
        return self(pred.to(dev) * 2 - 1, gt.to(dev) * 2 - 1).double().cpu().numpy()


def _hub_checkpoints() -> Path:
    home = os.environ.get("TORCH_HOME")
    if home:
        return Path(home).expanduser() / "hub" / "checkpoints"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "torch" / "hub" / "checkpoints"


def find_lpips_weights(net: str, extra: Optional[str | Path] = None) -> tuple[Optional[tuple[Path, Path]], str]:
    """(backbone, head) files, or None and a one-line reason naming what is missing and where it looked.

    Looks in ``extra`` (a folder, or the head file itself), the torch hub cache and an installed ``lpips``
    package (its ``weights/v0.1/<net>.pth``).
    """
    dirs: list[Path] = []
    if extra is not None:
        e = Path(extra).expanduser()
        dirs += [e.parent, e] if e.is_file() else [e, e / "v0.1", e / "checkpoints"]
    dirs.append(_hub_checkpoints())
    try:
        import importlib.util

        spec = importlib.util.find_spec("lpips")
        if spec is not None and spec.submodule_search_locations:
            dirs.append(Path(list(spec.submodule_search_locations)[0]) / "weights" / "v0.1")
    except (ImportError, ValueError):
        pass
    backbone = next((d / _BACKBONE_FILES[net] for d in dirs if (d / _BACKBONE_FILES[net]).is_file()), None)
    head_names = (f"{net}.pth", f"lpips_{net}.pth", f"{net}_v0.1.pth")
    head = next((d / n for d in dirs for n in head_names if (d / n).is_file()), None)
    if backbone is not None and head is not None:
        return (backbone, head), ""
    missing = [n for n, f in ((_BACKBONE_FILES[net], backbone), (f"{net}.pth (lpips v0.1 head)", head)) if f is None]
    where = ", ".join(str(d) for d in dirs)
    return None, f"LPIPS ({net}) skipped: {' and '.join(missing)} not found (looked in {where}; pass --lpips-weights DIR)"


# ----------------------------------------------------------------------------- face metrics


@dataclass
class FaceInfo:
    box: Optional[np.ndarray]  # x0, y0, x1, y1 of the largest face, or None
    landmarks: Optional[np.ndarray]  # 68×2 pixels at the evaluated resolution, or None


class FaceMetrics:
    """AKD / MKR (68 landmarks) and AED (identity embeddings) on frames at the evaluated resolution.

    ``detector``: a ``scorr_cli.faces`` detector (landmarks in the input image's pixels, so AKD is in
    pixels of the evaluated frames even though dlib upsamples internally). ``embedder``: ``FaceEmbedder``.
    Either may be None (that metric is skipped).
    """

    def __init__(self, detector=None, embedder=None, akd: bool = True):
        self.detector = detector
        self.embedder = embedder
        self.akd = akd and detector is not None

    @property
    def active(self) -> bool:
        return self.akd or self.embedder is not None

    def distance_to(self, embedding: np.ndarray, image: np.ndarray, info: Optional[FaceInfo] = None) -> float:
        """Identity distance of the largest face in ``image`` (``info``: already detected) to a reference
        embedding."""
        return float(np.linalg.norm(self.embed(image, info if info is not None else self.face(image)) - embedding))

    def face(self, image: np.ndarray) -> FaceInfo:
        if self.detector is None:
            return FaceInfo(None, None)
        faces = self.detector.detect(image)
        if not faces:
            return FaceInfo(None, None)
        f = max(faces, key=lambda f: f.area)
        lm = None if f.landmarks68 is None else np.asarray(f.landmarks68, dtype=np.float64)[:, :2]
        return FaceInfo(f.box, lm)

    def signals(self, images: Sequence[np.ndarray], image_size: tuple[int, int]) -> np.ndarray:
        """The follow metric's per-frame signals (frames × :data:`~scorr_cli.evaluate.follow.SIGNALS`:
        mouth, eyes, yaw, pitch, roll) from the largest face's 68 landmarks; NaN rows where none is found."""
        from scorr_cli.evaluate.follow import sequence_signals

        return sequence_signals([self.face(im).landmarks for im in images], image_size)

    def embed(self, image: np.ndarray, info: FaceInfo) -> np.ndarray:
        from scorr_cli.faces.types import Face

        face = None if info.box is None else Face(*[float(v) for v in info.box])
        return self.embedder.embed(image, face)

    def scores(self, preds: Sequence[np.ndarray], gts: Sequence[np.ndarray],
               gt_cache: Optional[list] = None, landmarks: Optional[list] = None) -> dict[str, np.ndarray]:
        """Per-frame ``akd`` (NaN where not counted), ``missing`` (1 if gt has a face and pred none, NaN if
        gt has none) and ``aed`` (NaN without an embedder). ``gt_cache``: per-frame (FaceInfo, embedding) of
        the ground truth, computed once and shared by every method. ``landmarks``: a list that gets each
        frame's (pred, gt) 68 landmarks (None where no face) when AKD runs."""
        n = len(preds)
        akd = np.full(n, np.nan)
        missing = np.full(n, np.nan)
        aed = np.full(n, np.nan)
        for i, (p, g) in enumerate(zip(preds, gts)):
            if gt_cache is not None and gt_cache[i] is not None:
                gi, ge = gt_cache[i]
            else:
                gi = self.face(g)
                ge = self.embed(g, gi) if self.embedder is not None else None
                if gt_cache is not None:
                    gt_cache[i] = (gi, ge)
            pi = self.face(p)
            if self.akd and landmarks is not None:
                landmarks.append((pi.landmarks, gi.landmarks))
            if self.akd and gi.landmarks is not None:
                missing[i] = float(pi.landmarks is None)
                if pi.landmarks is not None:
                    akd[i] = float(np.linalg.norm(pi.landmarks - gi.landmarks, axis=1).mean())
            if self.embedder is not None:
                pe = self.embed(p, pi)
                aed[i] = float(np.linalg.norm(pe - ge))
        return {"akd": akd, "mkr": missing, "aed": aed}
