#!/usr/bin/env bash
# Runs the groundtruth suites on a lent GPU machine, from the repository root, with the
# machine's own python3 (PyTorch preinstalled; nothing can be downloaded there).
#   bash packages/groundtruth/scripts/device-run.sh single   # one GPU: single suite, then neusight
#   bash packages/groundtruth/scripts/device-run.sh multi    # all GPUs: collectives + DDP
# mtap-schemas' own dependencies travel as wheels in .gt-whl/ (see README.md).
# Documents and logs are written to $OUT.
set -u
OUT=${OUT:-/tmp/groundtruth-out}
mkdir -p "$OUT"
if ls .gt-whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gt-site .gt-whl/*.whl || exit 1
  export PYTHONPATH=/tmp/gt-site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}schemas/src:packages/groundtruth/src
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
{ nvidia-smi; nvidia-smi topo -m; nvidia-smi -q -d CLOCK | head -40; } > "$OUT/nvidia-smi.txt" 2>&1
python3 - <<'PY' 2>&1 | tee "$OUT/probe.txt"
import importlib.util, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count(),
      [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
print("transformers present:", importlib.util.find_spec("transformers") is not None, "(not used: plain-torch models)")
import mtap_schemas, mtap_groundtruth; print("mtap_schemas ok, groundtruth", mtap_groundtruth.__version__)
PY
GT="python3 -m mtap_groundtruth.cli run --output $OUT"
case "${1:-single}" in
  single)
    $GT --suite single --name h100-x1 --iters 50 --warmup 10 --time-budget ${SINGLE_BUDGET:-300} 2>&1 | tee "$OUT/single.log" | grep -v '^groundtruth single'
    $GT --suite neusight --name h100-neusight --no-graphs --iters 20 --warmup 2 --time-budget ${NEUSIGHT_BUDGET:-170} 2>&1 | tee "$OUT/neusight.log" | grep -v '^groundtruth neusight'
    ;;
  multi)
    # The catalog has HGX-H100x8 only: a 2-GPU H100 or H200 host is recorded under it, with the
    # real card in environment.gpu and each case's gpu_name, and the document named by the card.
    card=$(python3 -c "import torch; n=torch.cuda.get_device_name(0); print('h200' if 'H200' in n else 'h100' if 'H100' in n else 'gpu')")
    $GT --suite multi --hardware HGX-H100x8 --name "$card-x$(nvidia-smi -L | wc -l)" --iters 50 --warmup 10 2>&1 | tee "$OUT/multi.log" | grep -v '^groundtruth multi'
    ;;
  *) echo "usage: $0 single|multi" >&2; exit 2 ;;
esac
python3 packages/groundtruth/scripts/summary.py "$OUT"/*.tool-run.json 2>&1 | tee "$OUT/summary.txt"
