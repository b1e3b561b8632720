#!/usr/bin/env bash
# Build pydqn._C with ThreadSanitizer and, separately, with AddressSanitizer + UBSan, then run the
# replay-buffer tests against each instrumented build. Exits non-zero if a build fails, a test fails,
# or a sanitizer reports anything; prints one summary line per sanitizer.
#
# Usage:  scripts/sanitize.sh [thread|address|all] [test paths...] [pytest args...]
#   kind        default: all (thread, then address)
#   test paths  default: tests/replay/test_*.py, except files with "atari" in the name
#   e.g.        scripts/sanitize.sh thread tests/replay/test_concurrency.py -x -k sample
#
# Python: $PYTHON, else $VIRTUAL_ENV/bin/python, else .venv/bin/python, else python3 on PATH. It
# must have torch, pytest and hypothesis installed; pytest is run from the same bin/ directory.
#   e.g.  PYTHON=/work/venv/bin/python scripts/sanitize.sh
#
# Each kind builds with plain CMake into build/sanitize-<kind>/ (incremental on re-runs), stages an
# importable package in build/sanitize-<kind>/stage/pydqn/ (pydqn/*.py plus the instrumented _C and
# _build_info.py), and runs pytest with that stage first on PYTHONPATH and the sanitizer runtime
# preloaded (the Python interpreter itself is not instrumented). A small pytest plugin in the stage
# stops the session if `pydqn._C` was imported from anywhere else (e.g. an installed pydqn).
# Logs (sanitizer reports included): build/sanitize-<kind>/{build,pytest}.log.
# TSan suppressions: scripts/tsan.supp.
# What TSan does and does not prove here: GCC's TSan does not model standalone fences
# (atomic_thread_fence; it warns -Wtsan at build time). It checks that every non-atomic access is
# ordered by acquire/release operations on atomics (stream leases, the chunk free list, slot
# versions), but not the seqlock's fence pairing between a writer's release fence and a reader's
# acquire fence. That pairing is exercised by tests/replay/test_concurrency.py, whose stamped frames
# fail when the reader's version re-check is removed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# --- Arguments and environment ---------------------------------------------------------------------
KIND="all"
if [[ $# -gt 0 ]]; then
  case "$1" in
    thread | address | all) KIND="$1"; shift ;;
    -*) ;;  # a pytest option: keep the default kind
    *) [[ -e "${1%%::*}" ]] || { echo "sanitize.sh: unknown kind '$1' (thread|address|all)" >&2; exit 2; } ;;
  esac
fi

# Arguments naming an existing file or directory (optionally followed by ::test) are test paths;
# the rest go to pytest unchanged.
TEST_PATHS=()
PYTEST_ARGS=()
for arg in "$@"; do
  if [[ "$arg" != -* && -e "${arg%%::*}" ]]; then TEST_PATHS+=("$arg"); else PYTEST_ARGS+=("$arg"); fi
