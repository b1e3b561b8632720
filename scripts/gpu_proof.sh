#!/usr/bin/env bash
# The GPU proof (issue 16): on a lent GPU machine, build pydqn against its torch, run the whole test
# suite with the CUDA tests required, compute-sanitizer over the CUDA tests, the GPU benchmarks and
# a Pong training run; every log goes under $OUT (the folder the device tool brings back).
#
# Here, on the CPU machine, once per session (the GPU image lacks these; nothing can be fetched
# there): the Python 3.12 wheels into .whl/, which this adds to git's exclude file.
#   scripts/gpu_proof.sh wheels
# Then two device calls, back to back: a machine stays warm 30 s after a call, and the second call
# then finds the build (else it builds again, inside its own budget):
#   run(command="scripts/gpu_proof.sh check", carry=[".whl"], timeout_s=330)    # build, tests, sanitizers
#   run(command="scripts/gpu_proof.sh measure", carry=[".whl"], timeout_s=450)  # benchmarks, Pong run
# One stage alone, to rerun it after a fix (build first if needed), with the seconds left to give:
#   GPU_PROOF_BUDGET=150 scripts/gpu_proof.sh build|test|sanitize|bench|train
# Each call leaves $OUT/summary.txt (the tables and verdicts, also printed), $OUT/logs.tar.gz (every
# log, the benchmark JSON, the Pong run's CSVs) and, after a Pong run, $OUT/learning_curve.png.
#
# Settings (environment): PYTHON (python3), OUT (build/gpu-proof/out), GPU_PROOF_BUDGET (the seconds
# this call may take: 270 for check, 390 for measure, 150 for one stage; every step is bounded by
# its share of what is left), GPU_PROOF_TRAIN_SECONDS (caps the Pong run), GPU_PROOF_WORKERS
# (pytest-xdist workers, 8), GPU_PROOF_CUDA_ARCH (the compute capability to compile for; default:
# the GPU's), GPU_PROOF_REHEARSAL=1 (a machine without a GPU, with nvcc, GPU_PROOF_CUDA_ARCH set and
# a large budget: the same steps on the CPU at small sizes, CUDA tests not required, no sanitizers;
# it checks the plumbing and proves nothing).
set -uo pipefail # not -e: a failed step is recorded and the next one still runs
cd "$(dirname "$0")/.." || exit 2
REPO=$PWD
PYTHON=${PYTHON:-python3}
OUT=${OUT:-$REPO/build/gpu-proof/out}
STATE=$REPO/build/gpu-proof # kept between calls while the machine stays warm
LOGS=$STATE/logs
REHEARSAL=${GPU_PROOF_REHEARSAL:-0}
WHEELS=(gymnasium==1.4.0 farama-notifications==0.0.6 ale-py==0.12.1 stable-baselines3==2.9.2)
DEVICE=cuda
[[ $REHEARSAL == 1 ]] && DEVICE=cpu
# The CUDA tests that compute-sanitizer runs: the whole tree's collection would take its budget.
SANITIZED=(tests/replay/test_device.py tests/replay/test_prioritized.py tests/ops tests/agent/test_learner.py
  tests/integrations/sb3/test_sb3_buffer.py tests/training/test_trainer.py)
export PYTHONUNBUFFERED=1 # a step stopped at its limit keeps what it printed
mkdir -p "$OUT" "$LOGS"
# Python runs outside the checkout: there, `import pydqn` would find the source tree first.
SCRATCH=$(mktemp -d)
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"
failures=0
# The logs come back whatever happens to the steps (the tool returns $OUT even after a timeout).
trap 'tar -czf "$OUT/logs.tar.gz" -C "$STATE" logs 2>/dev/null' EXIT

say() { echo "gpu_proof: $*" | tee -a "$SUMMARY"; }
left() { echo $((BUDGET - SECONDS)); }
record() { # record WHAT EXIT_STATUS
  if [[ $2 == 0 ]]; then say "$1: passed"; else
    if [[ $2 == 124 ]]; then
      say "$1: TIMED OUT (its share of the budget ran out)"
    else
      say "$1: FAILED (exit $2)"
    fi
    failures=$((failures + 1))
  fi
}
# step SECONDS OUT ERR COMMAND...: COMMAND, run from $SCRATCH with stdout to OUT and stderr to ERR
# (the same file: both there), stopped after SECONDS; under 10 seconds it does not start, and
# returns 124 as if it had timed out.
step() {
  local seconds=$1 out=$2 err=$3
  shift 3
  ((seconds >= 10)) || { echo "not started: $seconds s of the budget left" >"$err"; return 124; }
  if [[ $out == "$err" ]]; then
    (cd "$SCRATCH" && timeout "$seconds" "$@") >"$out" 2>&1
  else
    (cd "$SCRATCH" && timeout "$seconds" "$@") >"$out" 2>"$err"
  fi
}
at_most() { # at_most SECONDS: SECONDS, or what is left of the budget if that is less
  local rest
  rest=$(left)
  echo $(($1 < rest ? $1 : rest))
}
has_module() { (cd "$SCRATCH" && "$PYTHON" -c "import $1" 2>/dev/null); }
report() { (cd "$SCRATCH" && "$PYTHON" "$REPO/scripts/gpu_proof_report.py" "$@"); }

