#!/usr/bin/env bash
# Build and run the C++ unit tests of the replay data structures (csrc/*/*_test.cpp, GoogleTest)
# plainly, under ThreadSanitizer, and under AddressSanitizer + UBSan. Exits non-zero if a build
# fails, a test fails, or a sanitizer reports anything; prints one summary line per kind.
#
# Usage:  scripts/cpp_tests.sh [plain|thread|address|all] [gtest args...]
#   kind        default: all (plain, thread, address)
#   e.g.        scripts/cpp_tests.sh thread --gtest_filter='TransitionRing*' --gtest_repeat=5
#
# Needs GoogleTest installed system-wide (CMake's find_package(GTest); on Debian/Ubuntu
# `apt-get install -y libgtest-dev`) and cmake; this script installs nothing. Python only locates
# torch's headers and libraries (as for the extension): $PYTHON, else $VIRTUAL_ENV/bin/python,
# else .venv/bin/python, else python3 on PATH; it must have torch and numpy.
#
# Each kind builds only the pydqn_cpp_tests target with plain CMake into build/cpp-tests-<kind>/
# (incremental on re-runs; -DPYDQN_BUILD_CPP_TESTS=ON -DPYDQN_SANITIZE=<kind>) and runs it, with no
# Python in the process: every thread TSan sees is a test's own. Logs: build/cpp-tests-<kind>/
# {build,test}.log. TSan suppressions: scripts/tsan.supp (shared with scripts/sanitize.sh).
#
# What the TSan run proves here: GCC's TSan does not model standalone fences (atomic_thread_fence;
# -Wtsan warns at build time), so it does not check the seqlock's pairing of a writer's release
# fence with a reader's acquire fence in TransitionRing. It does check that every non-atomic
# access the tests make is ordered by acquire/release operations on atomics: frame bytes handed
# between threads through the FrameStore free list, pooled blocks handed through BlockPool's slots
# and tensor deleters (weakening either to relaxed makes this run fail); the tests' ownership
# markers are relaxed atomics, so they order nothing themselves. The fence pairing is checked, in
# every kind, by the torn-read oracle of TransitionRingConcurrency.* (stamped records; those tests
# fail when TransitionRing::read_valid's version re-check is removed).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

KIND="all"
if [[ $# -gt 0 && "$1" != -* ]]; then
  case "$1" in
    plain | thread | address | all) KIND="$1"; shift ;;
    *) echo "cpp_tests.sh: unknown kind '$1' (plain|thread|address|all)" >&2; exit 2 ;;
  esac
fi
GTEST_ARGS=("$@")

if [[ -n "${PYTHON:-}" ]]; then PY="$PYTHON"
elif [[ -n "${VIRTUAL_ENV:-}" ]]; then PY="$VIRTUAL_ENV/bin/python"
elif [[ -x .venv/bin/python ]]; then PY="$ROOT/.venv/bin/python"
else PY="$(command -v python3 || true)"
fi
if [[ -z "$PY" ]] || ! "$PY" -c "import torch, numpy" 2>/dev/null; then
  echo "cpp_tests.sh: '$PY' lacks torch/numpy; set PYTHON=/path/to/venv/bin/python" >&2
  exit 2
fi
CMAKE="$(command -v cmake || true)"
[[ -n "$CMAKE" ]] || CMAKE="$(dirname "$PY")/cmake"
[[ -x "$CMAKE" ]] || { echo "cpp_tests.sh: cmake not found (pip install cmake)" >&2; exit 2; }

# torch's intra-op pool (OpenMP) at one thread: no uninstrumented worker threads to add noise.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

# First line of any TSan/ASan/UBSan report.
REPORT_PATTERN='(WARNING|ERROR): (Thread|Address|Leak|UndefinedBehavior)Sanitizer|[^ ]*: runtime error: '

