"""Two-process DDP on CPU (gloo) launched by torchrun: identical weights, disjoint data shards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import torch.distributed as dist

REPO = Path(__file__).resolve().parents[1]
REAL_CLIPS = ("dreamtalk_M030_front_happy_level3_001.mp4", "dreamtalk_W011_front_sad_level3_001.mp4")

RUNNER = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    sys.path.insert(0, {repo!r})
    from safetensors.torch import save_file
    from scorr_cli.train.config import resolve_config
    from scorr_cli.train.trainer import train

    data, out = sys.argv[1], sys.argv[2]
    cfg = resolve_config(data, preset="tiny", overrides={{
        "run": {{"out": out, "log_every": 1, "sample_every": 0, "checkpoint_every": 0, "eval_clips": 0,
                 "threads": 1, "device": "cpu"}},
        "schedule": {{"max_steps": 3, "batch_size": 4}},
        "data": {{"num_repeats": 4}},
        "loss": {{"perceptual_backend": "none"}}}})
    seen = []
    res = train(cfg, on_step=lambda i: seen.append(i.indices), show_progress=False)
    rank = int(os.environ["RANK"])
    save_file({{k: v.detach().contiguous() for k, v in res.model.state_dict().items()}},
              f"{{out}}/rank{{rank}}.safetensors")
    Path(f"{{out}}/rank{{rank}}.json").write_text(json.dumps(
        {{"seen": seen, "step": res.step, "world": int(os.environ["WORLD_SIZE"]), "losses": res.history}}))
""")


@pytest.mark.slow
@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed + gloo")
def test_two_process_ddp_on_cpu(tmp_path: Path, faces_media: Path):
    root = tmp_path / "data"
    (root / "train").mkdir(parents=True)
    for name in REAL_CLIPS:
        (root / "train" / name).symlink_to(faces_media / "driving" / name)
    script = tmp_path / "runner.py"
    script.write_text(RUNNER.format(repo=str(REPO)))
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), str(root), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["step"] == 3 and r["world"] == 2 for r in ranks)
    # every step, the two ranks trained on different samples (micro-batch 2 each = global batch 4)
    for a, b in zip(ranks[0]["seen"], ranks[1]["seen"]):
        assert len(a) == len(b) == 2 and not set(a) & set(b)
    # epoch 0 (2 clips × 4 repeats = 8 items, 2 steps): the shards cover the epoch exactly once
    epoch0 = ranks[0]["seen"][0] + ranks[0]["seen"][1] + ranks[1]["seen"][0] + ranks[1]["seen"][1]
    assert sorted(epoch0) == list(range(8))

    w0 = load_file(str(out / "rank0.safetensors"))
    w1 = load_file(str(out / "rank1.safetensors"))
    assert w0.keys() == w1.keys()
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k
    # rank 0 alone wrote the run folder; the saved weights are those weights
    from scorr_cli.checkpoints.store import read_checkpoint

    ckpt = read_checkpoint(out / "final.safetensors")
    assert ckpt.metadata["world_size"] == 2 and ckpt.metadata["steps"] == 3
    for k in w0:
        assert torch.equal(ckpt.state[k], w0[k]), k
    assert len(ranks[0]["losses"]) == 3 and ranks[1]["losses"] == []  # only rank 0 logs
