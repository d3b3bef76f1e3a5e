#!/usr/bin/env bash
# Build needle-cpu with AddressSanitizer + UndefinedBehaviorSanitizer and run its tests and the
# needle.testing conformance suite on it, with the long fuzzing profile: 50,000 native cases
# (tests/test_cpu_fuzz_native.py) and 10,000 NDArray cases (needle.testing's test_fuzz_ndarray.py),
# new ones each run (NEEDLE_FUZZ_SEED=random). Set NEEDLE_FUZZ_NATIVE_EXAMPLES,
# NEEDLE_FUZZ_NDARRAY_EXAMPLES or NEEDLE_FUZZ_SEED (an int: the default run's cases) to change that.
# The fuzz cases run in sandbox worker processes that inherit the sanitizers: a report kills the
# worker, and the case fails with the report and its reproducer. Case counts go to
# build/fuzz-stats.txt.
#
#   packages/needle-cpu/tools/sanitize.sh [extra pytest args]
#
# It uses its own virtualenv (build/sanitize-venv, made with $PYTHON, default python3) and its
# own CMake build dir (build/sanitize), so the regular build and install are left alone.
# Python itself is not built with ASan, so libasan is LD_PRELOADed into the interpreter; leak
# checking is off (CPython keeps memory alive on purpose at exit), and impossible allocations
# return null (the tests check that they raise MemoryError) instead of aborting.
set -euo pipefail

PKG="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO="$(cd "$PKG/../.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENV="${SANITIZE_VENV:-$PKG/build/sanitize-venv}"
CXX="${CXX:-g++}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "sanitize: creating $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade "pip>=23" >/dev/null
"$PY" -m pip install -q "numpy>=1.22" "pluggy>=1.0" "pytest>=7" "hypothesis>=6.100" "scikit-build-core>=0.10" "pybind11>=2.12"
"$PY" -m pip install -q "$REPO/packages/needle-core"

echo "sanitize: building needle-cpu with -fsanitize=address,undefined"
"$PY" -m pip install -q --no-deps --no-build-isolation --force-reinstall \
  -Ccmake.define.NEEDLE_CPU_SANITIZE=ON -Ccmake.build-type=Debug -Cbuild-dir="$PKG/build/sanitize" "$PKG"

LIBASAN="$("$CXX" -print-file-name=libasan.so)"
LIBUBSAN="$("$CXX" -print-file-name=libubsan.so)"
if [ ! -e "$LIBASAN" ]; then
  echo "sanitize: libasan.so not found (is $CXX the compiler that built the extension?)" >&2
  exit 2
fi

export LD_PRELOAD="$LIBASAN:$LIBUBSAN${LD_PRELOAD:+:$LD_PRELOAD}"
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:abort_on_error=1:strict_string_checks=1:check_initialization_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export NEEDLE_BACKEND=cpu NEEDLE_TEST_BACKENDS=cpu NEEDLE_PLUGINS_STRICT=1
export NEEDLE_FUZZ_NATIVE_EXAMPLES="${NEEDLE_FUZZ_NATIVE_EXAMPLES:-50000}"
export NEEDLE_FUZZ_NDARRAY_EXAMPLES="${NEEDLE_FUZZ_NDARRAY_EXAMPLES:-10000}"
export NEEDLE_FUZZ_SEED="${NEEDLE_FUZZ_SEED:-random}"
export NEEDLE_FUZZ_TIMEOUT="${NEEDLE_FUZZ_TIMEOUT:-300}"  # -O0 kernels under ASan are slow: a hang is 5 minutes
export NEEDLE_FUZZ_STATS="$PKG/build/fuzz-stats.txt"
rm -f "$NEEDLE_FUZZ_STATS"

# A sanitizer report aborts the process, so a non-zero exit here is a finding, not a flaky test.
cd "$PKG/build"
"$PY" -c "import needle_cpu, needle; assert needle.device('cpu').enabled(); print('sanitize: needle-cpu', needle_cpu.__version__, 'isa', needle_cpu.isa())"
"$PY" -m pytest -q -p no:cacheprovider --import-mode=importlib "$PKG/tests" "$@"
"$PY" -m pytest -q -p no:cacheprovider --pyargs needle.testing "$@"
cat "$NEEDLE_FUZZ_STATS"
echo "sanitize: no ASan/UBSan findings"
