"""The fused (Triton) correlation lookup against its pure-torch reference.

On a CUDA machine with triton the kernel runs for real, also inside a whole model. Without a GPU,
where triton is installed, the same comparison runs in Triton's interpreter (TRITON_INTERPRET=1, CPU
tensors) in a subprocess, since the interpreter must be chosen before the kernel is defined.
Without triton only the selection rules are tested.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from scorr_cli.core.correlation import CorrelationLookup, fused_lookup_available, use_fused_lookup

HAS_TRITON = importlib.util.find_spec("triton") is not None
HAS_CUDA = torch.cuda.is_available()

# (batch, channels, volume side, levels, radius): odd sides exercise avg-pool flooring; flows reach
# outside the map so zero padding matters; driving sides coarser, equal and finer than the volume.
CASES = [(2, 16, 16, 2, 3), (1, 8, 12, 3, 2), (1, 40, 9, 2, 1)]

COMPARE = textwrap.dedent("""
    import torch
    from scorr_cli.core.correlation import CorrelationLookup

    def compare(cases, device):
        g = torch.Generator().manual_seed(0)
        worst = 0.0
        for b, c, s, levels, radius in cases:
            fd = torch.randn(b, c, s, s, generator=g).to(device)
            fs = torch.randn(b, c, s, s, generator=g).to(device)
            ref = CorrelationLookup(fd, fs, levels, radius, "torch")
            fused = CorrelationLookup(fd, fs, levels, radius, "fused")
            assert fused.fused and not ref.fused
            for side in sorted({max(s // 2, 1), s, 2 * s}):
                flow = (torch.randn(b, 2, side, side, generator=g) * 0.4 * s).to(device)
                a, f = ref(flow), fused(flow)
                assert a.shape == f.shape == (b, levels * (2 * radius + 1) ** 2, side, side)
                worst = max(worst, (a - f).abs().max().item())
                torch.testing.assert_close(f, a, atol=2e-5, rtol=1e-4)
        return worst
""")


def test_selection_rules():
    fd = fs = torch.zeros(1, 4, 8, 8)
    assert not use_fused_lookup("torch", fd, fs)
    assert not use_fused_lookup("auto", fd, fs)  # CPU tensors: always the torch reference
    with pytest.raises(ValueError, match="unknown correlation implementation 'cuda'"):
        use_fused_lookup("cuda", fd, fs)
    if not fused_lookup_available():
        with pytest.raises(RuntimeError, match="needs triton"):
            CorrelationLookup(fd, fs, 2, 3, "fused")


@pytest.mark.skipif(not (HAS_TRITON and not HAS_CUDA), reason="needs triton (and no GPU: the GPU test covers it)")
def test_fused_matches_torch_in_triton_interpreter():
    code = COMPARE + f"\nprint(compare({CASES!r}, 'cpu'))\n"
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert float(done.stdout.strip().splitlines()[-1]) < 2e-5


@pytest.mark.skipif(not (HAS_TRITON and HAS_CUDA), reason="needs a CUDA GPU and triton")
def test_fused_matches_torch_on_gpu():
    namespace: dict = {}
    exec(COMPARE, namespace)
    # The kernel and the reference sum the channels in different orders (the kernel per bilinear corner, in
    # blocks), so the fp32 gap grows with the channel count:
    # 3.2e-5 on an H200 with the 64-channel case (values up to ~4), each element still within the
    # atol 2e-5 + rtol 1e-4 of `compare`. An indexing or padding bug is off by O(1).
    assert namespace["compare"](CASES + [(2, 64, 64, 2, 3)], "cuda") < 1e-4


@pytest.mark.skipif(not (HAS_TRITON and HAS_CUDA), reason="needs a CUDA GPU and triton")
def test_fused_model_forward_matches_torch_on_gpu():
    from scorr_cli.core.config import tiny
    from scorr_cli.core.model import MRFA

    torch.manual_seed(0)
    model = MRFA(tiny()).cuda().eval()
    s = model.cfg.image_size
    src, drv = torch.rand(2, 3, s, s, device="cuda"), torch.rand(2, 3, s, s, device="cuda")
    with torch.no_grad():
        model.decoder.corr_impl = "torch"
        ref = model(src, drv).prediction
        model.decoder.corr_impl = "auto"  # CUDA + no grad: the kernel
        fused = model(src, drv).prediction
    torch.testing.assert_close(fused, ref, atol=1e-4, rtol=1e-4)