source_hash() {
  find csrc pydqn CMakeLists.txt pyproject.toml -type f ! -name '*.so' ! -name '_build_info.py' \
    ! -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha1sum | sha1sum | cut -c1-16
}

check_import() {
  (cd "$SCRATCH" && "$PYTHON" - <<'PY'
import torch

import pydqn
from pydqn._extension import load_extension

gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
kernels = "ON" if load_extension().WITH_CUDA else "OFF"
print(f"pydqn {pydqn.__file__}: torch {torch.__version__}, CUDA kernels {kernels}, GPU {gpu}")
assert kernels == "ON", "pydqn was built without its CUDA kernels"
PY
  )
}

cuda_arch() {
  [[ -n ${GPU_PROOF_CUDA_ARCH:-} ]] && { echo "$GPU_PROOF_CUDA_ARCH"; return; }
  (cd "$SCRATCH" && "$PYTHON" -c "import torch; print('%d%d' % torch.cuda.get_device_capability())")
}

stage_wheels() {
  local exclude
  exclude=$(git rev-parse --git-path info/exclude)
  mkdir -p "$(dirname "$exclude")" .whl
  grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >>"$exclude"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "${WHEELS[@]}" || return
  ls -l .whl
}

stage_build() {
  local hash arch status started=$SECONDS
  hash=$(source_hash)
  if [[ -f $STATE/installed && $(cat "$STATE/installed") == "$hash" ]] && check_import >>"$LOGS/build.log" 2>&1; then
    say "build: pydqn $hash is installed already"
    return 0
  fi
  { nvidia-smi; nvcc --version; } >"$LOGS/machine.txt" 2>&1
  say "machine: $( (nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader ||
    echo no nvidia-smi) 2>/dev/null | head -1); nvcc $(nvcc --version | grep -o 'release [0-9.]*'); $(nproc) cores"
  arch=$(cuda_arch) || { record "build: the GPU's compute capability" 1; return 1; }
  say "build: pip install --no-build-isolation .[sb3], kernels for sm_$arch"
  # The extras the image lacks come from .whl; everything else (torch, numpy, opencv) is the image's.
  step "$(left)" "$LOGS/build.log" "$LOGS/build.log" env CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$PYTHON" -m pip install -v --no-build-isolation --no-index --find-links "$REPO/.whl" \
    -C build-dir="$STATE/build" \
    -C cmake.define.PYDQN_CUDA_ARCHITECTURES="$arch" "${REPO}[sb3]"
  status=$?
  grep "pydqn: CUDA kernels" "$LOGS/build.log" | sed 's/^ *//' | tee -a "$SUMMARY"
  if ((status == 0)) && ! grep -q "pydqn: CUDA kernels ON" "$LOGS/build.log"; then
    say "build: CMake compiled no CUDA kernels"
    status=1
  fi
  if ((status != 0)); then
    tail -40 "$LOGS/build.log"
    record "build" "$status"
    return 1
  fi
  check_import 2>&1 | tee -a "$SUMMARY"
  status=${PIPESTATUS[0]}
  record "build ($((SECONDS - started)) s)" "$status"
  ((status == 0)) && echo "$hash" >"$STATE/installed"
  return "$status"
}

stage_test() {
  local args=(-q -p no:cacheprovider) require=1 status
  [[ $REHEARSAL == 1 ]] && require=0
  has_module xdist && args+=(-n "${GPU_PROOF_WORKERS:-8}")
  has_module pytest_timeout && args+=(--timeout 150) # a hang names its test, inside the budget
  say "tests: PYDQN_REQUIRE_CUDA=$require pytest tests ${args[*]} (Ray is not in the image: the Ape-X tests skip)"
  # Two threads per worker: eight workers with torch's default of one per core oversubscribe it.
  step $(($(left) - 15)) "$LOGS/tests.log" "$LOGS/tests.log" \
    env OMP_NUM_THREADS=2 PYDQN_REQUIRE_CUDA=$require \
    "$PYTHON" -m pytest "$REPO/tests" "${args[@]}" --junitxml "$LOGS/tests.xml"
  status=$?
  grep -E "^(FAILED|ERROR) " "$LOGS/tests.log" | head -40 | tee -a "$SUMMARY"
  tail -1 "$LOGS/tests.log" | tee -a "$SUMMARY"
  record "tests" $status
}

