#!/usr/bin/env bash
# Compile-checks pydqn's CUDA kernels (csrc/*/cuda/*.cu) on a machine without a GPU: builds the
# extension against a CUDA build of torch with the local nvcc, in a throwaway venv, then imports
# it and checks that the CUDA kernels are registered. Running them needs a GPU (tests marked cuda).
#
#   scripts/cuda_compile_check.sh              # torch==2.14.1 (a CUDA 13 build), ~5.5 GB of wheels
#   TORCH_SPEC=torch==2.15.0 scripts/cuda_compile_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.14.1}
VENV=$(realpath -m "${VENV:-build/cuda-check/venv}")
LOG=build/cuda-check/build.log

command -v nvcc >/dev/null || { echo "cuda_compile_check: nvcc is not on PATH" >&2; exit 1; }
mkdir -p build/cuda-check
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q "$TORCH_SPEC" numpy scikit-build-core cmake ninja
"$VENV/bin/python" -c "import torch; assert torch.version.cuda, 'torch ' + torch.__version__ + ' is a CPU build'"
echo "cuda_compile_check: building against $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
# Not editable (SKBUILD_EDITABLE_SKIP keeps a developer's editable install from hijacking the import).
SKBUILD_EDITABLE_SKIP=1 "$VENV/bin/pip" install -v --no-build-isolation --no-deps \
  -C build-dir=build/cuda-check/build . >"$LOG" 2>&1 || { tail -50 "$LOG"; exit 1; }
grep "pydqn: CUDA kernels" "$LOG"
grep -q "pydqn: CUDA kernels ON" "$LOG"
(cd build/cuda-check && "$VENV/bin/python" - <<'PY'
import torch, pydqn.ops  # noqa: F401  (registers the ops)
from pydqn._extension import load_extension

assert load_extension().WITH_CUDA, "built without the CUDA kernels"
for op in ("stack_gather", "td_target", "q_td_loss", "q_td_loss_backward"):
    assert torch._C._dispatch_has_kernel_for_dispatch_key(f"pydqn::{op}", "CUDA"), op
print("cuda_compile_check: OK, CUDA kernels of every op registered (running them needs a GPU)")
PY
)
