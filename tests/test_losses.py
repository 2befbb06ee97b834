"""VGG-19 layout, training losses, SSIM and the equivariance transform."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from scorr_cli.core.geometry import make_coordinate_grid
from scorr_cli.core.losses import (ImagePyramid, LossConfig, ReconstructionLoss, background_loss,
                                   equivariance_losses, ssim)
from scorr_cli.core.transforms import RandomTransform, TransformConfig
from scorr_cli.checkpoints.vgg import load_vgg19_weights
from scorr_cli.core.vgg import build_vgg19
from scorr_cli.errors import MissingWeightsError

# torchvision vgg19().features: indices of the 16 convolutions (pools sit at 4, 9, 18, 27, 36).
TV_CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]


def _expected_conv_shapes() -> dict[str, tuple[int, ...]]:
    """VGG-19 (configuration E): blocks of 2, 2, 4, 4, 4 convs with 64, 128, 256, 512, 512 channels."""
    widths = [64] * 2 + [128] * 2 + [256] * 4 + [512] * 4 + [512] * 4
    shapes: dict[str, tuple[int, ...]] = {}
    cin = 3
    for idx, cout in zip(TV_CONV_INDICES, widths):
        shapes[f"features.{idx}.weight"] = (cout, cin, 3, 3)
        shapes[f"features.{idx}.bias"] = (cout,)
        cin = cout
    return shapes


@pytest.fixture(scope="module")
def vgg():
    return build_vgg19(None, seed=0)


def test_vgg_state_dict_matches_torchvision_layout(vgg):
    state = vgg.state_dict()
    expected = _expected_conv_shapes()
    assert set(state) == set(expected)
    assert {k: tuple(v.shape) for k, v in state.items()} == expected
    assert not any(p.requires_grad for p in vgg.parameters())


def test_vgg_loads_official_and_authors_spellings(vgg, tmp_path):
    ref = {k: torch.randn(shape) for k, shape in _expected_conv_shapes().items()}
    official = dict(ref, **{"classifier.0.weight": torch.zeros(4, 4), "classifier.0.bias": torch.zeros(4)})
    path = tmp_path / "vgg19-dcbbe2e5.pth"
    torch.save(official, path)
    a = build_vgg19(load_vgg19_weights(path))
    assert all(torch.equal(a.state_dict()[k], ref[k]) for k in ref)
    # The authors' checkpoints: module.vgg.slice<n>.<i>.* with torchvision indices, up to layer 28.
    authors = {f"module.vgg.slice1.{k.split('.', 1)[1]}": v for k, v in ref.items() if int(k.split(".")[1]) < 30}
    b = build_vgg19(authors)
    assert torch.equal(b.features[28].weight, ref["features.28.weight"])
    with pytest.raises(MissingWeightsError):
        build_vgg19({"features.0.weight": ref["features.0.weight"]})
    with pytest.raises(MissingWeightsError, match="download"):
        load_vgg19_weights(tmp_path / "absent.pth")
    # Random backend is a fixed function of the seed.
    assert torch.equal(build_vgg19(None, seed=0).features[5].weight, vgg.features[5].weight)
    assert not torch.equal(build_vgg19(None, seed=1).features[5].weight, vgg.features[5].weight)


def test_vgg_feature_shapes(vgg):
    feats = vgg(torch.rand(1, 3, 32, 32))
    assert [tuple(f.shape[1:]) for f in feats] == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4),
                                                   (512, 2, 2)]
    assert len(vgg(torch.rand(1, 3, 8, 8))) == 4  # relu5_1 would pool 8² below one pixel


def test_pyramid_keys_and_sizes():
    pyr = ImagePyramid(LossConfig().scales)
    assert set(pyr.state_dict()) == {f"downs.{k}.weight" for k in ("1", "0-5", "0-25", "0-125")}
    out = pyr(torch.rand(2, 3, 64, 64))
    assert [tuple(v.shape[-2:]) for v in out.values()] == [(64, 64), (32, 32), (16, 16), (8, 8)]


def test_perceptual_zero_for_identical_positive_otherwise_and_differentiable(vgg):
    loss = ReconstructionLoss(LossConfig(perceptual_backend="random", pixel=1.0, ssim=1.0), vgg)
    gen = torch.Generator().manual_seed(0)
    gt = torch.rand(1, 3, 32, 32, generator=gen)
    same = loss(gt.clone(), gt)
    assert set(same) == {"perceptual", "pixel", "ssim"}
    assert all(abs(v.item()) < 1e-5 for v in same.values())
    pred = (gt + 0.1 * torch.randn(gt.shape, generator=gen)).clamp(0, 1).requires_grad_(True)
    diff = loss(pred, gt)
    assert all(v.item() > 0 for v in diff.values())
    diff["perceptual"].backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0


def test_loss_config():
    assert LossConfig.for_prior("tpsm").equivariance_jacobian == 0
    assert LossConfig.for_prior("mtia").equivariance_jacobian == 10
    cfg = LossConfig(perceptual_backend="random", pixel=2.0)
    assert LossConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError):
        LossConfig(perceptual_backend="lpips")
    with pytest.raises(ValueError):
        ReconstructionLoss(LossConfig(), None)  # vgg19 backend without a network
    assert "perceptual" not in ReconstructionLoss(LossConfig(perceptual_backend="none", pixel=1.0))(
        torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16))


def _ssim_numpy(x: np.ndarray, y: np.ndarray) -> float:
    """Independent reference: 2-D Gaussian window over every valid 11×11 patch, float64."""
    r = np.arange(11) - 5.0
    g = np.exp(-(r**2) / (2 * 1.5**2))
    win = np.outer(g, g)
    win /= win.sum()
    c1, c2 = 0.01**2, 0.03**2
    vals = []
    for c in range(x.shape[0]):
        px = np.lib.stride_tricks.sliding_window_view(x[c], (11, 11))
        py = np.lib.stride_tricks.sliding_window_view(y[c], (11, 11))
        mx = (px * win).sum((-1, -2))
        my = (py * win).sum((-1, -2))
        vx = (px**2 * win).sum((-1, -2)) - mx**2
        vy = (py**2 * win).sum((-1, -2)) - my**2
        cxy = (px * py * win).sum((-1, -2)) - mx * my
        m = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
        vals.append(m.mean())
    return float(np.mean(vals))


def test_ssim_properties_and_reference():
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 40, 48, generator=gen)
    assert torch.allclose(ssim(x, x, reduction="none"), torch.ones(2), atol=1e-6)
    noisy = [(x + s * torch.randn(x.shape, generator=gen)).clamp(0, 1) for s in (0.05, 0.1, 0.3)]
    scores = [ssim(x, n).item() for n in noisy]
    assert scores[0] > scores[1] > scores[2]
    y = noisy[1]
    got = ssim(x, y, reduction="none")
    for i in range(2):
        assert abs(got[i].item() - _ssim_numpy(x[i].double().numpy(), y[i].double().numpy())) < 1e-4
    # bf16 inputs / autocast are computed in float32 (variances cancel badly in bf16).
    assert abs(ssim(x.bfloat16(), y.bfloat16()).item() - ssim(x, y).item()) < 2e-3
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.allclose(ssim(x, y, reduction="none"), got)


def _blob(centres: torch.Tensor, size: int, sigma_px: float = 2.5) -> torch.Tensor:
    """B×3×size×size images with a Gaussian blob at normalised (x, y) ``centres`` (B×2)."""
    grid = make_coordinate_grid(size, size)
    s = sigma_px * 2 / (size - 1)
    d2 = ((grid[None] - centres[:, None, None, :]) ** 2).sum(-1)
    return torch.exp(-0.5 * d2 / s**2)[:, None].expand(-1, 3, -1, -1).contiguous()


def _centroid(img: torch.Tensor) -> torch.Tensor:
    """Intensity-weighted centre (normalised (x, y)) of channel 0: B×1×2 — an equivariant detector."""
    h, w = img.shape[-2:]
    wgt = img[:, 0].clamp(min=0) ** 2
    grid = make_coordinate_grid(h, w, img.dtype)
    return ((wgt[..., None] * grid).sum((1, 2)) / wgt.sum((1, 2))[..., None])[:, None]


def test_transform_identity():
    t = RandomTransform.sample(2, TransformConfig(sigma_affine=0.0, sigma_tps=0.0))
    pts = torch.rand(2, 7, 2) * 2 - 1
    assert torch.allclose(t.warp_coordinates(pts), pts)
    assert torch.allclose(t.jacobian(pts), torch.eye(2).expand(2, 7, 2, 2))
    img = _blob(torch.zeros(2, 2), 32, sigma_px=6)
    # align_corners=False with a pixel-centre grid is a sub-pixel zoom; smooth images barely change.
    err = (t.transform_frame(img) - img).abs()
    assert err.max() < 0.03
    assert torch.equal(RandomTransform.identity(2).warp_coordinates(pts), pts)


def test_transform_is_seeded():
    a = RandomTransform.sample(3, generator=torch.Generator().manual_seed(5))
    b = RandomTransform.sample(3, generator=torch.Generator().manual_seed(5))
    c = RandomTransform.sample(3, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a.theta, b.theta) and torch.equal(a.control_params, b.control_params)
    assert not torch.equal(a.theta, c.theta)


def test_warp_coordinates_matches_frame_warp():
    size = 64
    gen = torch.Generator().manual_seed(0)
    t = RandomTransform.sample(4, TransformConfig(), generator=gen)
    centres = torch.tensor([[0.0, 0.0], [0.3, -0.2], [-0.25, 0.35], [0.1, 0.3]])
    warped = t.transform_frame(_blob(centres, size))
    found = _centroid(warped)  # where the blob went: T(found) must be the original centre
    back = t.warp_coordinates(found)[:, 0]
    pixel = 2 / (size - 1)
    assert (back - centres).abs().max() < pixel
    assert (found[:, 0] - centres).abs().max() > pixel  # the warp did move the blobs


def test_jacobian_matches_finite_differences():
    t = RandomTransform.sample(2, TransformConfig(sigma_affine=0.2, sigma_tps=0.05),
                               generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    pts = (torch.rand(2, 5, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 1.6 - 0.8)
    jac = t.jacobian(pts)
    eps = 1e-6
    fd = torch.empty_like(jac)
    for j in range(2):
        dp = torch.zeros_like(pts)
        dp[..., j] = eps
        fd[..., :, j] = (t.warp_coordinates(pts + dp) - t.warp_coordinates(pts - dp)) / (2 * eps)
    assert torch.allclose(jac, fd, atol=1e-6)


def test_equivariance_loss_zero_for_equivariant_detector():
    size = 64
    t = RandomTransform.sample(4, generator=torch.Generator().manual_seed(4))
    driving = _blob(torch.tensor([[0.0, 0.0], [0.3, -0.2], [-0.25, 0.35], [0.1, 0.3]]), size)

    def blob_detector(img: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"kp": _centroid(img)}

    def constant_detector(img: torch.Tensor) -> dict[str, torch.Tensor]:
        b = img.shape[0]
        return {"kp": torch.full((b, 1, 2), 0.2), "jacobian": torch.eye(2).expand(b, 1, 2, 2)}

    good = equivariance_losses(blob_detector, driving, blob_detector(driving), 1.0, 0.0, t)
    bad = equivariance_losses(constant_detector, driving, constant_detector(driving), 1.0, 1.0, t)
    assert good["equivariance_value"].item() < 0.25 * 2 / (size - 1)  # a quarter pixel
    assert bad["equivariance_value"].item() > 4 * good["equivariance_value"].item()
    assert bad["equivariance_jacobian"].item() > 0
    same = equivariance_losses(constant_detector, driving, constant_detector(driving), 1.0, 1.0,
                               RandomTransform.identity(4))
    assert all(v.item() < 1e-6 for v in same.values())
    assert equivariance_losses(constant_detector, driving, {}, 0.0, 0.0, t) == {}


def test_equivariance_gradient_reaches_detector():
    offset = torch.zeros(1, 1, 2, requires_grad=True)
    jac = torch.eye(2).repeat(1, 1, 1, 1).requires_grad_(True)

    def detector(img: torch.Tensor) -> dict[str, torch.Tensor]:
        b = img.shape[0]
        return {"kp": _centroid(img) + offset, "jacobian": jac.expand(b, 1, 2, 2) * 1.1}

    driving = _blob(torch.tensor([[0.1, 0.1], [-0.2, 0.0]]), 32)
    t = RandomTransform.sample(2, generator=torch.Generator().manual_seed(0))
    losses = equivariance_losses(detector, driving, detector(driving), 10.0, 10.0, t)
    sum(losses.values()).backward()
    assert offset.grad is not None and jac.grad is not None and jac.grad.abs().sum() > 0


def test_background_loss():
    a = torch.eye(3).repeat(2, 1, 1)
    a[:, 0, 2] = 0.3
    a[:, 1, 0] = 0.1
    assert background_loss(a, torch.linalg.inv(a), 10.0).item() < 1e-6
    assert background_loss(a, a, 10.0).item() > 0
    assert math.isclose(background_loss(a, a, 10.0).item(), 10 * background_loss(a, a, 1.0).item(), rel_tol=1e-6)