# build KIND: configure and compile pydqn_cpp_tests into build/cpp-tests-KIND.
build() {
  local kind="$1" dir="build/cpp-tests-$1" sanitize="" generator=()
  [[ "$kind" == plain ]] || sanitize="$kind"
  mkdir -p "$dir"
  # Ninja when installed, else CMake's default generator (a fresh CI venv may have no ninja).
  if command -v ninja >/dev/null && [[ ! -f "$dir/CMakeCache.txt" ]]; then generator=(-G Ninja); fi
  if ! "$CMAKE" -S . -B "$dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
         -DPython_EXECUTABLE="$PY" -DPYDQN_BUILD_CPP_TESTS=ON -DPYDQN_SANITIZE="$sanitize" \
         >"$dir/build.log" 2>&1; then
    if grep -q "needs GoogleTest" "$dir/build.log"; then
      echo "cpp_tests.sh: GoogleTest not found; install it first (apt-get install -y libgtest-dev)" >&2
    else
      tail -n 40 "$dir/build.log" >&2
    fi
    return 1
  fi
  if ! "$CMAKE" --build "$dir" --target pydqn_cpp_tests -j "$(nproc)" >>"$dir/build.log" 2>&1; then
    tail -n 40 "$dir/build.log" >&2
    return 1
  fi
}

# run_tests KIND: run the executable with KIND's sanitizer options, logging to test.log.
run_tests() {
  local kind="$1" dir="$ROOT/build/cpp-tests-$1" env_vars=() launcher=()
  local exe="$dir/pydqn_cpp_tests"
  # allocator_may_return_null: an impossible allocation returns null, as glibc's does, so the test
  # of BlockPool's std::bad_alloc path sees production behaviour instead of a sanitizer abort.
  case "$kind" in
    thread)
      # With ASLR off wherever setarch can turn it off, as in sanitize.sh (see there: randomized
      # layouts can fall outside TSan's shadow mapping, and a probe run cannot tell).
      if setarch "$(uname -m)" -R true 2>/dev/null; then
        launcher=(setarch "$(uname -m)" -R)
      fi
      env_vars+=(TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:exitcode=66:allocator_may_return_null=1:suppressions=$ROOT/scripts/tsan.supp")
      ;;
    address)
      # Leaks are checked: no Python here, so every allocation that outlives main is ours or torch's.
      env_vars+=(ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:exitcode=66:allocator_may_return_null=1"
                 UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
      ;;
  esac
  local rc=0
  if ! env "${env_vars[@]}" "${launcher[@]}" "$exe" "${GTEST_ARGS[@]}" 2>&1 | tee "$dir/test.log"; then
    rc=${PIPESTATUS[0]}
    [[ $rc -ne 0 ]] || rc=1  # tee failed
  fi
  # Any report fails the run, even one from a death test's child whose exit status was expected;
  # not the "failed to allocate" warning that allocator_may_return_null prints for the null it returns.
  if grep -E "$REPORT_PATTERN" "$dir/test.log" | grep -qv "Sanitizer failed to allocate "; then
    echo "cpp_tests.sh: the $kind sanitizer reported errors (see $dir/test.log)" >&2
    [[ $rc -ne 0 ]] || rc=66
  fi
  return "$rc"
}

SUMMARY=()
FAILED=0
one_kind() {
  local kind="$1" t0 t1 rc=0 outcome log="build/cpp-tests-$1/test.log"
  echo "=== cpp tests: $kind ==="
  t0=$SECONDS
  if ! build "$kind"; then
    SUMMARY+=("cpp tests $kind: FAIL (build failed, see build/cpp-tests-$kind/build.log)")
    FAILED=1
    return
  fi
  t1=$SECONDS
  run_tests "$kind" || rc=$?
  outcome="$(grep -m 1 -E "SUMMARY: .*Sanitizer" "$log" ||
             grep -oE "[0-9]+ tests? from [0-9]+ test suites? ran.*|[0-9]+ FAILED TESTS?" "$log" |
               tr '\n' ' ' || true)"
  local result="PASS"
  if [[ $rc -ne 0 ]]; then result="FAIL (exit $rc)"; FAILED=1; fi
  SUMMARY+=("cpp tests $kind: $result; build $((t1 - t0))s, tests $((SECONDS - t1))s; ${outcome:-no gtest summary}")
}

case "$KIND" in
  all) one_kind plain; one_kind thread; one_kind address ;;
  *) one_kind "$KIND" ;;
esac

echo
printf '%s\n' "${SUMMARY[@]}"
exit "$FAILED"
