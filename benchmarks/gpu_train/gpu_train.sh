#!/usr/bin/env bash
# Train the default model on a lent GPU machine in one device call (see weights/README.md, "GPU steps").
# Here:   python benchmarks/gpu_train/transfer.py pack-data DATASET .gpudata   (.gpudata git-ignored)
# There:  OUT=... bash benchmarks/gpu_train/gpu_train.sh .gpudata            (device call carrying .gpudata)
# Here:   python benchmarks/gpu_train/transfer.py unpack-weights FILES_AT DEST
# Two chains side by side, A from INIT_A and B from INIT_B (--init; default
# weights/scorr-lite.safetensors; a second model does not fit beside the tree and the data in the 64 MiB a
# call carries, so to start from other weights copy them over the tree's weights/scorr-lite.safetensors
# for the call (uncommitted; its train_config is the recipe then), or name a checkpoint an earlier call
# left in /tmp on a warm machine), each: full steps until S1_END seconds, then (S2_END > 0) from that
# checkpoint WARMUP motion warm-up steps + FULL full steps until S2_END; both chains' last weights
# exported (fp16, finest updater skipped) and packed into $OUT with the logs. FLAGS_A / FLAGS_B are added
# to every run of a chain (default: none / --motion-pairs 3), e.g. '--freeze encoder --freeze
# dense_motion'. The recipe is the release's own (its train_config) with pixel 10, batch BATCH, Adam 1e-4,
# EMA 0.99.
set -u
DATA=${1:?packed data folder}
T0=$(date +%s); R=${RUNS:-/tmp/gpu_train}; mkdir -p "$R" "$OUT"; : > "$R/status"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
S1_END=${S1_END:-330}; S2_END=${S2_END:-490}; DEV=${DEV:-cuda}; BATCH=${BATCH:-32}; W=${W:-6}; TH=${TH:-2}
WARMUP=${WARMUP:-1000}; FULL=${FULL:-150}; CE=${CE:-250}
INIT_A=${INIT_A:-weights/scorr-lite.safetensors}; INIT_B=${INIT_B:-weights/scorr-lite.safetensors}
FLAGS_A=${FLAGS_A:-}; FLAGS_B=${FLAGS_B:---motion-pairs 3}
el() { echo $(( $(date +%s) - T0 )); }
rm -rf /tmp/gpu_train_ds; python3 benchmarks/gpu_train/transfer.py unpack-data "$DATA" /tmp/gpu_train_ds || exit 1
# DATA_A / DATA_B: 'all' the packed clips, or 'videos' without the photo clips (`scorr crop --photo-frames`,
# named *_photo): one packed set serves a with/without-photos pair of chains.
V=/tmp/gpu_train_ds_videos; rm -rf "$V"; mkdir -p "$V/train"; ln -s /tmp/gpu_train_ds/test "$V/test"
for c in /tmp/gpu_train_ds/train/*; do case $c in *_photo) ;; *) ln -s "$c" "$V/train/";; esac; done
data_for() { [ "$1" = videos ] && echo "$V" || echo /tmp/gpu_train_ds; }
for stage in 1 2; do
  python3 - "$R/s$stage.yaml" $(( stage == 1 ? 0 : WARMUP )) <<'PY' || exit 1
import sys, yaml
from scorr_cli.checkpoints.store import read_checkpoint
tc = read_checkpoint("weights/scorr-lite.safetensors").metadata["train_config"]
tc["loss"]["pixel"] = 10.0
tc["schedule"].update(motion_warmup_steps=int(sys.argv[2]), keypoint_warmup_steps=0, max_steps=None)
tc["data"]["num_repeats"] = 200  # an epoch (and its test-clip L1) every ~350 steps of batch 32
tc["run"].update(init=None, out=None, eval_clips=9, eval_frames=16)
yaml.safe_dump(tc, open(sys.argv[1], "w"))
PY
done
echo "setup done at $(el) s"
run() {  # NAME CONFIG INIT END_S [flags]: SIGINT at END_S saves a checkpoint
  local name=$1 cfg=$2 init=$3 end=$4 data; shift 4
  data=$(data_for "$([ "${name:0:1}" = A ] && echo "${DATA_A:-all}" || echo "${DATA_B:-all}")")
  timeout --preserve-status -s INT -k 45 $(( end - $(el) )) python3 -m scorr_cli train --data "$data" \
    --preset lite --config "$cfg" --init "$init" --out "$R/$name" --device "$DEV" --batch-size "$BATCH" --lr 1e-4 \
    --ema-decay 0.99 --num-workers "$W" --threads "$TH" --checkpoint-every "$CE" --keep 2 --sample-every 100000 \
    --log-every 25 --quiet "$@" > "$R/$name.log" 2>&1
  echo "$name rc=$? at $(el) s" >> "$R/status"
}
last() { ls "$R/$1"/checkpoints/step-*.safetensors 2>/dev/null | grep -v '\.state\.' | sort | tail -1; }
# shellcheck disable=SC2086
run A1 "$R/s1.yaml" "$INIT_A" "$S1_END" $FLAGS_A & pa=$!
# shellcheck disable=SC2086
run B1 "$R/s1.yaml" "$INIT_B" "$S1_END" $FLAGS_B & pb=$!
wait $pa $pb
final=(A1 B1)
if [ "$S2_END" -gt 0 ]; then
  final=(A2 B2)
  for chain in A B; do
    c=$(last ${chain}1); flags=$FLAGS_A; [ $chain = B ] && flags=$FLAGS_B
    # shellcheck disable=SC2086
    [ -n "$c" ] && run ${chain}2 "$R/s2.yaml" "$c" "$S2_END" --max-steps $(( WARMUP + FULL )) $flags &
  done
  wait
fi
cat "$R/status"
exported=()
for name in "${final[@]}"; do
  c=$R/$name/final.safetensors; [ -f "$c" ] || c=$(last $name); [ -n "$c" ] || continue
  python3 -m scorr_cli weights export "$c" "$R/$name.safetensors" --half --skip-updates 1 --force \
    && exported+=("$R/$name.safetensors")
done
[ ${#exported[@]} -gt 0 ] && python3 benchmarks/gpu_train/transfer.py pack-weights "$OUT" "${exported[@]}"
tar czf "$OUT/logs.tgz" --exclude='*.safetensors' --exclude=tensorboard -C "$(dirname "$R")" "$(basename "$R")"
echo "done at $(el) s"
