"""MTIA keypoint network: HRNet features -> patch tokens -> transformer with keypoint/jacobian tokens."""

from __future__ import annotations

import math

import torch
from torch import nn

from scorr_cli.core.config import ModelConfig
from scorr_cli.core.priors.hrnet import HRNetFrontEnd


def sine_position_table(h: int, w: int, dim: int, temperature: float = 10000.0,
                        scale: float = 2 * math.pi) -> torch.Tensor:
    """DETR-style 2-D sine table ``1×(h·w)×dim``: first half encodes y, second half x (TokenPose)."""
    area = torch.ones(1, h, w)
    y_embed = area.cumsum(1, dtype=torch.float32)
    x_embed = area.cumsum(2, dtype=torch.float32)
    half = dim // 2
    eps = 1e-6
    y_embed = y_embed / (y_embed[:, -1:, :] + eps) * scale
    x_embed = x_embed / (x_embed[:, :, -1:] + eps) * scale
    dim_t = torch.arange(half, dtype=torch.float32)
    dim_t = temperature ** (2 * (dim_t // 2) / half)
    pos_x = x_embed[:, :, :, None] / dim_t
    pos_y = y_embed[:, :, :, None] / dim_t
    pos_x = torch.stack((pos_x[:, :, :, 0::2].sin(), pos_x[:, :, :, 1::2].cos()), dim=4).flatten(3)
    pos_y = torch.stack((pos_y[:, :, :, 0::2].sin(), pos_y[:, :, :, 1::2].cos()), dim=4).flatten(3)
    pos = torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)
    return pos.flatten(2).permute(0, 2, 1).contiguous()


class Residual(nn.Module):
    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x) + x


class PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.to_qkv = nn.Linear(dim, dim * 3, bias=False)
        self.to_out = nn.Sequential(nn.Linear(dim, dim), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = (t.reshape(b, n, self.heads, d // self.heads).transpose(1, 2)
                   for t in self.to_qkv(x).chunk(3, dim=-1))
        dots = torch.matmul(q, k.transpose(-1, -2)) * self.scale
        out = torch.matmul(dots.softmax(dim=-1), v)
        return self.to_out(out.transpose(1, 2).reshape(b, n, d))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(0.0),
                                 nn.Linear(hidden, dim), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Transformer(nn.Module):
    """Pre-norm transformer; the sine table is re-added to the image tokens before every layer but the first."""

    def __init__(self, dim: int, depth: int, heads: int, mlp_dim: int, num_special_tokens: int):
        super().__init__()
        self.num_special_tokens = num_special_tokens
        self.layers = nn.ModuleList(
            nn.ModuleList([Residual(PreNorm(dim, Attention(dim, heads))),
                           Residual(PreNorm(dim, FeedForward(dim, mlp_dim)))]) for _ in range(depth))

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        n = self.num_special_tokens
        for idx, (attn, ff) in enumerate(self.layers):
            if idx > 0:
                x = torch.cat([x[:, :n], x[:, n:] + pos], dim=1)
            x = ff(attn(x))
        return x


class TokenPose(nn.Module):
    """Keypoint tokens 0..K-1 regress positions, tokens K..2K-1 regress 2×2 jacobians."""

    def __init__(self, feature_size: int, channels: int, num_kp: int, patch_size: int, dim: int, depth: int,
                 heads: int, mlp_ratio: int):
        super().__init__()
        self.patch_size = patch_size
        self.num_kp = num_kp
        grid = feature_size // patch_size
        self.keypoint_token = nn.Parameter(torch.zeros(1, 2 * num_kp, dim))
        self.pos_embedding = nn.Parameter(sine_position_table(grid, grid, dim), requires_grad=False)
        self.patch_to_embedding = nn.Linear(channels * patch_size * patch_size, dim)
        self.transformer = Transformer(dim, depth, heads, dim * mlp_ratio, 2 * num_kp)
        self.mlp_head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 2))
        self.mlp_head_jacobian = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 4))
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.keypoint_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        jac = self.mlp_head_jacobian[1]
        nn.init.zeros_(jac.weight)
        with torch.no_grad():
            jac.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0]))

    def forward(self, feature: torch.Tensor) -> dict[str, torch.Tensor]:
        b, c, h, w = feature.shape
        p = self.patch_size
        # 'b c (h p1) (w p2) -> b (h w) (p1 p2 c)'
        x = feature.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)
        pos = self.pos_embedding.to(x.dtype)
        x = self.patch_to_embedding(x) + pos
        x = torch.cat([self.keypoint_token.to(x.dtype).expand(b, -1, -1), x], dim=1)
        x = self.transformer(x, pos)
        k = self.num_kp
        kp = 2 * torch.sigmoid(self.mlp_head(x[:, :k])) - 1
        jacobian = self.mlp_head_jacobian(x[:, k:2 * k]).view(b, k, 2, 2)
        return {"kp": kp, "jacobian": jacobian}


class MTIAKeypointNetwork(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        m = cfg.mtia
        self.pre_feature = HRNetFrontEnd(m, cfg.num_channels)
        self.transformer = TokenPose(cfg.image_size // 4, self.pre_feature.out_channels, cfg.num_kp, m.patch_size,
                                     m.dim, m.depth, m.heads, m.mlp_ratio)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        # The front end runs in its weights' dtype: bf16 on a CPU with bf16 matrix units (the engine's
        # choice, see bf16_part), the transformer and its position heads always in the input's dtype.
        front = self.pre_feature.conv1.weight.dtype
        return self.transformer(self.pre_feature(image.to(front)).to(image.dtype))

    def bf16_part(self) -> nn.Module:
        """What may run in bf16 where keypoints must stay fp32-accurate: the HRNet front end (keypoints move
        by < 0.1 px at 128² on a real clip, 30% less keypoint time on an AMX CPU). The transformer and its
        regression heads stay fp32: autocasting them too moved keypoints by up to 0.4 px."""
        return self.pre_feature
