"""The random warp T of the equivariance losses (FOMM's ``Transform``, reproduced exactly).

T(p) = θ·[p; 1] + s(p)·[1, 1]ᵀ with θ = I₂ₓ₃ + N(0, σ_affine²) and a TPS term
s(p) = Σ_k c_k · d_k² · log(d_k + 1e-6), d_k = ‖p − q_k‖₁ over a 5×5 control grid q_k and
c_k ~ N(0, σ_tps²). FOMM's variant adds the *same* scalar to x and y and uses the L1 distance; the
released models were trained with it, so we keep it. Parameters are drawn on the CPU from an explicit
generator, so a warp is reproducible and identical on every device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class TransformConfig:
    """The authors' ``transform_params`` (vox1 and celebvhq alike)."""

    sigma_affine: float = 0.05
    sigma_tps: float = 0.005
    points_tps: int = 5


class RandomTransform:
    """One random warp per batch item. ``theta``: B×2×3, ``control_params``: B×1×P² (P = points_tps)."""

    def __init__(self, theta: torch.Tensor, control_points: torch.Tensor | None = None,
                 control_params: torch.Tensor | None = None):
        self.theta = theta
        self.control_points = control_points
        self.control_params = control_params

    @property
    def batch_size(self) -> int:
        return self.theta.shape[0]

    @classmethod
    def sample(cls, batch_size: int, config: TransformConfig = TransformConfig(),
               generator: torch.Generator | None = None, device: torch.device | str | None = None,
               dtype: torch.dtype = torch.float32) -> "RandomTransform":
        """Draw θ then the TPS coefficients (FOMM's order) from ``generator`` on the CPU."""
        from scorr_cli.core.geometry import make_coordinate_grid

        theta = torch.randn(batch_size, 2, 3, generator=generator, dtype=torch.float64) * config.sigma_affine
        theta = theta + torch.eye(2, 3, dtype=torch.float64)
        points = params = None
        if config.sigma_tps > 0 and config.points_tps > 0:
            p = config.points_tps
            params = torch.randn(batch_size, 1, p * p, generator=generator, dtype=torch.float64) * config.sigma_tps
            points = make_coordinate_grid(p, p, dtype=dtype, device=device).view(1, p * p, 2)
            params = params.to(device=device, dtype=dtype)
        return cls(theta.to(device=device, dtype=dtype), points, params)

    @classmethod
    def identity(cls, batch_size: int, device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float32) -> "RandomTransform":
        theta = torch.eye(2, 3, dtype=dtype, device=device).expand(batch_size, 2, 3).clone()
        return cls(theta)

    def warp_coordinates(self, coordinates: torch.Tensor) -> torch.Tensor:
        """T applied to normalised (x, y) points: ``b×N×2`` (b = B or 1, broadcast) -> ``B×N×2``."""
        like = {"dtype": coordinates.dtype, "device": coordinates.device}
        theta = self.theta.to(**like).unsqueeze(1)  # B×1×2×3
        out = (theta[..., :2] @ coordinates.unsqueeze(-1) + theta[..., 2:]).squeeze(-1)
        if self.control_params is not None and self.control_points is not None:
            pts = self.control_points.to(**like)
            params = self.control_params.to(**like)
            d = (coordinates.unsqueeze(2) - pts.unsqueeze(1)).abs().sum(-1)  # b×N×P²
            tps = (d**2 * torch.log(d + 1e-6) * params).sum(-1, keepdim=True)  # B×N×1
            out = out + tps
        return out

    def transform_frame(self, frame: torch.Tensor) -> torch.Tensor:
        """Output pixel p samples ``frame`` at T(p): bilinear, reflection padding, align_corners=False."""
        from scorr_cli.core.geometry import make_coordinate_grid

        b, _, h, w = frame.shape
        grid = make_coordinate_grid(h, w, dtype=frame.dtype, device=frame.device).view(1, h * w, 2)
        grid = self.warp_coordinates(grid).view(self.batch_size, h, w, 2)
        if grid.shape[0] != b:
            raise ValueError(f"transform has batch {grid.shape[0]}, frame has {b}")
        return F.grid_sample(frame, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    def jacobian(self, coordinates: torch.Tensor) -> torch.Tensor:
        """∂T/∂p at each point, ``B×N×2×2`` (row = output coordinate), by autograd with a graph so
        the equivariance loss can back-propagate through it into the keypoint network."""
        if not coordinates.requires_grad:
            coordinates = coordinates.detach().requires_grad_(True)
        with torch.enable_grad():
            new = self.warp_coordinates(coordinates)
            gx = torch.autograd.grad(new[..., 0].sum(), coordinates, create_graph=True)[0]
            gy = torch.autograd.grad(new[..., 1].sum(), coordinates, create_graph=True)[0]
        return torch.stack([gx, gy], dim=-2)


__all__ = ["TransformConfig", "RandomTransform"]
