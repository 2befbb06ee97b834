"""Unit tests of the core networks: shapes, parameter budgets, gradients, ablations, engine caching."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from scorr_cli.core.config import ModelConfig, preset, tiny
from scorr_cli.core.engine import AnimationEngine
from scorr_cli.core.model import MRFA
from scorr_cli.core.transfer import TransferOptions, convex_hull_area, transfer_keypoints


def _inputs(cfg: ModelConfig, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    s = cfg.image_size
    return torch.rand(batch, 3, s, s, generator=g), torch.rand(batch, 3, s, s, generator=g)


def _tiny(**changes) -> ModelConfig:
    cfg = tiny()
    for key, value in changes.items():
        if "." in key:
            sub, attr = key.split(".")
            setattr(getattr(cfg, sub), attr, value)
        else:
            setattr(cfg, key, value)
    return cfg


# Parameter counts of the authors' models (docs/ARCHITECTURE.md §1: inference, no VGG).
@pytest.mark.parametrize("prior,prior_only,background,expected", [
    ("mtia", False, False, 114_339_206),
    ("tpsm", False, False, 113_353_156),
    ("fomm", False, False, 116_209_336),
    ("mtia", True, False, 93_858_469),
    ("mtia", False, True, 114_339_206 + 11_188_998),
])
def test_parameter_budget_matches_authors(prior, prior_only, background, expected):
    cfg = ModelConfig(prior=prior, background=background)
    cfg.refiner.prior_only = prior_only
    model = MRFA(cfg)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_background_predictor_width_is_its_own_setting():
    """The background ResNet-18 keeps the authors' width whatever the tpsm prior's width; a lite model
    can ask for a narrower one (width 32: a quarter of the parameters)."""
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    cfg = ModelConfig(prior="tpsm", background=True)
    cfg.tpsm.width = 32
    assert count(MRFA(cfg).bg_predictor) == 11_188_998
    narrow = ModelConfig(background=True, background_width=32)
    assert count(MRFA(narrow).bg_predictor) == 2_805_126
    assert ModelConfig.from_dict(narrow.to_dict()).background_width == 32


@pytest.mark.parametrize("prior", ["mtia", "tpsm", "fomm"])
def test_forward_shapes_every_prior(prior):
    cfg = _tiny(prior=prior)
    model = MRFA(cfg).eval()
    src, drv = _inputs(cfg)
    with torch.no_grad():
        out = model(src, drv)
    s, p = cfg.image_size, cfg.prior_size
    assert out.prediction.shape == (2, 3, s, s)
    assert out.refiner.warped.shape == (2, 3, s, s)
    assert out.dense["deformation"].shape == (2, p, p, 2)
    assert out.dense["occlusion"].shape == (2, 1, p, p)
    assert [v.shape[-1] for v in out.refiner.visibility] == list(cfg.level_sizes)
    assert [f.shape[1:] for f in out.refiner.flows] == [(2, n, n) for n in cfg.level_sizes]
    assert out.refiner.occlusion_strip().shape == (2, 1, s, s * (len(cfg.level_sizes) + 1))
    kp = model.detect(src)
    k = cfg.num_kp * (cfg.tpsm.points_per_tps if prior == "tpsm" else 1)
    assert kp["kp"].shape == (2, k, 2)
    assert ("jacobian" in kp) == (prior != "tpsm")
    assert torch.isfinite(out.prediction).all() and 0 <= out.prediction.min() and out.prediction.max() <= 1


@pytest.mark.parametrize("prior,background,prior_only", [("mtia", True, False), ("tpsm", False, False),
                                                         ("fomm", False, False), ("mtia", False, True)])
def test_gradients_reach_every_trainable_parameter(prior, background, prior_only):
    cfg = _tiny(prior=prior, background=background)
    cfg.refiner.prior_only = prior_only
    model = MRFA(cfg).train()
    # Identity-initialised heads (jacobian, bg affine) get gradients only once they are not exactly
    # at their init through a zero-weight path; perturb every parameter slightly.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 1e-2)
    src, drv = _inputs(cfg)
    out = model(src, drv)
    kp = out.kp_driving
    loss = (out.prediction - drv).abs().mean() + kp["kp"].abs().mean()
    if "jacobian" in kp:
        loss = loss + kp["jacobian"].abs().mean()
    if background:
        loss = loss + out.dense["bg_affine"].abs().mean()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    assert not missing, f"no gradient for {missing[:5]}"


def _run(cfg: ModelConfig, seed: int = 0):
    torch.manual_seed(seed)
    model = MRFA(cfg).eval()
    src, drv = _inputs(cfg)
    with torch.no_grad():
        return model, model(src, drv)


def test_ablation_no_flow_update_keeps_prior_flow():
    model, out = _run(_tiny(**{"refiner.flow_update": False}))
    _, full = _run(_tiny())
    dense = out.dense["deformation"]
    s = model.cfg.prior_size
    from scorr_cli.core.geometry import coords_grid, resize
    prior_flow = (s - 1) * (dense.permute(0, 3, 1, 2) + 1) / 2 - coords_grid(2, s, s)
    for size, flow in zip(model.cfg.level_sizes, out.refiner.flows):
        torch.testing.assert_close(flow, resize(prior_flow, size) * (size / s), atol=1e-5, rtol=0)
    assert not torch.allclose(full.prediction, out.prediction)


def test_skipped_finest_updates_reuse_the_coarser_refinement():
    """skip_finest_updates=N: the updater runs on the coarse levels only; each skipped level's flow is the
    level below it refined, upsampled (x2 in size and in pixels), and the prediction changes."""
    torch.manual_seed(0)
    full_model = MRFA(_tiny()).eval()
    calls = []
    full_model.decoder.refine.register_forward_hook(lambda *a: calls.append(1))
    skip = MRFA(_tiny(**{"refiner.skip_finest_updates": 2})).eval()
    skip.load_state_dict(full_model.state_dict())
    skip.decoder.refine.register_forward_hook(lambda *a: calls.append(2))
    src, drv = _inputs(full_model.cfg)
    with torch.no_grad():
        full, out = full_model(src, drv), skip(src, drv)
    n = len(full_model.cfg.level_sizes)
    assert calls.count(1) == n and calls.count(2) == n - 2
    for i in range(n - 2):  # the levels that still run the updater are untouched
        torch.testing.assert_close(out.refiner.flows[i], full.refiner.flows[i])
    s = skip.cfg.prior_size
    from scorr_cli.core.geometry import coords_grid, resize
    prior_flow = (s - 1) * (out.dense["deformation"].permute(0, 3, 1, 2) + 1) / 2 - coords_grid(2, s, s)
    residual = out.refiner.flows[n - 3] - resize(prior_flow, skip.cfg.level_sizes[n - 3]) * (skip.cfg.level_sizes[n - 3] / s)
    for k in (n - 2, n - 1):
        residual = 2 * torch.nn.functional.interpolate(residual, scale_factor=2.0, mode="bilinear", align_corners=True)
        size = skip.cfg.level_sizes[k]
        torch.testing.assert_close(out.refiner.flows[k], resize(prior_flow, size) * (size / s) + residual,
                                   atol=1e-5, rtol=0)
    assert (full.prediction - out.prediction).abs().max() > 1e-3
    with pytest.raises(ValueError, match="skip_finest_updates must be 0..6"):
        _tiny(**{"refiner.skip_finest_updates": 7}).__post_init__()


def test_ablation_no_occlusion_update_keeps_prior_occlusion():
    model, out = _run(_tiny(**{"refiner.occlusion_update": False}))
    from scorr_cli.core.geometry import resize
    for size, vis in zip(model.cfg.level_sizes, out.refiner.visibility):
        torch.testing.assert_close(vis, torch.sigmoid(resize(out.dense["occlusion"], size)), atol=1e-6, rtol=0)


def test_ablation_no_warped_source_feature_removes_context():
    model, out = _run(_tiny(**{"refiner.warped_source_feature": False}))
    assert not hasattr(model.decoder, "to_context")
    assert not hasattr(model.decoder.refine, "convc1")
    assert model.decoder.refine.conv1.in_channels == model.cfg.refiner.motion_dim
    assert torch.isfinite(out.prediction).all()


def test_ablation_no_source_image_structure_ignores_image():
    cfg = _tiny(**{"refiner.source_image": False})
    torch.manual_seed(0)
    model = MRFA(cfg).eval()
    assert model.decoder.kp_img.encoder.down_blocks[0].conv.in_channels == cfg.num_kp
    kp = torch.rand(1, cfg.num_kp, 2) * 2 - 1
    a = model.decoder.structure_source(kp, torch.zeros(1, 3, cfg.prior_size, cfg.prior_size))
    b = model.decoder.structure_source(kp, torch.ones(1, 3, cfg.prior_size, cfg.prior_size))
    torch.testing.assert_close(a, b)
    full = MRFA(_tiny()).eval()
    c = full.decoder.structure_source(kp, torch.zeros(1, 3, cfg.prior_size, cfg.prior_size))
    d = full.decoder.structure_source(kp, torch.ones(1, 3, cfg.prior_size, cfg.prior_size))
    assert not torch.allclose(c, d)


def test_prior_only_has_no_refiner_and_skips_channel_blocks():
    model, out = _run(_tiny(**{"refiner.prior_only": True}))
    assert not hasattr(model.decoder, "corr_enc") and not hasattr(model.decoder, "pos_embedding")
    assert out.refiner.flows == []
    assert out.refiner.occlusion_strip().shape[-1] == model.cfg.image_size * len(model.cfg.level_sizes)


def test_correlation_radius_and_levels_are_configurable():
    cfg = _tiny(**{"refiner.corr_levels": 3, "refiner.corr_radius": 2})
    model, out = _run(cfg)
    assert model.decoder.corr_enc.convc1.in_channels == 3 * 25
    assert torch.isfinite(out.prediction).all()


def test_engine_cached_batches_equal_plain_forward():
    cfg = tiny()
    torch.manual_seed(0)
    model = MRFA(cfg).eval()
    src, _ = _inputs(cfg, batch=1)
    drv = _inputs(cfg, batch=5, seed=1)[1]
    engine = AnimationEngine(model, "cpu")
    for mode in ("absolute", "relative"):
        opts = TransferOptions(mode=mode)
        state = engine.prepare(src)
        batched = engine.animate(state, drv, opts).prediction
        whole = AnimationEngine(model, "cpu", render_chunk=None)  # one forward for the whole batch
        out = whole.animate(whole.prepare(src), drv, opts)
        torch.testing.assert_close(out.prediction, batched, atol=1e-5, rtol=0)
        assert len(out.refiner.flows) == len(engine.animate(state, drv, opts).refiner.flows)
        # Plain per-frame forward without any caching, as the authors' demo does it.
        with torch.no_grad():
            kp_s = model.detect(src)
            kp_ref = model.detect(drv[:1])
            for t in range(len(drv)):
                kp_d = model.detect(drv[t:t + 1])
                kp = transfer_keypoints(kp_s, kp_d, kp_ref, opts)
                single = model.animate(model.prepare_source(src), kp).prediction
                torch.testing.assert_close(batched[t:t + 1], single, atol=1e-5, rtol=0)


def test_folding_batchnorm_keeps_the_frames_and_leaves_a_lent_model_alone():
    """fold_batchnorm turns every conv → BN pair into one conv with trained-looking (non-trivial) running
    statistics and gives the same frames to ~1e-5; an engine that owns its model folds it in fp32, one that
    was lent the model does not touch it. Folding with the wrong sign of the mean, or without the eps,
    moves the frames by far more than the tolerance."""
    from scorr_cli.core.blocks import fold_batchnorm

    cfg = tiny()
    torch.manual_seed(0)
    model = MRFA(cfg).eval()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 2 + 0.05)
                m.weight.copy_(1 + torch.randn(m.num_features, generator=g) * 0.2)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    norms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    src, _ = _inputs(cfg, batch=1)
    drv = _inputs(cfg, batch=3, seed=1)[1]
    lent = AnimationEngine(model, "cpu")
    want = lent.animate(lent.prepare(src), drv).prediction
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == norms  # untouched
    owned = AnimationEngine(copy.deepcopy(model), "cpu", owns_model=True)
    left = sum(isinstance(m, torch.nn.BatchNorm2d) for m in owned.model.modules())
    assert 0 < left < norms / 2  # only the pre-activation norms (before a ReLU, not after a conv) stay
    got = owned.animate(owned.prepare(src), drv).prediction
    torch.testing.assert_close(got, want, atol=2e-5, rtol=0)
    assert fold_batchnorm(owned.model) == 0  # nothing left to fold


def test_reconstruction_forward_equals_absolute_animation():
    cfg = tiny()
    torch.manual_seed(0)
    model = MRFA(cfg).eval()
    src, drv = _inputs(cfg, batch=2)
    with torch.no_grad():
        full = model(src, drv).prediction
        prepared = model.prepare_source(src)
        anim = model.animate(prepared, model.detect(drv)).prediction
    torch.testing.assert_close(full, anim)


def test_relative_transfer_math():
    kp_s = {"kp": torch.tensor([[[0.0, 0.0], [0.5, 0.0], [0.0, 0.5]]]),
            "jacobian": torch.eye(2).repeat(1, 3, 1, 1) * 2}
    kp_ref = {"kp": torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]]), "jacobian": torch.eye(2).repeat(1, 3, 1, 1)}
    rot = torch.tensor([[0.0, -1.0], [1.0, 0.0]])
    kp_d = {"kp": kp_ref["kp"] + 0.2, "jacobian": rot.repeat(1, 3, 1, 1)}
    out = transfer_keypoints(kp_s, kp_d, kp_ref, TransferOptions("relative", adapt_scale=True))
    # Source hull is half the size of the reference hull -> motion scaled by 0.5.
    torch.testing.assert_close(out["kp"], kp_s["kp"] + 0.1)
    torch.testing.assert_close(out["jacobian"], (rot @ torch.eye(2) * 2).repeat(1, 3, 1, 1))
    out = transfer_keypoints(kp_s, kp_d, kp_ref, TransferOptions("relative", adapt_scale=False))
    torch.testing.assert_close(out["kp"], kp_s["kp"] + 0.2)
    assert transfer_keypoints(kp_s, kp_d, kp_ref, TransferOptions("absolute"))["kp"] is kp_d["kp"]


def test_relative_transfer_without_jacobians_works_for_tpsm():
    cfg = _tiny(prior="tpsm")
    model = MRFA(cfg).eval()
    engine = AnimationEngine(model, "cpu")
    src, drv = _inputs(cfg)
    state = engine.prepare(src[:1])
    out = engine.animate(state, drv, TransferOptions("relative", adapt_scale=True, relative_jacobian=True))
    assert out.prediction.shape == (2, 3, cfg.image_size, cfg.image_size)


def test_convex_hull_area():
    square = [[0, 0], [2, 0], [2, 2], [0, 2], [1, 1], [0.5, 1.5]]
    assert convex_hull_area(square) == pytest.approx(4.0)
    circle = [[math.cos(t), math.sin(t)] for t in torch.linspace(0, 2 * math.pi, 361)[:-1].tolist()]
    assert convex_hull_area(circle) == pytest.approx(math.pi, rel=1e-3)
    assert convex_hull_area([[0, 0], [1, 1], [2, 2]]) == 0.0


def test_config_round_trip_and_validation():
    for name in ("vox", "celebvhq", "lite", "tiny"):
        cfg = preset(name)
        assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown model config key"):
        ModelConfig.from_dict({"refiner": {"radius": 3}})
    with pytest.raises(ValueError, match="unknown prior"):
        ModelConfig(prior="raft")


def test_correlation_levels_equal_pooling_the_full_volume():
    """scorr correlates pooled driving features; the authors pool the full volume over driving axes."""
    import torch.nn.functional as F

    from scorr_cli.core.correlation import CorrelationLookup

    g = torch.Generator().manual_seed(0)
    b, c, s = 2, 8, 16
    fd, fs = torch.randn(b, c, s, s, generator=g), torch.randn(b, c, s, s, generator=g)
    full = torch.einsum("bci,bcj->bij", fs.flatten(2), fd.flatten(2)) / math.sqrt(c)  # b × src × drv
    lookup = CorrelationLookup(fd, fs, levels=2, radius=2)
    for pool in (1, 2, 4):
        # Authors: (B·src)×1×s×s over driving positions, pooled, then driving positions moved to the batch.
        vol = F.avg_pool2d(full.reshape(b * s * s, 1, s, s), pool, stride=pool)
        sd = s // pool
        ref = vol.view(b, s * s, sd * sd).transpose(1, 2).reshape(b * sd * sd, 1, s, s)
        ours = lookup._source_pyramid(pool)
        torch.testing.assert_close(ours[0], ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours[1], F.avg_pool2d(ref, 2, stride=2), atol=1e-5, rtol=1e-5)
    # And the features a level samples have the documented layout.
    flow = torch.zeros(b, 2, s // 2, s // 2)
    assert lookup(flow).shape == (b, 2 * 25, s // 2, s // 2)
    assert lookup(torch.zeros(b, 2, 2 * s, 2 * s)).shape == (b, 50, 2 * s, 2 * s)


@pytest.mark.parametrize("kernel,out_channels,bias", [(3, 2, True), (3, 1, False), (7, 3, True)])
def test_narrow_conv_equals_convolution_values_and_gradients(kernel, out_channels, bias):
    """Inference takes the matmul-and-shifted-adds path (float rounding away from the convolution);
    anything autograd records takes the ordinary convolution, bit for bit, gradients included: the
    shifted adds' backward costs a training step 14% (zero-filled copies of the whole tap tensor)."""
    from scorr_cli.core.blocks import NarrowConv2d

    torch.manual_seed(0)
    conv = NarrowConv2d(6, out_channels, kernel, bias=bias)
    # Odd, non-square sizes and a channel-sliced (non-contiguous) batch, as the refine heads see it.
    base = torch.randn(2, 9, 11, 13, requires_grad=True)
    x = base[:, 1:7]
    assert not x.is_contiguous()
    ref = torch.nn.functional.conv2d(x, conv.weight, conv.bias, padding=kernel // 2)
    with torch.no_grad():
        fast = conv(x)
    assert fast.shape == ref.shape == (2, out_channels, 11, 13)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    y = conv(x)
    assert torch.equal(y, ref)
    g = torch.randn_like(y)
    params = [base, conv.weight] + ([conv.bias] if bias else [])
    grads, ref_grads = torch.autograd.grad(y, params, g), torch.autograd.grad(ref, params, g)
    for a, b in zip(grads, ref_grads):
        assert torch.equal(a, b)
