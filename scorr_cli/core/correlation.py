"""Structure correlation volume and its RAFT-style pyramid lookup, adapted to coarse-to-fine levels.

The volume compares every driving position with every source position of the structure features
(at the prior resolution, 64² for 256² images): ``⟨f_d[i], f_s[j]⟩ / √C``. Coarse levels use the
volume average-pooled over *driving* positions; lookups happen over *source* positions.

Because the volume is linear in ``f_d``, pooling it over driving positions equals correlating the
average-pooled driving features. scorr computes each level's volume that way, directly in the
layout the lookup needs, instead of building the full volume, transposing it and pooling it as the
authors do: the same numbers (up to float rounding) without copying a 64 MiB-per-frame volume.

On CUDA, when no gradient is needed, a fused Triton kernel (:mod:`scorr_cli.core.kernels.corr_triton`)
goes further and computes only the volume entries the windows read; this module's torch code is its
reference and the path everywhere else (``impl="torch"`` forces it).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from scorr_cli.core.geometry import coords_grid, pixel_sample, resize

CORR_IMPLS: tuple[str, ...] = ("auto", "torch", "fused")


@functools.cache
def _fused_import_error() -> str | None:
    """Why the Triton kernel cannot be imported (needs ``triton``), or None; checked once."""
    try:
        from scorr_cli.core.kernels import corr_triton  # noqa: F401
    except Exception as exc:  # ImportError, or a triton that fails on this machine
        return f"{type(exc).__name__}: {exc}"
    return None


def fused_lookup_available() -> bool:
    return _fused_import_error() is None


def use_fused_lookup(impl: str, f_driving: torch.Tensor, f_source: torch.Tensor) -> bool:
    """``auto``: the kernel on CUDA when nothing needs a gradient through the volume."""
    if impl not in CORR_IMPLS:
        raise ValueError(f"unknown correlation implementation {impl!r}; expected one of {', '.join(CORR_IMPLS)}")
    if impl == "torch":
        return False
    if impl == "fused":
        if not fused_lookup_available():
            raise RuntimeError(f"the fused correlation lookup needs triton ({_fused_import_error()})")
        return True
    needs_grad = torch.is_grad_enabled() and (f_driving.requires_grad or f_source.requires_grad)
    return f_source.is_cuda and not needs_grad and fused_lookup_available()


def correlation_volume(f_driving: torch.Tensor, f_source: torch.Tensor) -> torch.Tensor:
    """``(B·n_drv)×1×h×w``: for every driving position, its correlation with every source position."""
    b, c, hd, wd = f_driving.shape
    h, w = f_source.shape[-2:]
    # Scaling the (small) driving features instead of the (large) volume saves a pass over the volume.
    fd = f_driving.reshape(b, c, hd * wd).transpose(1, 2) * (1.0 / math.sqrt(c))
    return torch.matmul(fd, f_source.reshape(b, c, h * w)).reshape(b * hd * wd, 1, h, w)


def lookup_window(radius: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(2r+1)×(2r+1)×2`` integer offsets in RAFT's transposed layout: x varies slowly, y fast."""
    d = torch.linspace(-radius, radius, 2 * radius + 1, dtype=dtype, device=device)
    dy, dx = torch.meshgrid(d, d, indexing="ij")
    return torch.stack([dy, dx], dim=-1)  # channel 0 (used as x) = slow index, as in RAFT