done
if [[ ${#TEST_PATHS[@]} -eq 0 ]]; then
  for f in tests/replay/test_*.py; do
    if [[ -e "$f" && "$f" != *atari* ]]; then TEST_PATHS+=("$f"); fi
  done
  [[ ${#TEST_PATHS[@]} -gt 0 ]] || { echo "sanitize.sh: no tests/replay/test_*.py found" >&2; exit 2; }
fi

if [[ -n "${PYTHON:-}" ]]; then PY="$PYTHON"
elif [[ -n "${VIRTUAL_ENV:-}" ]]; then PY="$VIRTUAL_ENV/bin/python"
elif [[ -x .venv/bin/python ]]; then PY="$ROOT/.venv/bin/python"
else PY="$(command -v python3 || true)"
fi
PYTEST="$(dirname "$PY")/pytest"
if ! "$PY" -c "import torch, pytest, hypothesis" 2>/dev/null || [[ ! -x "$PYTEST" ]]; then
  echo "sanitize.sh: '$PY' lacks torch/pytest/hypothesis (or $PYTEST is missing);" \
       "set PYTHON=/path/to/venv/bin/python" >&2
  exit 2
fi

# torch's intra-op pool (OpenMP) at one thread: no uninstrumented worker threads to add noise.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
export PYTHONDONTWRITEBYTECODE=1
# tests/replay/test_concurrency.py hammers the buffer for PYDQN_STRESS_SECONDS and then asserts a
# minimum number of adds and samples; instrumented code is several times slower (TSan most), so
# unless the caller chose a duration, give it longer per kind (see run_tests).
STRESS_SECONDS_SET="${PYDQN_STRESS_SECONDS:-}"

# First line of any TSan/ASan/UBSan report.
REPORT_PATTERN='(WARNING|ERROR): (Thread|Address|Leak|UndefinedBehavior)Sanitizer|[^ ]*: runtime error: '

# --- Steps -----------------------------------------------------------------------------------------
# build KIND: configure and compile the instrumented extension into build/sanitize-KIND.
build() {
  local kind="$1" dir="build/sanitize-$1" generator=()
  mkdir -p "$dir"
  # Ninja when installed, else CMake's default generator (a fresh CI venv has no ninja).
  if command -v ninja >/dev/null && [[ ! -f "$dir/CMakeCache.txt" ]]; then generator=(-G Ninja); fi
  if ! { cmake -S . -B "$dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
           -DPython_EXECUTABLE="$PY" -DPYDQN_SANITIZE="$kind" &&
         cmake --build "$dir" -j "$(nproc)"; } >"$dir/build.log" 2>&1; then
    tail -n 40 "$dir/build.log" >&2
    return 1
  fi
}

# stage KIND: assemble an importable pydqn package from the sources and the instrumented build.
stage() {
  local dir="$ROOT/build/sanitize-$1"
  local pkg="$dir/stage/pydqn"
  rm -rf "$dir/stage"
  mkdir -p "$pkg"
  (cd pydqn && find . -name '*.py' -not -path '*/__pycache__/*' -exec cp --parents {} "$pkg/" \;)
  cp "$dir"/_C*.so "$dir/_build_info.py" "$pkg/"
  # Loaded with `-p`: stops the session unless the tests import the instrumented _C of this stage.
  cat >"$dir/stage/_pydqn_sanitize_check.py" <<'PY'
import os

import pytest


def pytest_sessionstart(session):
    import pydqn._C
    expected = os.path.join(os.environ["PYDQN_SANITIZE_STAGE"], "pydqn")
    if os.path.dirname(os.path.abspath(pydqn._C.__file__)) != expected:
        pytest.exit(f"pydqn._C was imported from {pydqn._C.__file__}, not from {expected}", 3)


def pytest_report_header(config):
    import pydqn._C
    return f"pydqn._C (sanitized): {pydqn._C.__file__}"
PY
}

# run_tests KIND: run pytest on the staged build with the sanitizer runtime preloaded.
run_tests() {
  local kind="$1" dir="$ROOT/build/sanitize-$1"
  # An editable install (README's developer loop) puts scikit-build-core's import hook ahead of
  # PYTHONPATH, and it would rebuild and load the uninstrumented extension; listing its build
  # directories in SKBUILD_EDITABLE_SKIP turns the hook off for this run.
  local skip
  skip=$(find "$ROOT/build" -mindepth 1 -maxdepth 1 -type d ! -name 'sanitize-*' -printf '%p:')
  local -a env_vars=(PYTHONPATH="$dir/stage" PYDQN_SANITIZE_STAGE="$dir/stage"
                     SKBUILD_EDITABLE_SKIP="$skip") launcher=()
  case "$kind" in
    thread)
      local tsan
      tsan="$(g++ -print-file-name=libtsan.so)"
      # TSan runs with ASLR off wherever setarch can turn it off: with randomized mmap, some
      # layouts fall outside TSan's shadow mapping, which dies with "unexpected memory mapping" or,
      # by chance in one run of several, "failed to allocate" (ENOMEM) mid-suite; a probe run
      # cannot tell, since its own layout is random too.
      if setarch "$(uname -m)" -R true 2>/dev/null; then
        launcher=(setarch "$(uname -m)" -R)
      fi
      env_vars+=(PYDQN_STRESS_SECONDS="${STRESS_SECONDS_SET:-40}"
                 LD_PRELOAD="$tsan"
                 TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:exitcode=66:allocator_may_return_null=1:suppressions=$ROOT/scripts/tsan.supp")
      ;;
    address)
      # No leak checking: CPython's own allocations are not ours to fix. PYTHONMALLOC=malloc sends
      # Python objects through ASan's allocator too, so the buffers the bindings touch are checked.
      env_vars+=(PYDQN_STRESS_SECONDS="${STRESS_SECONDS_SET:-15}"
                 LD_PRELOAD="$(g++ -print-file-name=libasan.so):$(g++ -print-file-name=libubsan.so)"
                 ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:exitcode=66:allocator_may_return_null=1"
                 UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
                 PYTHONMALLOC=malloc)
      ;;
  esac
  # --capture=sys: pytest captures Python's sys.stdout/err only, not file descriptor 2, so reports
  # (written to fd 2 by the sanitizer runtimes) reach the terminal and the log even when the
  # sanitizer kills the process mid-test, which would discard fd-captured output.
  local rc=0
  if ! env "${env_vars[@]}" "${launcher[@]}" "$PYTEST" -p no:cacheprovider -p _pydqn_sanitize_check \
         --capture=sys "${TEST_PATHS[@]}" "${PYTEST_ARGS[@]}" 2>&1 | tee "$dir/pytest.log"; then
    rc=${PIPESTATUS[0]}
    [[ $rc -ne 0 ]] || rc=1  # tee failed
  fi
  # Any report fails the run, even one from a process whose exit status got lost; not the "failed to
  # allocate" warning that allocator_may_return_null prints for the null it returns (an impossible
  # allocation returns null, as glibc's does, so the tests of MemoryError see production behaviour).
  if grep -E "$REPORT_PATTERN" "$dir/pytest.log" | grep -qv "Sanitizer failed to allocate "; then
    echo "sanitize.sh: the $kind sanitizer reported errors (see $dir/pytest.log)" >&2
    [[ $rc -ne 0 ]] || rc=66
  fi
  return "$rc"
}

# sanitize KIND: build, stage and test one kind; record its summary line.
SUMMARY=()
FAILED=0
sanitize() {
  local kind="$1" t0 t1 rc=0 result outcome log
  echo "=== sanitize: $kind ==="
  t0=$SECONDS
  if ! build "$kind"; then
    SUMMARY+=("sanitize $kind: FAIL (build failed, see build/sanitize-$kind/build.log)")
    FAILED=1
    return
  fi
  t1=$SECONDS
  stage "$kind"
  run_tests "$kind" || rc=$?
  # Outcome: the first sanitizer report's headline, else pytest's final counts.
  log="build/sanitize-$kind/pytest.log"
  outcome="$(grep -m 1 -E "SUMMARY: .*Sanitizer" "$log" ||
             grep -oE "($REPORT_PATTERN).*" "$log" | grep -v "Sanitizer failed to allocate " | grep -m 1 . ||
             grep -E '(passed|failed|error|skipped|deselected|no tests ran).* in [0-9.]+s' "$log" |
               tail -n 1 | sed 's/^=* *//; s/ *=*$//' || true)"
  if [[ $rc -eq 0 ]]; then result="PASS"; else result="FAIL (exit $rc)"; FAILED=1; fi
  SUMMARY+=("sanitize $kind: $result; build $((t1 - t0))s, tests $((SECONDS - t1))s; ${outcome:-no pytest summary}")
}

case "$KIND" in
  all) sanitize thread; sanitize address ;;
  *) sanitize "$KIND" ;;
esac

echo
printf '%s\n' "${SUMMARY[@]}"
exit "$FAILED"
