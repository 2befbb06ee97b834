"""bf16 inference on a CPU (native bf16: AMX / AVX512-BF16): which precision runs where, and the default
model's frames against fp32 on the example pair. Speed is measured in benchmarks/bench_stages.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from scorr_cli.core import engine as engine_mod
from scorr_cli.core.engine import AnimationEngine, effective_precision
from scorr_cli.core.transfer import TransferOptions

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CPU = torch.device("cpu")


@pytest.mark.parametrize("amx,avx512_bf16,asked,runs", [
    (True, True, "auto", "bf16"), (False, True, "auto", "fp32"), (False, False, "auto", "fp32"),
    (True, True, "bf16", "bf16"), (False, True, "bf16", "bf16"), (False, False, "bf16", "fp32"),
    (True, True, "fp16", "fp32"), (True, True, "fp32", "fp32")])
def test_cpu_runs_bf16_only_with_native_bf16(monkeypatch, amx, avx512_bf16, asked, runs):
    """auto = bf16 only where it was measured to pay (AMX); an explicit bf16 also on AVX512-BF16."""
    monkeypatch.setattr(engine_mod, "cpu_has_amx", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    assert effective_precision(CPU, asked) == runs
    assert effective_precision(torch.device("cuda"), "auto") == "fp32"
    with pytest.raises(ValueError, match="unknown precision"):
        effective_precision(CPU, "int8")


def test_cpu_bf16_frames_stay_close_to_fp32_on_the_default_model(monkeypatch):
    """Keypoints: the bf16 engine runs only the keypoint network's CNN front end in bf16, so they stay within
    0.2 px at 128² of fp32 (autocasting the whole keypoint network moved them by up to 0.4 px on a real clip),
    their jacobians within 1e-2;
    the bf16 frames differ from fp32 by well under 1/255 on average (and do differ: bf16 convolutions ran).
    The caller's model keeps its fp32 weights."""
    from scorr_cli.checkpoints import load_checkpoint, resolve_checkpoint
    from scorr_cli.media import iter_video_frames, read_image
    from scorr_cli.pipeline.render import image_to_tensor, images_to_tensor

    monkeypatch.setattr(engine_mod, "cpu_has_fast_bf16", lambda: True)  # runs (slowly) on any CPU
    model, _ = load_checkpoint(resolve_checkpoint(None))
    source = image_to_tensor(read_image(EXAMPLES / "source.png"))
    frames = images_to_tensor(list(iter_video_frames(EXAMPLES / "driving.mp4", stop=4)))
    engines = {p: AnimationEngine(model, CPU, p) for p in ("fp32", "bf16")}
    assert engines["bf16"].precision == "bf16"
    assert engines["bf16"].model.decoder.generator.final.weight.dtype == torch.bfloat16
    assert engines["bf16"].model.encoder.pre_feature.conv1.weight.dtype == torch.bfloat16
    assert engines["bf16"].model.encoder.transformer.mlp_head[1].weight.dtype == torch.float32
    assert engines["bf16"].model.encoder is not model.encoder
    assert all(p.dtype == torch.float32 for p in model.parameters())

    out = {}
    for p, engine in engines.items():
        out[p] = engine.animate(engine.prepare(source), frames, TransferOptions())
    # positions within 3e-3 (0.2 px at 128²); jacobians within 1e-2: a jacobian entry off by that moves a
    # point 0.1 units from its keypoint by 1e-3 (0.06 px), and the 4,493-step weights' are off by 3.4e-3
    tolerance = {"kp": 3e-3, "jacobian": 1e-2}
    assert set(out["fp32"].kp_driving) <= set(tolerance)
    for k in out["fp32"].kp_driving:
        torch.testing.assert_close(out["bf16"].kp_driving[k], out["fp32"].kp_driving[k], atol=tolerance[k], rtol=0)
    diff = (out["bf16"].prediction - out["fp32"].prediction).abs()
    print(f"\nbf16 vs fp32 on the example pair: mean {diff.mean():.5f}, max {diff.max():.4f}")
    assert out["bf16"].prediction.dtype == torch.float32
    assert 1e-4 < diff.max() < 0.25 and diff.mean() < 2 / 255


def test_output_frames_resize_like_torch_bicubic():
    """tensor_to_images resizes the model's 128² output to the output size with OpenCV's bicubic, which
    must give torch's bicubic values (align_corners=False) rounded to uint8: at most 1 level apart from
    rounding, equal almost everywhere. Bilinear or nearest resizing is 10+ levels off at edges."""
    from scorr_cli.pipeline.render import tensor_to_images

    g = torch.Generator().manual_seed(0)
    batch = torch.rand(2, 3, 16, 16, generator=g).repeat_interleave(8, -1).repeat_interleave(8, -2)  # sharp edges
    want = torch.nn.functional.interpolate(batch, size=(256, 256), mode="bicubic", align_corners=False)
    want = want.clamp(0, 1).mul(255).add(0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    got = tensor_to_images(batch, 256)
    assert len(got) == 2 and got[0].shape == (256, 256, 3) and got[0].dtype == np.uint8
    diff = np.abs(np.stack(got).astype(int) - want.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.001
    same = tensor_to_images(batch[:1])
    assert same[0].shape == (128, 128, 3)
