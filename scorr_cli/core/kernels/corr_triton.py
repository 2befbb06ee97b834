"""Fused correlation lookup in Triton: correlate on the fly instead of building the volume.

The reference (:class:`scorr_cli.core.correlation.CorrelationLookup`) builds a ``(h·w)×(H·W)``
volume per frame (64 MiB at 64², 8.6 GFLOP with 256 channels), pools it and samples a
``(2r+1)²`` window per level with ``grid_sample``. Only ``L·(2r+1)²·4`` volume entries per driving
position are ever read, so this kernel computes exactly those dot products: bilinear weights times
``⟨f_d[i], f_s[corner]⟩ / √C`` with zero padding, over a source pyramid that is pooled *features*
(the volume is linear in ``f_s``, so pooling it over source positions equals correlating with pooled
source features). Inference only (no backward): callers use it when no gradient is needed.

Importing this module needs ``triton``; with ``TRITON_INTERPRET=1`` it runs on CPU tensors too
(that is how it is tested without a GPU).
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl


@triton.jit
def _corr_window_kernel(fd_ptr, fs_ptr, coords_ptr, out_ptr,
                        C, N, H, W, scale, norm, chan0, out_chans,
                        R: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr):
    """One program: BLOCK_N driving positions × one window offset of one level of one batch item."""
    pid_n = tl.program_id(0)
    k = tl.program_id(1)
    b = tl.program_id(2)
    # RAFT's transposed window layout: the slow index is the x offset, the fast one the y offset.
    ox = (k // (2 * R + 1) - R).to(tl.float32)
    oy = (k % (2 * R + 1) - R).to(tl.float32)

    n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = n < N
    cx = tl.load(coords_ptr + b * 2 * N + n, mask=n_ok, other=0.0).to(tl.float32)
    cy = tl.load(coords_ptr + b * 2 * N + N + n, mask=n_ok, other=0.0).to(tl.float32)
    x = cx * scale + ox
    y = cy * scale + oy
    x0f = tl.floor(x)
    y0f = tl.floor(y)
    wx1 = x - x0f
    wy1 = y - y0f
    wx0 = 1.0 - wx1
    wy0 = 1.0 - wy1
    x0 = x0f.to(tl.int32)
    y0 = y0f.to(tl.int32)
    x1 = x0 + 1
    y1 = y0 + 1
    # Zero padding: a corner outside the map contributes nothing (grid_sample's padding_mode="zeros").
    in_x0 = (x0 >= 0) & (x0 < W)
    in_x1 = (x1 >= 0) & (x1 < W)
    in_y0 = (y0 >= 0) & (y0 < H)
    in_y1 = (y1 >= 0) & (y1 < H)
    m00 = n_ok & in_y0 & in_x0
    m01 = n_ok & in_y0 & in_x1
    m10 = n_ok & in_y1 & in_x0
    m11 = n_ok & in_y1 & in_x1
    i00 = tl.where(m00, y0 * W + x0, 0)
    i01 = tl.where(m01, y0 * W + x1, 0)
    i10 = tl.where(m10, y1 * W + x0, 0)
    i11 = tl.where(m11, y1 * W + x1, 0)

    acc00 = tl.zeros([BLOCK_N], dtype=tl.float32)
    acc01 = tl.zeros([BLOCK_N], dtype=tl.float32)
    acc10 = tl.zeros([BLOCK_N], dtype=tl.float32)
    acc11 = tl.zeros([BLOCK_N], dtype=tl.float32)
    hw = H * W
    fd_base = fd_ptr + b * C * N
    fs_base = fs_ptr + b * C * hw
    c_range = tl.arange(0, BLOCK_C)
    for c0 in range(0, C, BLOCK_C):
        c = c0 + c_range
        c_ok = c < C
        f = tl.load(fd_base + c[:, None] * N + n[None, :], mask=c_ok[:, None] & n_ok[None, :], other=0.0)
        f = f.to(tl.float32)
        rows = fs_base + c[:, None] * hw
        s = tl.load(rows + i00[None, :], mask=c_ok[:, None] & m00[None, :], other=0.0).to(tl.float32)
        acc00 += tl.sum(f * s, axis=0)
        s = tl.load(rows + i01[None, :], mask=c_ok[:, None] & m01[None, :], other=0.0).to(tl.float32)
        acc01 += tl.sum(f * s, axis=0)
        s = tl.load(rows + i10[None, :], mask=c_ok[:, None] & m10[None, :], other=0.0).to(tl.float32)
        acc10 += tl.sum(f * s, axis=0)
        s = tl.load(rows + i11[None, :], mask=c_ok[:, None] & m11[None, :], other=0.0).to(tl.float32)
        acc11 += tl.sum(f * s, axis=0)
    val = (wy0 * (wx0 * acc00 + wx1 * acc01) + wy1 * (wx0 * acc10 + wx1 * acc11)) * norm
    tl.store(out_ptr + b * out_chans * N + (chan0 + k) * N + n, val, mask=n_ok)


BLOCK_N = 64
BLOCK_C = 32


def corr_lookup(f_driving: torch.Tensor, source_levels: list[torch.Tensor], coords: torch.Tensor,
                radius: int) -> torch.Tensor:
    """``B×(L·(2r+1)²)×h×w`` windows around ``coords`` (``B×2×h×w``, pixels of level 0).

    ``f_driving`` is ``B×C×h×w``; ``source_levels[l]`` is the source features average-pooled ``l``
    times (``B×C×H_l×W_l``). The scale ``1/√C`` uses the feature width, as the volume does.
    """
    b, c, h, w = f_driving.shape
    n = h * w
    k = (2 * radius + 1) ** 2
    levels = len(source_levels)
    fd = f_driving.contiguous()
    xy = coords.to(torch.float32).contiguous()
    out = torch.empty(b, levels * k, h, w, device=fd.device, dtype=torch.float32)
    norm = 1.0 / math.sqrt(c)
    grid = (triton.cdiv(n, BLOCK_N), k, b)
    for lvl, fs in enumerate(source_levels):
        fs = fs.to(fd.dtype).contiguous()
        _corr_window_kernel[grid](fd, fs, xy, out, c, n, fs.shape[-2], fs.shape[-1], 1.0 / 2**lvl, norm,
                                  lvl * k, levels * k, R=radius, BLOCK_N=BLOCK_N, BLOCK_C=BLOCK_C)
    return out.to(f_driving.dtype)
