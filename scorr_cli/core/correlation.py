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

import math

import torch
import torch.nn.functional as F

from scorr_cli.core.geometry import coords_grid, pixel_sample, resize

CORR_IMPLS: tuple[str, ...] = ("auto", "torch", "fused")
_FUSED_STATE: dict[str, object] = {}


def fused_lookup_available() -> bool:
    """Whether the Triton kernel can be imported (needs ``triton``; checked once)."""
    if "ok" not in _FUSED_STATE:
        try:
            from scorr_cli.core.kernels import corr_triton  # noqa: F401
            _FUSED_STATE["ok"] = True
        except Exception as exc:  # ImportError, or a triton that fails on this machine
            _FUSED_STATE["ok"] = False
            _FUSED_STATE["why"] = f"{type(exc).__name__}: {exc}"
    return bool(_FUSED_STATE["ok"])


def use_fused_lookup(impl: str, f_driving: torch.Tensor, f_source: torch.Tensor) -> bool:
    """``auto``: the kernel on CUDA when nothing needs a gradient through the volume."""
    if impl not in CORR_IMPLS:
        raise ValueError(f"unknown correlation implementation {impl!r}; expected one of {', '.join(CORR_IMPLS)}")
    if impl == "torch":
        return False
    if impl == "fused":
        if not fused_lookup_available():
            raise RuntimeError(f"the fused correlation lookup needs triton ({_FUSED_STATE.get('why')})")
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
        self._pooled_driving: dict[int, torch.Tensor] = {}
        self._source_levels: list[torch.Tensor] = []

    def _source_pyramid(self, pool: int) -> list[torch.Tensor]:
        """Volume for driving positions pooled by ``pool``, with its source-side pyramid."""
        if pool not in self._pyramids:
            fd = self.f_driving if pool == 1 else F.avg_pool2d(self.f_driving, pool, stride=pool)
            pyramid = [correlation_volume(fd, self.f_source)]
            for _ in range(self.levels - 1):
                pyramid.append(F.avg_pool2d(pyramid[-1], 2, stride=2))
            self._pyramids[pool] = pyramid
        return self._pyramids[pool]

    def _fused_lookup(self, pool: int, coords: torch.Tensor) -> torch.Tensor:
        """The same windows as :meth:`sample` on :meth:`_source_pyramid`, without any volume."""
        from scorr_cli.core.kernels.corr_triton import corr_lookup

        if not self._source_levels:
            # Pooling the volume over source positions == correlating with pooled source features.
            self._source_levels = [self.f_source]
            for _ in range(self.levels - 1):
                self._source_levels.append(F.avg_pool2d(self._source_levels[-1], 2, stride=2))
        if pool not in self._pooled_driving:
            self._pooled_driving[pool] = self.f_driving if pool == 1 else F.avg_pool2d(self.f_driving, pool, stride=pool)
        return corr_lookup(self._pooled_driving[pool], self._source_levels, coords, self.radius)

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
        """Correlation features for a level whose flow (pixel units of that level) is ``flow``."""
        b, _, s_i, _ = flow.shape
        s = self.size
        if s_i <= s:
            factor = s // s_i
            coords = (flow + coords_grid(b, s_i, s_i, flow.dtype, flow.device)) * factor
            return self._lookup(factor, coords)
        # Finer than the volume: look up at the volume's resolution and resize back.
        small = resize(flow, s) * (s / s_i)
        coords = small + coords_grid(b, s, s, flow.dtype, flow.device)
        return resize(self._lookup(1, coords), s_i)
