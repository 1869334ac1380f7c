# Sourced (from the repository root) by the device-*.sh scripts: on a lent GPU machine, install the
# carried wheels of mtap-schemas' dependencies (WHEELS, default .gt-whl; none there: the packages
# must be present) into /tmp/gt-site, put schemas/ and groundtruth on PYTHONPATH, and set the
# environment every run uses (unbuffered output, NVLink multicast off). PY: the interpreter
# (default python3). Exits 9 when the wheels do not install.
PY=${PY:-python3}; WHEELS=${WHEELS:-.gt-whl}
if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gt-site "$WHEELS"/*.whl || exit 9
  export PYTHONPATH=/tmp/gt-site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}schemas/src:packages/groundtruth/src
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