class CorrelationLookup:
    """Per-level source-side pyramids (built lazily) and window sampling around flow targets."""

    def __init__(self, f_driving: torch.Tensor, f_source: torch.Tensor, levels: int, radius: int,
                 impl: str = "auto"):
        self.f_driving, self.f_source = f_driving, f_source
        self.size = f_source.shape[-1]
        self.levels, self.radius = levels, radius
        self.fused = use_fused_lookup(impl, f_driving, f_source)
        self._pyramids: dict[int, list[torch.Tensor]] = {}
        self._source_levels: list[torch.Tensor] = []

    def _source_pyramid(self, pool: int) -> list[torch.Tensor]:
        """Volume for driving positions pooled by ``pool``, with its source-side pyramid. Pooling the volume
        over source positions equals correlating with pooled source features (it is linear in them): each
        level is correlated directly, which is cheaper than 2×2-pooling the volume's ``h·w`` maps."""
        if pool not in self._pyramids:
            driving = self._driving(pool)
            self._pyramids[pool] = [correlation_volume(driving, f) for f in self._pooled_source()]
        return self._pyramids[pool]

    def _pooled_source(self) -> list[torch.Tensor]:
        if not self._source_levels:
            self._source_levels = self._halvings(self.f_source)
        return self._source_levels

    def _driving(self, pool: int) -> torch.Tensor:
        return self.f_driving if pool == 1 else F.avg_pool2d(self.f_driving, pool, stride=pool)

    def _halvings(self, t: torch.Tensor) -> list[torch.Tensor]:
        """``t`` and its ``levels - 1`` successive 2×2 average poolings."""
        out = [t]
        for _ in range(self.levels - 1):
            out.append(F.avg_pool2d(out[-1], 2, stride=2))
        return out

    def _fused_lookup(self, pool: int, coords: torch.Tensor) -> torch.Tensor:
        """The same windows as :meth:`sample` on :meth:`_source_pyramid`, without any volume."""
        from scorr_cli.core.kernels.corr_triton import corr_lookup

        return corr_lookup(self._driving(pool), self._pooled_source(), coords, self.radius)

    def _lookup(self, pool: int, coords: torch.Tensor) -> torch.Tensor:
        if self.fused:
            return self._fused_lookup(pool, coords)
        return self.sample(self._source_pyramid(pool), coords)

    def sample(self, pyramid: list[torch.Tensor], coords: torch.Tensor) -> torch.Tensor:
        """``coords`` ``B×2×h×w`` in source pixel units of the volume -> ``B×(L·(2r+1)²)×h×w``."""
        b, _, h, w = coords.shape
        r = self.radius
        window = lookup_window(r, coords.dtype, coords.device).view(1, 2 * r + 1, 2 * r + 1, 2)
        centre = coords.permute(0, 2, 3, 1).reshape(b * h * w, 1, 1, 2)
        out = []
        for lvl, vol in enumerate(pyramid):
            sampled = pixel_sample(vol, centre / 2**lvl + window)
            out.append(sampled.view(b, h, w, -1))
        return torch.cat(out, dim=-1).permute(0, 3, 1, 2).contiguous()

    def __call__(self, flow: torch.Tensor) -> torch.Tensor:
        """Correlation features for a level whose flow (pixel units of that level) is ``flow``, at its size."""
        return resize(self.at_most_volume_size(flow), flow.shape[-1])

    def at_most_volume_size(self, flow: torch.Tensor) -> torch.Tensor:
        """The same features, but for a level finer than the volume at the volume's size: a level's flow is
        looked up at the volume's resolution, so the caller may shrink the features (e.g. a 1×1 convolution,
        which commutes with the bilinear resize) before resizing them up.

        Always computed in fp32, also under a CPU's bf16 autocast: the volume is a small share of the
        work, and bf16 sampling, pooling and resizing run slower there than fp32 (and less exactly)."""
        if self.f_driving.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                self.f_driving = self.f_driving.float().contiguous()
                self.f_source = self.f_source.float().contiguous()
                return self._features(flow.float())
        return self._features(flow)

    def _features(self, flow: torch.Tensor) -> torch.Tensor:
        b, _, s_i, _ = flow.shape
        s = self.size
        if s_i <= s:
            factor = s // s_i
            coords = (flow + coords_grid(b, s_i, s_i, flow.dtype, flow.device)) * factor
            return self._lookup(factor, coords)
        # Finer than the volume: look up at the volume's resolution.
        small = resize(flow, s) * (s / s_i)
        coords = small + coords_grid(b, s, s, flow.dtype, flow.device)
        return self._lookup(1, coords)
