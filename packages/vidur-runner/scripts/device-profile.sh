#!/usr/bin/env bash
# Measures (or continues) the VIDUR Llama-2-7B profile on a lent GPU, from the repository root,
# with the machine's own python3 (PyTorch preinstalled; the profiler needs nothing else).
#   OUT=$OUT bash packages/vidur-runner/scripts/device-profile.sh
# Resumes from $PROFILES/$DEV/ (default data/profiles/vidur) when that folder exists in the tree that travelled
# (committed, or an earlier call's files copied there): only missing grid points are measured.
# Every measured point is appended to a partial CSV under $OUT at once, so a call cut off at its
# limit still brings back what it measured (`--coverage` merges it here).
# Environment: OUT (default /tmp/vidur-profile-out), HW (mtap hardware id, default
# H200-SXM-141GB), DEV (profile folder, default h200), BUDGET (seconds of measuring, default 500),
# PROFILES (profile root, default data/profiles/vidur; data/profiles/vidur-hf-cb for the engine's operators),
# EXTRA (more profiler options, e.g. "--device cpu --model mtap/tiny-test ..." for a CPU dry run, or
# "--ops hf-cb --q-pad 64 --kv-pad 8192 --max-batch-tokens 2048" for transformers' engine's own operators).
set -u
OUT=${OUT:-/tmp/vidur-profile-out}
HW=${HW:-H200-SXM-141GB}
DEV=${DEV:-h200}
BUDGET=${BUDGET:-500}
EXTRA=${EXTRA:-}
PROFILES=${PROFILES:-data/profiles/vidur}
PY=${PY:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=packages/vidur-runner/src
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
if [ -d "$PROFILES/$DEV/meta-llama" ]; then
  cp -r "$PROFILES/$DEV/meta-llama" "$OUT/"
  echo "resuming from $PROFILES/$DEV"
fi
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.current.sm,clocks.max.sm,clocks.current.memory --format=csv \
    > "$OUT/nvidia-smi.csv" 2>&1
fi
# shellcheck disable=SC2086
"$PY" -m mtap_vidur_runner.profiler --hardware "$HW" --output "$OUT" --time-budget "$BUDGET" $EXTRA 2>&1 | tee "$OUT/profile.log"
rc=${PIPESTATUS[0]}
ls -la "$OUT" "$OUT"/*/* 2>/dev/null
exit "$rc"
