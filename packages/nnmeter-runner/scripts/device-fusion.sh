#!/usr/bin/env bash
# nn-Meter fusion-rule detection (issue #28), measuring half, on the lent GPU machine's host CPU.
#
# The test cases are nn-Meter's (its FusionRuleTester classes, built on the development machine,
# where nn-meter is installed):
#   nnmeter-runner detect-fusion --generate local/nn-meter-fusion-testcases
# This script times every test-case model with ONNX Runtime's CPU execution provider on pinned,
# distinct physical cores (ortprofile --fusion: the package's profiler, same session settings and
# pinning as the kernel measurements of data/profiles/nn-meter), at 1 and 4 threads, ROUNDS passes,
# and records the CPU: model, lscpu, /proc/cpuinfo MHz and cpufreq (governor, driver, min/max/current
# frequency where the guest shows them) before and after. It needs python3 with numpy, torch, onnx and
# onnxruntime, nothing else (no nn-meter, no mtap-schemas). Run from the repository root:
#   bash packages/nnmeter-runner/scripts/device-fusion.sh [TESTCASES] [OUT]
# defaults: TESTCASES local/nn-meter-fusion-testcases (git-ignored: carry it), OUT $OUT/fusion.
# Env: ROUNDS (3), THREADS (1,4), CPUS (auto: ortprofile.pick_cpus), DEADLINE_S (540), PY (python3).
# Then, on the development machine, once per thread count (nn-Meter's detect_fusion_rule):
#   nnmeter-runner detect-fusion --measurements OUT --threads 1 --output data/profiles/nn-meter/fusion-rules/<cpu>-ort<v>-t1
set -u
TESTCASES=${1:-local/nn-meter-fusion-testcases}
DEST=${2:-${OUT:-/tmp}/fusion}
PY=${PY:-python3}
mkdir -p "$DEST"
if [ ! -f "$TESTCASES/testcases.json" ]; then
  echo "device-fusion.sh: $TESTCASES/testcases.json missing: run 'nnmeter-runner detect-fusion --generate $TESTCASES' first and carry it" >&2
  exit 2
fi
export PYTHONPATH=packages/nnmeter-runner/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
cpu_state() {  # $1: before|after
  {
    echo "# $1 $(date -u +%FT%TZ)"
    grep -m1 'model name' /proc/cpuinfo
    grep 'cpu MHz' /proc/cpuinfo | sort | uniq -c
    for f in scaling_governor scaling_driver scaling_cur_freq scaling_min_freq scaling_max_freq cpuinfo_max_freq; do
      v=$(cat /sys/devices/system/cpu/cpu0/cpufreq/$f 2>/dev/null) && echo "cpu0 $f: $v"
    done
    echo "loadavg: $(cat /proc/loadavg)"
  } >> "$DEST/cpu-state.txt"
}
lscpu > "$DEST/lscpu.txt" 2>&1
cpu_state before
$PY -m mtap_nnmeter_runner.ortprofile --fusion "$TESTCASES" --out "$DEST" --threads "${THREADS:-1,4}" \
  --cpus "${CPUS:-auto}" --rounds "${ROUNDS:-3}" --deadline-s "${DEADLINE_S:-540}" 2>&1 | tee "$DEST/log.txt"
rc=${PIPESTATUS[0]}
cpu_state after
exit "$rc"
