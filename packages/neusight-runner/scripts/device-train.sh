#!/usr/bin/env bash
# NeuSight's predictors trained at the authors' recipe on a lent GPU machine (issue 27), from the repository root:
#   neusight-runner train --tool-path <checkout> (NeuSight's epochs: 100 each; its batch sizes, learning rates,
#   SMAPE loss and 80/20 split from its configs; seed 0) on CUDA, one process per predictor
#   -> OUT/neusight-training-<card>.json (training v1), OUT/weights.tar.xz (weights.json and MLP_WAVE/: give the folder to `run --weights`),
#      OUT/train-logs.tgz (each training process's output).
# Environment: OUT (default /tmp/neusight-train-out); NS_TAR (default .ns/neusight-train.tar.xz: a trimmed NeuSight
# checkout, its neusight/ package, scripts/asplos/data/predictor and the training data it reads, made with git archive
# from a local clone: see packages/neusight-runner/README.md); WHEELS (default .whl-sg: mtap-schemas' dependencies for
# the device's Python); EPOCHS (default: NeuSight's 100); DETERMINISM (default LN:100: LN trained twice from scratch
# at its full epochs, parameters compared); TIMEOUT (seconds one training process may run, default 500); PREDICTORS (e.g. VEC,LN,SOFTMAX: only these; default all five).
set -u
OUT=${OUT:-/tmp/neusight-train-out}; NS_TAR=${NS_TAR:-.ns/neusight-train.tar.xz}; WHEELS=${WHEELS:-.whl-sg}
DETERMINISM=${DETERMINISM:-LN:100}; TIMEOUT=${TIMEOUT:-500}
mkdir -p "$OUT" /tmp/ns-checkout /tmp/ns-site
tar -C /tmp/ns-checkout -xJf "$NS_TAR" || exit 9
if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/ns-site "$WHEELS"/*.whl || exit 9
fi
export PYTHONPATH=/tmp/ns-site:schemas/src:packages/neusight-runner/src PYTHONUNBUFFERED=1
card=$(python3 -c "import torch; n=torch.cuda.get_device_name(0) if torch.cuda.is_available() else ''; print('h200' if 'H200' in n else 'h100' if 'H100' in n else 'cpu')")
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > "$OUT/nvidia-smi.csv" 2>&1
epochs=(); [ -n "${EPOCHS:-}" ] && epochs=(--epochs "$EPOCHS")
only=(); [ -n "${PREDICTORS:-}" ] && only=(--predictors "$PREDICTORS")
python3 -m mtap_neusight_runner.cli train --tool-path /tmp/ns-checkout --weights-out /tmp/ns-weights \
  --jobs 5 --threads 2 --determinism "$DETERMINISM" --timeout "$TIMEOUT" "${epochs[@]}" "${only[@]}" \
  --output "$OUT/neusight-training-$card.json" 2>&1 | tee "$OUT/train.log"
rc=${PIPESTATUS[0]}
# the weights and their manifest only (the training sets under dataset/ are rebuilt from the checkout)
[ -d /tmp/ns-weights ] && tar -C /tmp/ns-weights -cJf "$OUT/weights.tar.xz" weights.json MLP_WAVE
[ -d /tmp/ns-weights/.work ] && tar -C /tmp/ns-weights/.work -czf "$OUT/train-logs.tgz" .
exit "$rc"