stage_sanitize() {
  if [[ $REHEARSAL == 1 ]]; then
    say "sanitize: skipped (rehearsal: no GPU)"
    return 0
  fi
  # Some runtimes refuse the sanitizer ("Device not supported"): find out in seconds, not by
  # every CUDA test failing under it.
  local preflight=$LOGS/sanitizer-preflight.txt
  if ! step 30 "$preflight" "$preflight" compute-sanitizer --tool memcheck --error-exitcode 86 \
    "$PYTHON" -c "import torch; torch.ones(8, device='cuda').sum().item()"; then
    tail -3 "$preflight" | tee -a "$SUMMARY"
    record "sanitize: compute-sanitizer cannot run here" 1
    return 1
  fi
  # memcheck sees each tensor's own bounds only without torch's caching allocator, which CUDA
  # graphs need: the tests that capture one, and those that train (slow with a cudaMalloc per
  # tensor), are checked in a second pass with it. racecheck looks at shared memory, where the
  # allocator changes nothing: one pass.
  sanitize memcheck exact-bounds 3 "not captur and not training_on_a_gpu" PYTORCH_NO_CUDA_MEMORY_CACHING=1
  sanitize memcheck with-allocator 2 "captur or training_on_a_gpu"
  sanitize racecheck all 1 ""
}

sanitize() { # sanitize TOOL NAME PASSES_LEFT K_EXPRESSION [VAR=VALUE...]: SANITIZED's CUDA tests under TOOL
  local tool=$1 name=$2 passes_left=$3 select=$4 log seconds status
  shift 4
  log=$LOGS/sanitizer-$tool-$name
  seconds=$(($(left) / passes_left - 5))
  rm -f "$log.txt" # a warm machine's earlier verdict must not pass for this one
  # Only pydqn's kernels are instrumented: torch's own are out of scope and would take the budget.
  step "$seconds" "$log-pytest.txt" "$log-pytest.txt" env PYDQN_REQUIRE_CUDA=1 HYPOTHESIS_PROFILE=few "$@" \
    compute-sanitizer --tool "$tool" --kernel-name kns=pydqn --error-exitcode 86 --log-file "$log.txt" \
    "$PYTHON" -m pytest "${SANITIZED[@]/#/$REPO/}" -m cuda ${select:+-k "$select"} -q -p no:cacheprovider
  status=$?
  tail -1 "$log-pytest.txt" | tee -a "$SUMMARY"
  grep -E "SUMMARY" "$log.txt" 2>/dev/null | tee -a "$SUMMARY"
  record "compute-sanitizer $tool ($name) over the CUDA tests, $seconds s allowed" $status
}

check_concurrently() {
  # The sanitizers (one process on the GPU) run beside the suite's workers: the call takes the
  # longer of the two, not their sum. Their failures come back as the subshell's exit status.
  # shellcheck disable=SC2030,SC2031  # the subshell counts its own failures and returns them
  (
    failures=0
    stage_sanitize
    exit "$failures"
  ) &
  local sanitizing=$!
  stage_test
  wait "$sanitizing"
  # shellcheck disable=SC2031  # this shell's own count, plus the subshell's
  failures=$((failures + $?))
}

