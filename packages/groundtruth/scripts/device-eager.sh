#!/usr/bin/env bash
# Eager-attention ground truth (issue 27) on a lent GPU machine, from the repository root: the
# Hugging Face models NeuSight traces (groundtruth --attention eager, transformers==4.38.1) for
#   1. the W4/W7 cases of suite single  -> OUT/<card>-neusight-w4-w7-eager.tool-run.json
#      (as the committed h100-x1 / h200-x1: --iters 50 --warmup 10, CUDA graphs + eager)
#   2. NeuSight's configurations (suite neusight) -> OUT/<card>-neusight-eager.tool-run.json
#      (as the committed h100-neusight / h200-neusight: --no-graphs --iters 20 --warmup 2)
# <card> is h100 or h200, from the GPU found (a card without a hardware id stops the run).
# Environment: OUT (default /tmp/groundtruth-out), TOTAL_BUDGET (seconds for the whole script,
# default 540), WHEELS (default .whl: the wheels of mtap-schemas' dependencies and of transformers
# 4.38.1, tokenizers 0.15.2 and huggingface-hub 0.36.2 for the device's Python 3.12; see README.md),
# RESUME_DIR (a folder with an earlier call's OUT files: their .NAME.progress.jsonl checkpoints are
# copied into OUT and each run gets --resume, so only the cases not yet measured are measured),
# GT_EXTRA (extra CLI options, e.g. "--device cpu --tiny" for a CPU dry run with WHEELS=none).
# Each run writes a checkpoint every 30 s and stops starting cases when its --time-budget is spent.
set -u
T0=$(date +%s)
OUT=${OUT:-/tmp/groundtruth-out}; TOTAL_BUDGET=${TOTAL_BUDGET:-540}; GT_EXTRA=${GT_EXTRA:-}
WHEELS=${WHEELS:-.whl}; LOG=${LOG:-/tmp/groundtruth-logs}
mkdir -p "$OUT" "$LOG"
trap 'tar -czf "$OUT/logs.tgz" -C "$LOG" . 2>/dev/null' EXIT
. packages/groundtruth/scripts/device-env.sh
left() { echo $(( TOTAL_BUDGET - ($(date +%s) - T0) )); }
command -v nvidia-smi >/dev/null && { nvidia-smi; nvidia-smi -q -d CLOCK | head -40; } > "$LOG/nvidia-smi.txt" 2>&1
python3 -c "
import torch, transformers, mtap_groundtruth
print('torch', torch.__version__, 'cuda', torch.version.cuda, [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
print('transformers', transformers.__version__, 'groundtruth', mtap_groundtruth.__version__)
" 2>&1 | tee "$LOG/probe.txt"
card=$(python3 -c "
import torch
from mtap_groundtruth.env import hardware_for
if not torch.cuda.is_available(): print('cpu')
else:
    hw = hardware_for(torch.cuda.get_device_name(0), 'single'); print(hw.split('-')[0].lower() if hw else '')
")
if [ -z "$card" ]; then echo "device-eager: this GPU has no hardware id (mtap_groundtruth.env.CARDS); nothing measured" >&2; exit 2; fi
GT="python3 -m mtap_groundtruth.cli run --output $OUT --attention eager $GT_EXTRA"
# run <name> <log> <args...>: one CLI call (resumed from RESUME_DIR's checkpoint if there is one), killed if it outlives the script's budget
run() {
  local name=$1 log=$2; shift 2; local resume=()
  if [ -n "${RESUME_DIR:-}" ] && [ -f "$RESUME_DIR/.$name.progress.jsonl" ]; then
    cp "$RESUME_DIR/.$name.progress.jsonl" "$OUT/"; resume=(--resume)
  fi
  timeout --signal=TERM $(( $(left) - 5 )) $GT --name "$name" "${resume[@]}" "$@" 2>&1 | tee "$LOG/$log" | grep -v '^groundtruth \(single\|neusight\)'
}
# single's 16 small cases take well under a minute; NeuSight's 10 large ones the rest (each up to ~1 min)
b=$(( $(left) - 200 )); [ "$b" -lt 30 ] && b=30
run "$card-neusight-w4-w7-eager" single.log --suite single --iters 50 --warmup 10 --time-budget "$b"
b=$(( $(left) - 50 )); [ "$b" -lt 30 ] && b=30
run "$card-neusight-eager" neusight.log --suite neusight --no-graphs --iters 20 --warmup 2 --time-budget "$b"
python3 packages/groundtruth/scripts/summary.py "$OUT"/*.tool-run.json 2>&1 | tee "$LOG/summary.txt"
echo "device-eager: $(( $(date +%s) - T0 )) s"
