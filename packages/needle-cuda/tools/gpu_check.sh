#!/usr/bin/env bash
# needle-cuda on a real GPU, in one go: for a session that is lent a GPU machine (run from the repo root).
#
#   bash packages/needle-cuda/tools/gpu_check.sh --prepare
#       here, where pip reaches an index: builds the pure-Python wheels of needle-core, needle-nn,
#       needle-data, needle-cuda and needle-dist into .gpu-wheels/ (ignored by git), because the GPU
#       machine can fetch nothing and has no hatchling to build them;
#   bash packages/needle-cuda/tools/gpu_check.sh
#       there (device tool: carry [".gpu-wheels"], timeout_s 600): needle-core/nn/data + needle-cuda into a
#       fresh directory on PYTHONPATH over the machine's own CuPy/PyTorch/pytest (needle-cuda[cuda12] or
#       [cuda13] from nvidia-smi's CUDA version: installed with its extra where an index is reachable,
#       else checked against the machine's CuPy), then needle-cuda's tests, the conformance suite on cuda,
#       needle-nn's tests on cuda, needle-dist's NCCL test and benchmarks/bench_cuda.py --quick.
#
# Results go to $OUT (default ./gpu-check-out), at most 8 files (what the device tool returns):
# summary.txt (one line per step with its exit status and pytest's closing line), env.txt, and one log
# per step plus bench_cuda.json. Each step has a time cap and the whole run a budget
# (GPU_CHECK_BUDGET_S, default 540 s), so one slow step cannot eat the rest. Exit status: 0 when every
# step passed, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/../../.." || exit 2
ROOT=$(pwd)
WHEELS=${GPU_CHECK_WHEELS:-$ROOT/.gpu-wheels}
PYTHON=${PYTHON:-python3}
PACKAGES=(needle-core needle-nn needle-data needle-cuda needle-dist)

if [[ "${1:-}" == "--prepare" ]]; then
    rm -rf "$WHEELS" && mkdir -p "$WHEELS" || exit 2
    for pkg in "${PACKAGES[@]}"; do
        "$PYTHON" -m pip wheel -q --no-deps -w "$WHEELS" "packages/$pkg" || exit 1
    done
    exclude=$(git rev-parse --git-path info/exclude 2>/dev/null) && \
        { grep -qxF '/.gpu-wheels/' "$exclude" 2>/dev/null || echo '/.gpu-wheels/' >>"$exclude"; }
    ls -l "$WHEELS"
    echo "next, on the GPU machine: bash packages/needle-cuda/tools/gpu_check.sh  (carry .gpu-wheels)"
    exit 0
fi

OUT=${OUT:-$ROOT/gpu-check-out}
mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"
export PYTHONUNBUFFERED=1
START=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET_S:-540}
FAILED=0

note() { echo "$*" | tee -a "$SUMMARY"; }

# step NAME CAP_S LOG CMD...: run CMD with at most min(CAP_S, budget left) seconds, output to LOG.
step() {
    local name=$1 cap=$2 log=$3
    shift 3
    local left=$((BUDGET - ($(date +%s) - START)))
    ((cap > left)) && cap=$left
    if ((cap < 10)); then
        note "SKIP  $name: the time budget (${BUDGET}s) is spent"
        FAILED=1
        return
    fi
    local t0=$(date +%s)
    timeout --kill-after=10 "$cap" "$@" >>"$log" 2>&1
    local rc=$? took=$(($(date +%s) - t0))
    local last
    last=$(grep -E "^=*.*[0-9]+ (passed|failed|error|skipped)" "$log" | tail -1 | sed 's/=//g; s/^ *//')
    if ((rc == 0)); then
        note "PASS  $name (${took}s) ${last}"
    else
        ((rc == 124 || rc == 137)) && last="timed out after ${cap}s; $last"
        note "FAIL  $name (rc $rc, ${took}s) ${last}  -> $(basename "$log")"
        FAILED=1
    fi
}

# ---- the machine ---------------------------------------------------------------------------------
{
    echo "date: $(date -u +%FT%TZ)"
    nvidia-smi 2>&1 | head -20
    "$PYTHON" -c 'import sys; print("python", sys.version)'
    "$PYTHON" -m pip list 2>/dev/null | grep -iE "^(cupy|torch|numpy|pytest|mpi4py|nvidia-nccl|cuda-toolkit)"
} >"$OUT/env.txt" 2>&1
CUDA_MAJOR=$(nvidia-smi 2>/dev/null | grep -oE "CUDA Version: [0-9]+" | grep -oE "[0-9]+$" | head -1)
if [[ -z "$CUDA_MAJOR" ]]; then
    note "FAIL  nvidia-smi shows no CUDA driver: this is not a GPU machine"
    exit 1
fi
EXTRA=cuda12
((CUDA_MAJOR >= 13)) && EXTRA=cuda13
note "driver CUDA $CUDA_MAJOR -> needle-cuda[$EXTRA]"