stage_bench() {
  local capacity=1000000 python_capacity=200000 repeats=300 steps=12000 starts=4000 rounds=30
  if [[ $REHEARSAL == 1 ]]; then
    capacity=20000 python_capacity=5000 repeats=30 steps=1200 starts=400 rounds=2
  fi
  say "bench: batches on $DEVICE from $capacity transitions (PyReplayBuffer $python_capacity)"
  step "$(at_most 90)" "$LOGS/bench-sample.txt" "$LOGS/bench-sample.log" "$PYTHON" -m pydqn bench \
    --sample-device "$DEVICE" --capacity "$capacity" --python-capacity "$python_capacity" --repeats "$repeats"
  record "bench --sample-device" $?
  tee -a "$SUMMARY" <"$LOGS/bench-sample.txt"

  say "bench: the update step (fused vs composite, eager vs CUDA graph) and prioritized feedback"
  step "$(at_most 45)" "$LOGS/bench-update.log" "$LOGS/bench-update.log" env PYDQN_FEEDBACK_ROUNDS=$rounds \
    "$PYTHON" -m pytest "$REPO/benchmarks/test_update_benchmark.py" \
    "$REPO/benchmarks/test_priority_feedback_benchmark.py" \
    -k "$DEVICE" -q -p no:cacheprovider --benchmark-json "$LOGS/bench-update.json" \
    --benchmark-group-by=group --benchmark-columns=median,iqr,rounds
  record "benchmarks/test_update_benchmark.py, test_priority_feedback_benchmark.py" $?
  report medians "$LOGS/bench-update.json" 2>&1 | tee -a "$SUMMARY"

  # The Pong run after it keeps at least 150 s.
  say "bench: pydqn bench --train --device $DEVICE --steps $steps --learning-starts $starts"
  step "$(at_most $(($(left) - 150)))" "$LOGS/bench-train.txt" "$LOGS/bench-train.log" "$PYTHON" -m pydqn \
    bench --train --device "$DEVICE" --steps "$steps" --learning-starts "$starts"
  record "bench --train" $?
  tee -a "$SUMMARY" <"$LOGS/bench-train.txt"
}

stage_train() {
  local fastest frames_per_s flags seconds total status run=$STATE/pong
  fastest=$(report fastest "$LOGS/bench-train.txt" 2>/dev/null) || fastest="2000 --async --cuda-graph"
  [[ $REHEARSAL == 1 ]] && fastest=${fastest//--cuda-graph/}
  read -r frames_per_s flags <<<"$fastest"
  seconds=$(($(left) - 40)) # what a stopped run needs to write its checkpoint, and the plot
  ((seconds > ${GPU_PROOF_TRAIN_SECONDS:-seconds})) && seconds=$GPU_PROOF_TRAIN_SECONDS
  ((seconds >= 30)) || { record "train: only $(left) s left" 124; return 1; }
  # Schedules span total_steps: size it to what the measured frames/s reaches in the time given.
  total=$((frames_per_s * seconds / 4 / 1000 * 1000))
  ((total < 20000)) && total=20000
  rm -rf "$run"
  say "train: pydqn train --env ALE/Pong-v5 --device $DEVICE $flags --total-steps $total, for at most $seconds s"
  # Stopped by SIGINT at the time given, as Ctrl-C: it checkpoints and says so ("trained ...").
  # shellcheck disable=SC2086  # flags are words
  (cd "$SCRATCH" && timeout --signal=INT --kill-after=20 "$seconds" "$PYTHON" -m pydqn train \
    --env ALE/Pong-v5 --device "$DEVICE" $flags --total-steps "$total" \
    --learning-starts $((total / 10 < 80000 ? total / 10 : 80000)) --log-interval 10000 \
    --checkpoint-interval "$total" --run-dir "$run") >"$LOGS/train.log" 2>&1
  status=$?
  ((status == 124)) && grep -q "^trained .*interrupted; checkpoint written" "$LOGS/train.log" && status=0
  record "train" $status
  grep -E "^(trained|time spent)" "$LOGS/train.log" | tee -a "$SUMMARY"
  report run "$run" 2>&1 | tee -a "$SUMMARY"
  step 30 "$LOGS/plot.log" "$LOGS/plot.log" "$PYTHON" -m pydqn plot "$run" --out "$OUT/learning_curve.png" ||
    say "train: no plot (see plot.log)"
  cp "$run/episodes.csv" "$run/metrics.csv" "$LOGS/" 2>/dev/null
}

stages=("$@")
[[ ${#stages[@]} == 0 ]] && stages=(check)
case "${stages[0]}" in
  check) BUDGET=${GPU_PROOF_BUDGET:-270} ;;
  measure) BUDGET=${GPU_PROOF_BUDGET:-390} ;;
  *) BUDGET=${GPU_PROOF_BUDGET:-150} ;;
esac
for stage in "${stages[@]}"; do
  case $stage in
    wheels)
      trap - EXIT
      stage_wheels
      exit
      ;;
    check) stage_build && check_concurrently ;;
    measure) stage_build && { stage_bench; stage_train; } ;;
    build) stage_build ;;
    test | sanitize | bench | train) stage_build && "stage_$stage" ;;
    *) echo "gpu_proof: unknown stage $stage (wheels, check, measure, build, test, sanitize, bench, train)" >&2; exit 2 ;;
  esac
done
say "done in $SECONDS s, $failures failed step(s); logs in \$OUT/logs.tar.gz"
((failures == 0))
