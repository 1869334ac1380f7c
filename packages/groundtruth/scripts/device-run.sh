#!/usr/bin/env bash
# Runs the groundtruth suites on a lent GPU machine, from the repository root, with the
# machine's own python3 (PyTorch preinstalled; nothing can be downloaded there).
#   bash packages/groundtruth/scripts/device-run.sh single   # one GPU: single suite, W3 step, then extras while time lasts
#   bash packages/groundtruth/scripts/device-run.sh repeat   # one GPU: the repeat subset (scripts/repeat-subset.json,
#                                                            # or REPEAT_CONFIG=none: the whole single suite) + W3 step
#   bash packages/groundtruth/scripts/device-run.sh multi    # all GPUs: collectives + DDP
# The hardware id comes from the card found (groundtruth's own default: H100 -> H100-SXM5-80GB /
# HGX-H100x8, H200 -> H200-SXM-141GB / HGX-H200x8); a card without an id stops the run. Documents
# are named <card>-x<GPUs>[-<part>] (e.g. h200-x1, h200-x1-ddp, h200-x2).
# Environment: OUT (documents, and the logs packed as logs.tgz; default /tmp/groundtruth-out),
# LOG (logs while running, default /tmp/groundtruth-logs), TOTAL_BUDGET (seconds for
# the whole script, default 560), SINGLE_BUDGET (seconds for the single suite, default 400),
# GT_EXTRA (extra CLI options, e.g. "--device cpu --tiny --limit 2" for a CPU dry run), WHEELS
# (folder of wheels to install first, default .gt-whl; "none" for a machine that has the packages).
# Each suite writes a checkpoint every 30 s and stops starting cases when its budget is spent,
# so a cut-off call still returns what was measured. mtap-schemas' dependencies travel as wheels
# in the git-ignored .gt-whl/ (see README.md).
set -u
T0=$(date +%s)
OUT=${OUT:-/tmp/groundtruth-out}
TOTAL_BUDGET=${TOTAL_BUDGET:-560}
SINGLE_BUDGET=${SINGLE_BUDGET:-400}
GT_EXTRA=${GT_EXTRA:-}
LOG=${LOG:-/tmp/groundtruth-logs}
mkdir -p "$OUT" "$LOG"
# at most 8 files come back from the device machine: documents in $OUT, logs packed into one file
trap 'tar -czf "$OUT/logs.tgz" -C "$LOG" . 2>/dev/null' EXIT
. packages/groundtruth/scripts/device-env.sh
left() { echo $(( TOTAL_BUDGET - ($(date +%s) - T0) )); }
if command -v nvidia-smi >/dev/null; then
  { nvidia-smi; nvidia-smi topo -m; nvidia-smi -q -d CLOCK | head -40; } > "$LOG/nvidia-smi.txt" 2>&1
fi
python3 - <<'PY' 2>&1 | tee "$LOG/probe.txt"
import importlib.util, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count(),
      [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
print("transformers present:", importlib.util.find_spec("transformers") is not None, "(not used: plain-torch models)")
import mtap_schemas, mtap_groundtruth; print("mtap_schemas ok, groundtruth", mtap_groundtruth.__version__)
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("sm", p.multi_processor_count, "l2_bytes", getattr(p, "L2_cache_size", None), "memory_bytes", p.total_memory)
    x = torch.randn(1 << 29, device="cuda")  # 2 GiB, random (never time zeros)
    y = torch.empty_like(x)
    for _ in range(3):
        y.copy_(x)
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(10):
        y.copy_(x)
    e.record(); e.synchronize()
    print("d2d copy GB/s (read+write)", round(2 * x.numel() * 4 * 10 / (s.elapsed_time(e) / 1e3) / 1e9, 1))
PY
card=$(python3 -c "
import torch
from mtap_groundtruth.env import hardware_for
if not torch.cuda.is_available(): print('cpu')
else:
    n = torch.cuda.get_device_name(0); hw = hardware_for(n, 'single')
    print(hw.split('-')[0].lower() if hw else '')
")
if [ -z "$card" ]; then echo "device-run: this GPU has no hardware id (mtap_groundtruth.env.CARDS); nothing measured" >&2; exit 2; fi
ngpu=$(python3 -c "import torch; print(max(torch.cuda.device_count(), 1))")
GT="python3 -m mtap_groundtruth.cli run --output $OUT $GT_EXTRA"
# run <seconds> <log> <args...>: one CLI call, killed (TERM) if it outlives its share; its checkpoint stays.
run() { local s=$1 log=$2; shift 2; timeout --signal=TERM "$s" $GT "$@" 2>&1 | tee "$LOG/$log" | grep -v '^groundtruth \(single\|multi\|neusight\)'; }
case "${1:-single}" in
  single)
    b=$(( SINGLE_BUDGET < $(left) - 60 ? SINGLE_BUDGET : $(left) - 60 ))
    run $(( b + 60 )) single.log --suite single --name "$card-x1" --iters 50 --warmup 10 --time-budget "$b"
    [ "$(left)" -gt 40 ] && run $(( $(left) - 5 )) ddp.log --suite multi --gpus 1 --name "$card-x1-ddp" --iters 50 --warmup 10
    # extras, only while time lasts: the repeat subset on this same machine, then NeuSight's configurations
    if [ "$(left)" -gt 150 ]; then
      run $(( $(left) - 5 )) repeat-same.log --suite single --name "$card-x1-repeat-same" --config packages/groundtruth/scripts/repeat-subset.json --time-budget $(( $(left) - 60 ))
    fi
    if [ "$(left)" -gt 150 ]; then
      run $(( $(left) - 5 )) neusight.log --suite neusight --name "$card-neusight" --no-graphs --iters 20 --warmup 2 --time-budget $(( $(left) - 60 ))
    fi
    ;;
  repeat)
    # REPEAT_CONFIG: the cases to repeat (default the subset; "none": the whole single suite)
    cfg=${REPEAT_CONFIG:-packages/groundtruth/scripts/repeat-subset.json}
    [ "$cfg" = none ] && cfg_opt=() || cfg_opt=(--config "$cfg")
    run $(( $(left) - 50 )) repeat.log --suite single --name "$card-x1-repeat" "${cfg_opt[@]}" --time-budget $(( $(left) - 110 ))
    [ "$(left)" -gt 40 ] && run $(( $(left) - 5 )) ddp-repeat.log --suite multi --gpus 1 --name "$card-x1-ddp-repeat" --iters 50 --warmup 10
    ;;
  multi)
    run $(( $(left) - 5 )) multi.log --suite multi --name "$card-x$ngpu" --iters 50 --warmup 10
    ;;
  *) echo "usage: $0 single|repeat|multi" >&2; exit 2 ;;
esac
python3 packages/groundtruth/scripts/summary.py "$OUT"/*.tool-run.json > "$LOG/summary.txt" 2>&1
echo "device-run: $(( $(date +%s) - T0 )) s"
