"""Coordinate grids, Gaussian keypoint maps, samplers and thin-plate splines.

Two coordinate systems coexist (docs/ARCHITECTURE.md §2): normalised (x, y) in [-1, 1] where ±1 are
the centres of the border pixels, and pixel (x, y) used by the refinement network. The samplers
below encode the three ``grid_sample`` conventions the released weights were trained with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def make_coordinate_grid(h: int, w: int, dtype: torch.dtype = torch.float32,
                         device: torch.device | str | None = None) -> torch.Tensor:
    """``h×w×2`` normalised (x, y) grid, arithmetic identical to FOMM's."""
    x = torch.arange(w, dtype=dtype, device=device)
    y = torch.arange(h, dtype=dtype, device=device)
    x = 2 * (x / (w - 1)) - 1
    y = 2 * (y / (h - 1)) - 1
    yy = y.view(-1, 1).repeat(1, w)
    xx = x.view(1, -1).repeat(h, 1)
    return torch.stack([xx, yy], dim=2)


def coords_grid(batch: int, h: int, w: int, dtype: torch.dtype = torch.float32,
                device: torch.device | str | None = None) -> torch.Tensor:
    """``B×2×h×w`` pixel grid: channel 0 = column, channel 1 = row."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=dtype, device=device),
                            torch.arange(w, dtype=dtype, device=device), indexing="ij")
    return torch.stack([xs, ys], dim=0)[None].expand(batch, 2, h, w)


def kp2gaussian(kp: torch.Tensor, h: int, w: int, variance: float) -> torch.Tensor:
    """Unnormalised Gaussian per keypoint: ``B×K×2`` -> ``B×K×h×w``."""
    grid = make_coordinate_grid(h, w, kp.dtype, kp.device)
    diff = grid.view(1, 1, h, w, 2) - kp.view(*kp.shape[:2], 1, 1, 2)
    return torch.exp(-0.5 * (diff**2).sum(-1) / variance)


def pixel_sample(img: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Bilinear sampling at pixel coordinates ``B×h×w×2`` (align_corners=True, zero padding).

    This is RAFT's ``bilinear_sampler``: every warp driven by the refined flow uses it.
    """
    H, W = img.shape[-2:]
    if H == W:  # one multiply-add instead of split, two of each and a concatenation
        grid = coords * (2 / (W - 1)) - 1
    else:
        x, y = coords.split([1, 1], dim=-1)
        grid = torch.cat([2 * x / (W - 1) - 1, 2 * y / (H - 1) - 1], dim=-1)
    return F.grid_sample(img, _grid_for(img, grid), align_corners=True)


def warp_by_flow(feature: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``feature`` at ``identity + flow`` (flow ``B×2×h×w`` in pixels of ``feature``)."""
    b, _, h, w = flow.shape
    coords = coords_grid(b, h, w, flow.dtype, flow.device) + flow
    return pixel_sample(feature, coords.permute(0, 2, 3, 1))


def grid_sample_default(img: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """PyTorch's default convention (align_corners=False, zero padding), which the prior used in training."""
    return F.grid_sample(img, _grid_for(img, grid), align_corners=False)


def _grid_for(img: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """The sampling grid in the image's dtype, except under a CPU's bf16 autocast: that samples in fp32
    anyway, so a bf16 grid would only lose position (up to half a pixel at 128²)."""
    if img.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        return grid
    return grid.to(img.dtype)


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear align-corners resize of flows / logits / features (no-op at the same size)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=True)


def resize_grid(deformation: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a ``B×h×w×2`` sampling grid to ``size``² (channels-last in and out)."""
    return resize(deformation.permute(0, 3, 1, 2), size).permute(0, 2, 3, 1)


def to_homogeneous(coordinates: torch.Tensor) -> torch.Tensor:
    ones = torch.ones_like(coordinates[..., :1])
    return torch.cat([coordinates, ones], dim=-1)


def from_homogeneous(coordinates: torch.Tensor) -> torch.Tensor:
    return coordinates[..., :2] / coordinates[..., 2:3]


def apply_affine_to_grid(grid: torch.Tensor, affine: torch.Tensor) -> torch.Tensor:
    """Apply ``B×3×3`` matrices to a ``B×N×h×w×2`` grid (background motion)."""
    b = grid.shape[0]
    out = torch.matmul(affine.view(b, 1, 1, 1, 3, 3), to_homogeneous(grid).unsqueeze(-1)).squeeze(-1)
    return from_homogeneous(out)


class KeypointTPS:
    """Thin-plate splines fitted per group so that driving points map onto source points.

    ``kp_driving``/``kp_source`` are ``B×G×n×2``. Reproduces TPSM's solver: kernel ``r²·log r²``,
    ``0.01·I`` added to the whole system matrix, explicit inverse.
    """

    def __init__(self, kp_driving: torch.Tensor, kp_source: torch.Tensor):
        b, g, n, _ = kp_driving.shape
        dtype, device = kp_driving.dtype, kp_driving.device
        K = torch.norm(kp_driving[:, :, :, None] - kp_driving[:, :, None, :], dim=4, p=2) ** 2
        K = K * torch.log(K + 1e-9)
        one = torch.ones(b, g, n, 1, dtype=dtype, device=device)
        kp_1p = torch.cat([kp_driving, one], 3)
        P = torch.cat([kp_1p, torch.zeros(b, g, 3, 3, dtype=dtype, device=device)], 2)
        L = torch.cat([K, kp_1p.permute(0, 1, 3, 2)], 2)
        L = torch.cat([L, P], 3)
        Y = torch.cat([kp_source, torch.zeros(b, g, 3, 2, dtype=dtype, device=device)], 2)
        L = L + torch.eye(L.shape[2], dtype=dtype, device=device).expand(L.shape) * 0.01
        param = torch.matmul(torch.inverse(L), Y)
        self.theta = param[:, :, n:, :].permute(0, 1, 3, 2)
        self.control_points = kp_driving
        self.control_params = param[:, :, :n, :]
        self.batch, self.groups = b, g

    def warp_coordinates(self, coordinates: torch.Tensor) -> torch.Tensor:
        """``1×N×2`` (or ``B×N×2``) points -> ``B×G×N×2``."""
        theta = self.theta
        transformed = torch.matmul(theta[:, :, :, :2], coordinates.permute(0, 2, 1)) + theta[:, :, :, 2:]
        distances = coordinates.view(coordinates.shape[0], 1, 1, -1, 2) - self.control_points.view(
            self.batch, self.groups, -1, 1, 2)
        result = (distances**2).sum(-1)
        result = result * torch.log(result + 1e-9)
        result = torch.matmul(result.permute(0, 1, 3, 2), self.control_params)
        return transformed.permute(0, 1, 3, 2) + result

    def grids(self, h: int, w: int) -> torch.Tensor:
        """Sampling grids ``B×G×h×w×2`` for a frame of size h×w."""
        grid = make_coordinate_grid(h, w, self.theta.dtype, self.theta.device).view(1, h * w, 2)
        return self.warp_coordinates(grid).view(self.batch, self.groups, h, w, 2)