# ---- a fresh environment on top of this interpreter's CuPy, PyTorch, pytest ---------------------------
# A fresh directory on PYTHONPATH rather than a venv: the GPU image's python3 is itself a venv, and
# CuPy finds its CUDA libraries (NVRTC, cuBLAS, NCCL wheels) only from the interpreter it was
# installed in (tried: a venv seeing the image's site-packages through a .pth loses NVRTC and NCCL).
SITE=$(mktemp -d /tmp/needle-gpu-site.XXXX)
INSTALL=$OUT/install.log
(
    if [[ -d "$WHEELS" ]]; then  # offline: the wheels --prepare built, dependencies from the machine
        "$PYTHON" -m pip install -q --no-index --no-deps --find-links "$WHEELS" --target "$SITE" \
            "${PACKAGES[@]}" || exit 1
    else  # a machine that reaches an index: from the tree, needle-cuda with its CuPy extra
        "$PYTHON" -m pip install -q --target "$SITE" packages/needle-core packages/needle-nn \
            packages/needle-data "packages/needle-cuda[$EXTRA]" pytest || exit 1
        "$PYTHON" -m pip install -q --no-deps --target "$SITE" packages/needle-dist || exit 1
    fi
) >"$INSTALL" 2>&1
if (($? != 0)); then
    note "FAIL  install (see env.txt)"
    { echo "---- install.log"; cat "$INSTALL"; } >>"$OUT/env.txt"
    exit 1
fi
export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
PY=$PYTHON
if ! "$PY" -c 'import numpy, pluggy, pytest' >>"$INSTALL" 2>&1; then
    note "FAIL  numpy, pluggy or pytest missing on this machine (see env.txt)"
    FAILED=1
fi
# The CuPy that needle-cuda[$EXTRA] asks for (cupy-cudaNNx); offline it has to be the machine's own.
cupy_dist=cupy-cuda${CUDA_MAJOR}x
((CUDA_MAJOR > 13)) && cupy_dist=cupy-cuda13x
if found=$("$PY" -m pip show "$cupy_dist" 2>/dev/null | grep -m1 '^Version:'); then
    note "$cupy_dist ${found#Version: } (what needle-cuda[$EXTRA] installs)"
else
    note "note: $cupy_dist (needle-cuda[$EXTRA]) is not installed; CuPy here: $("$PY" -m pip list 2>/dev/null \
        | grep -i '^cupy' | tr -s ' ' | paste -sd, -)"
fi
{ "$PY" -m needle; "$PY" -m needle check cuda; } >>"$OUT/env.txt" 2>&1
PYTEST=("$PY" -m pytest -c "$ROOT/pyproject.toml" --rootdir "$ROOT" -q -rs -p no:cacheprovider)
if "$PY" -c 'import needle, sys; d = needle.cuda(); sys.exit(0 if d.enabled() else d.disabled_reason)' \
    >>"$OUT/env.txt" 2>&1; then
    note "cuda backend enabled; python -m needle check cuda: $(grep -m1 'PASS:\|FAIL:' "$OUT/env.txt")"
else
    note "FAIL  the cuda backend is not enabled: $(tail -1 "$OUT/env.txt")"
    step "needle-cuda tests (host-side; the GPU ones skip)" 150 "$OUT/cuda_tests.log" \
        "${PYTEST[@]}" packages/needle-cuda/tests
    { echo "---- install.log"; cat "$INSTALL"; } >>"$OUT/env.txt" && rm -f "$INSTALL"
    rm -rf "$SITE"
    exit 1
fi

# ---- the checks ----------------------------------------------------------------------------------
step "needle-cuda tests (host-side + GPU)" 240 "$OUT/cuda_tests.log" "${PYTEST[@]}" packages/needle-cuda/tests
step "conformance suite on cuda" 180 "$OUT/conformance.log" \
    env NEEDLE_TEST_BACKENDS=cuda "${PYTEST[@]}" --pyargs needle.testing
step "needle-nn tests on cuda" 150 "$OUT/nn_tests.log" \
    env NEEDLE_BACKEND=cuda "${PYTEST[@]}" packages/needle-nn/tests
step "needle-dist NCCL test (one rank)" 60 "$OUT/dist_nccl.log" \
    env NEEDLE_BACKEND=cuda "${PYTEST[@]}" packages/needle-dist/tests/test_dist_nccl.py
step "benchmarks/bench_cuda.py --quick" 150 "$OUT/bench_cuda.log" \
    "$PY" benchmarks/bench_cuda.py --quick --json "$OUT/bench_cuda.json"
# install.log is the 9th file: fold it into env.txt so that at most 8 come back.
{ echo "---- install.log"; cat "$INSTALL"; } >>"$OUT/env.txt" && rm -f "$INSTALL"

note "total $(($(date +%s) - START))s; $( ((FAILED)) && echo 'SOME STEPS FAILED' || echo 'all steps passed')"
rm -rf "$SITE"
exit $FAILED
