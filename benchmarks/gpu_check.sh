#!/usr/bin/env bash
# One command for a lent CUDA machine: install what is missing, run the GPU tests and benchmarks, print one
# table. Meant to finish within 8 minutes on one GPU with nothing installed but this repository:
#   bash benchmarks/gpu_check.sh            (output and logs in gpu_check_out/, table also in table.md)
# Without a CUDA GPU it says so and exits 0 (safe in CI and on laptops).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${GPU_CHECK_OUT:-gpu_check_out}
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no CUDA GPU found (nvidia-smi lists none): skipped"
  exit 0
fi
T0=$(date +%s)
mkdir -p "$OUT"
: > "$OUT/status"
PY=${GPU_CHECK_PYTHON:-python3}
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" >/dev/null 2>&1; then
  VENV=${GPU_CHECK_VENV:-.venv-gpu}
  echo "gpu_check: installing torch (CUDA build), triton and scorr into $VENV"
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q torch triton > "$OUT/install.log" 2>&1
  PY="$VENV/bin/python"
fi
"$PY" -c "import triton" >/dev/null 2>&1 || "$PY" -m pip install -q triton >> "$OUT/install.log" 2>&1
if ! "$PY" -m pip install -q -e '.[test]' >> "$OUT/install.log" 2>&1; then
  # A machine with no package index (as the lent GPU machines are) cannot fetch scorr's CPU-side
  # dependencies (face-alignment, imageio-ffmpeg); the GPU steps need only torch, triton, numpy, opencv and
  # pytest, so run scorr from this checkout.
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
  "$PY" -c "import scorr_cli.core.model, pytest" >> "$OUT/install.log" 2>&1 \
    || { echo "gpu_check: install failed (see $OUT/install.log)"; exit 1; }
  echo "gpu_check: no package index: scorr runs from this checkout (PYTHONPATH)"
fi

step() {  # step NAME SECONDS CMD...: run with a time limit, keep its log, record its exit code
  local name=$1 limit=$2; shift 2
  echo "gpu_check: $name"
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  echo "$name $?" >> "$OUT/status"
}
step tests 150 "$PY" -m pytest -q -p no:cacheprovider tests/test_correlation_fused.py tests/test_gpu.py
step bench_corr 60 "$PY" benchmarks/bench_corr.py --device cuda
for impl in torch fused; do
  step "animate_fp32_$impl" 60 "$PY" benchmarks/bench_animate.py --device cuda --priors mtia --batches 1,8,32 \
    --repeats 3 --precision fp32 --corr-impl "$impl"
done
step animate_bf16_fused 60 "$PY" benchmarks/bench_animate.py --device cuda --priors mtia --batches 1,8,32 \
  --repeats 3 --precision bf16 --corr-impl fused
step train_vox_20 120 "$PY" benchmarks/bench_train.py --preset vox --device cuda --batch 8 --steps 20 --warmup 2 \
  --perceptual random
step train_vox_20_bf16 120 "$PY" benchmarks/bench_train.py --preset vox --device cuda --batch 8 --steps 20 \
  --warmup 2 --perceptual random --precision bf16
"$PY" benchmarks/gpu_table.py "$OUT" | tee "$OUT/table.md"
echo "gpu_check: done in $(( $(date +%s) - T0 )) s; logs in $OUT/"
