"""Motion transfer: turn driving keypoints into keypoints for the source (relative or absolute).

Relative mode moves the source keypoints by the driving motion since a reference frame, optionally
scaled by the ratio of keypoint convex-hull sizes; jacobians are transferred as ``J_d·J_ref⁻¹·J_s``.
Priors without jacobians (tpsm) simply skip the jacobian part (the authors' demo crashes there).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from scorr_cli.choices import TRANSFER_MODES


@dataclass(frozen=True)
class TransferOptions:
    mode: str = "relative"  # relative: follow driving motion; absolute: copy driving keypoints
    adapt_scale: bool = True  # scale relative motion by sqrt(hull area) ratio source / reference
    relative_jacobian: bool = True  # transfer jacobians relatively too (when the prior has them)

    def __post_init__(self) -> None:
        if self.mode not in TRANSFER_MODES:
            raise ValueError(f"unknown motion mode {self.mode!r}; expected relative or absolute")


def convex_hull_area(points: np.ndarray) -> float:
    """Area of the convex hull of 2-D points (monotone chain), float64."""
    pts = np.unique(np.asarray(points, dtype=np.float64), axis=0)
    if len(pts) < 3:
        return 0.0
    pts = pts[np.lexsort((pts[:, 1], pts[:, 0]))]

    def cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    def half(seq: np.ndarray) -> list[np.ndarray]:
        hull: list[np.ndarray] = []
        for p in seq:
            while len(hull) >= 2 and cross(hull[-2], hull[-1], p) <= 0:
                hull.pop()
            hull.append(p)
        return hull

    hull = np.array(half(pts)[:-1] + half(pts[::-1])[:-1])
    x, y = hull[:, 0], hull[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def movement_scale(kp_source: torch.Tensor, kp_reference: torch.Tensor) -> torch.Tensor:
    """Per batch item ``sqrt(area(source)) / sqrt(area(reference))`` (float64, ``B``)."""
    src = kp_source.detach().cpu().numpy()
    ref = kp_reference.detach().cpu().numpy()
    if ref.shape[0] == 1 and src.shape[0] > 1:
        ref = np.repeat(ref, src.shape[0], axis=0)
    scales = []
    for s, r in zip(src, ref):
        ra = convex_hull_area(r)
        scales.append(np.sqrt(convex_hull_area(s)) / np.sqrt(ra) if ra > 0 else 1.0)
    return torch.tensor(scales, dtype=torch.float64)


def transfer_keypoints(kp_source: dict[str, torch.Tensor], kp_driving: dict[str, torch.Tensor],
                       kp_reference: dict[str, torch.Tensor] | None, options: TransferOptions,
                       scale: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Keypoints (and jacobians) to render for each driving frame.

    ``kp_source``/``kp_reference`` may have batch 1 and broadcast over the driving batch. ``scale``
    (from :func:`movement_scale`) can be passed to avoid recomputing it for every batch.
    """
    if options.mode == "absolute":
        return dict(kp_driving)
    if kp_reference is None:
        raise ValueError("relative motion transfer needs a reference driving frame")
    out = dict(kp_driving)
    if options.adapt_scale:
        if scale is None:
            scale = movement_scale(kp_source["kp"], kp_reference["kp"])
        s = scale.to(kp_driving["kp"].dtype).to(kp_driving["kp"].device).view(-1, 1, 1)
    else:
        s = 1.0
    out["kp"] = (kp_driving["kp"] - kp_reference["kp"]) * s + kp_source["kp"]
    if options.relative_jacobian and "jacobian" in kp_driving and "jacobian" in kp_source:
        diff = torch.matmul(kp_driving["jacobian"], torch.inverse(kp_reference["jacobian"]))
        out["jacobian"] = torch.matmul(diff, kp_source["jacobian"])
    return out
