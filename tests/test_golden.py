"""Golden parity: scorr reproduces the authors' code on recipe weights (../shared/reference/GOLDEN.md).

Each golden file is self-describing (seed, variant, modes in its ``meta``), so the same test runs on a
holdout set: point ``SCORR_GOLDEN_DIR`` at it. Weights go through the real import path: recipe state
dict -> authors' ``.pth`` layout -> ``import_official`` -> scorr safetensors -> ``load_checkpoint``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from golden_recipe import recipe_state_dict, sha256_16
from scorr_cli.checkpoints import import_official, load_checkpoint
from scorr_cli.core.transfer import TransferOptions, movement_scale, transfer_keypoints

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "reference"
GOLDEN_DIR = Path(os.environ.get("SCORR_GOLDEN_DIR", SHARED / "golden"))
MANIFEST = SHARED / "mrfa_state_dict_vox1.json"
FIXED = SHARED / "golden" / "fixed_tensors.npz"

# GOLDEN.md §4 acceptance thresholds (max |Δ|); images also have p99.9 and mean limits.
TOL = {"kp": 5e-4, "jacobian": 2e-4, "adapt_scale": 5e-4, "bg_param": 1e-4, "deformation": 2e-4,
       "occlusion_logits": 1e-3, "occlusion": 5e-4, "flow": (1e-3, 2e-3, 4e-3, 8e-3)}
IMAGE_TOL = (1e-2, 2e-3, 1e-4)  # max, 99.9th percentile, mean


def golden_files() -> list[Path]:
    if not GOLDEN_DIR.is_dir():
        return []
    return sorted(p for p in GOLDEN_DIR.glob("*.npz") if p.name != "fixed_tensors.npz")


pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not golden_files() or not MANIFEST.is_file(), reason="../shared/reference absent")]


def _u16(z, key: str) -> np.ndarray:
    return z[key].astype(np.float64) / 65535.0


def check(name: str, got: torch.Tensor, ref: np.ndarray, tol: float) -> None:
    d = np.abs(got.detach().double().cpu().numpy() - ref)
    assert d.max() <= tol, f"{name}: max |Δ| {d.max():.3e} > {tol:.1e}"


def check_image(name: str, got: torch.Tensor, ref: np.ndarray) -> None:
    d = np.abs(got.detach().double().cpu().numpy() - ref)
    mx, p, mean = IMAGE_TOL
    assert d.max() <= mx, f"{name}: max |Δ| {d.max():.3e} > {mx}"
    assert np.percentile(d, 99.9) <= p, f"{name}: p99.9 |Δ| {np.percentile(d, 99.9):.3e} > {p}"
    assert d.mean() <= mean, f"{name}: mean |Δ| {d.mean():.3e} > {mean}"


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads(MANIFEST.read_text())


@pytest.mark.parametrize("golden", golden_files(), ids=lambda p: p.stem)
def test_golden_parity(golden: Path, manifest: dict, tmp_path: Path) -> None:
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    z = np.load(golden)
    meta = json.loads(str(z["meta"]))
    variant, seed = meta["variant"], int(meta["global_seed"])
    fixed = dict(np.load(FIXED))
    state = recipe_state_dict(manifest[variant]["state_dict"], seed, fixed)

    # The recipe itself must be bit-exact, or nothing downstream means anything.
    for key, sha in zip(z["weights.key"], z["weights.sha256_16"]):
        assert sha256_16(state[str(key)]) == str(sha), f"recipe tensor {key} differs"

    pth = tmp_path / "official.pth"
    torch.save({"model": state, "optimizer": {}, "epoch": 99}, pth)
    del state
    scorr_path = import_official(pth, tmp_path / "imported.safetensors", name=variant)
    pth.unlink()
    model, ckpt = load_checkpoint(scorr_path)
    assert ckpt.config.prior == meta["prior_model"]
    assert ckpt.config.refiner.prior_only == bool(meta["prior_only"])

    source = torch.from_numpy(z["source"])
    driving = torch.from_numpy(z["driving"])
    is_tpsm = ckpt.config.prior == "tpsm"
    with torch.no_grad():
        prepared = model.prepare_source(source)
        kp_driving = model.detect(driving)
        check("kp_source", prepared.kp["kp"][0], z["kp_source"], TOL["kp"])
        check("kp_driving", kp_driving["kp"], z["kp_driving"], TOL["kp"])
        if "kp_source_jacobian" in z:
            check("kp_source_jacobian", prepared.kp["jacobian"][0], z["kp_source_jacobian"], TOL["jacobian"])
            check("kp_driving_jacobian", kp_driving["jacobian"], z["kp_driving_jacobian"], TOL["jacobian"])
        if "refiner_kp_source" in z:
            check("refiner_kp_source", model.refiner_kp(prepared.kp["kp"])[0], z["refiner_kp_source"], TOL["kp"])
        reference = {k: v[:1] for k, v in kp_driving.items()}

        for mode, flags in meta["modes"].items():
            if mode == "reconstruction":
                out = model(source.expand(len(driving), -1, -1, -1), driving)
                check(f"{mode}.bg_param", out.dense["bg_affine"], z[f"{mode}.bg_param"], TOL["bg_param"])
            else:
                options = TransferOptions(mode="relative" if flags["use_relative_movement"] else "absolute",
                                          adapt_scale=flags["adapt_movement_scale"],
                                          relative_jacobian=flags["use_relative_jacobian"])
                if options.adapt_scale:
                    scale = movement_scale(prepared.kp["kp"], reference["kp"])
                    assert abs(scale.item() - float(z[f"{mode}.adapt_scale"])) <= TOL["adapt_scale"]
                kp = transfer_keypoints(prepared.kp, kp_driving, reference, options)
                check(f"{mode}.kp_norm", kp["kp"], z[f"{mode}.kp_norm"], TOL["kp"])
                if f"{mode}.kp_norm_jacobian" in z:
                    check(f"{mode}.kp_norm_jacobian", kp["jacobian"], z[f"{mode}.kp_norm_jacobian"], TOL["jacobian"])
                if is_tpsm:
                    check(f"{mode}.refiner_kp_driving", model.refiner_kp(kp["kp"]),
                          z[f"{mode}.refiner_kp_driving"], TOL["kp"])
                out = model.animate(prepared, kp)
            check(f"{mode}.deformation", out.dense["deformation"], z[f"{mode}.deformation"], TOL["deformation"])
            check(f"{mode}.occlusion_logits", out.dense["occlusion"], z[f"{mode}.occlusion_logits"],
                  TOL["occlusion_logits"])
            for i, flow in enumerate(out.refiner.flows[:4]):
                check(f"{mode}.flow_l{i}", flow.permute(0, 2, 3, 1), z[f"{mode}.flow_l{i}"], TOL["flow"][i])
            maps = [_u16(z, f"{mode}.occlusion_l{i}_u16") for i in range(len(out.refiner.visibility))]
            for i, vis in enumerate(out.refiner.visibility):
                check(f"{mode}.occlusion_l{i}", vis, maps[i], TOL["occlusion"])
            if f"{mode}.occlusion_init_u16" in z:
                init = _u16(z, f"{mode}.occlusion_init_u16")
                check(f"{mode}.occlusion_init", out.refiner.prior_visibility, init, TOL["occlusion"])
                maps.append(init)
            # The visualisation strip is defined from the stored maps (GOLDEN.md §3).
            strip_ref = torch.cat([torch.nn.functional.interpolate(torch.from_numpy(m), size=256, mode="bilinear",
                                                                   align_corners=True) for m in maps], dim=3)
            check(f"{mode}.occlusion_strip", out.refiner.occlusion_strip(), strip_ref.numpy(), TOL["occlusion"])
            check_image(f"{mode}.warped", out.refiner.warped, _u16(z, f"{mode}.warped_u16"))
            check_image(f"{mode}.prediction", out.prediction, _u16(z, f"{mode}.prediction_u16"))
