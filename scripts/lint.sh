#!/usr/bin/env bash
# The style and type checks CI enforces, over the whole tree: ruff (lint), ruff format, clang-format
# and mypy. Exits non-zero if any of them finds something; prints one line per tool.
# The tools are pinned in pyproject.toml's `dev` extra: pip install -e ".[dev]" (or ".[dev]").
#   scripts/lint.sh          check
#   scripts/lint.sh --fix    let ruff and clang-format rewrite what they can, then check
set -uo pipefail
cd "$(dirname "$0")/.."

FIX=0
[[ "${1:-}" == "--fix" ]] && FIX=1
FAILED=0
run() {  # run NAME COMMAND...: one summary line, the tool's output only when it fails
  local name="$1" output
  shift
  if output=$("$@" 2>&1); then
    echo "lint: $name: clean"
  else
    echo "$output"
    echo "lint: $name: FAILED"
    FAILED=1
  fi
}

for tool in ruff mypy clang-format; do
  command -v "$tool" >/dev/null || { echo "lint: $tool is not installed; pip install -e '.[dev]'" >&2; exit 2; }
done
mapfile -t CXX_FILES < <(git ls-files 'csrc/*.h' 'csrc/*.cpp' 'csrc/*.cu' 'csrc/*.cuh')

if [[ $FIX -eq 1 ]]; then
  ruff check --fix --quiet . || true
  ruff format --quiet .
  clang-format -i "${CXX_FILES[@]}"
fi
run "ruff check" ruff check .
run "ruff format" ruff format --check .
run "clang-format (${#CXX_FILES[@]} files)" clang-format --dry-run --Werror "${CXX_FILES[@]}"
# tests/ and benchmarks/ each have a conftest module, so mypy checks them in two runs.
run "mypy (pydqn, tests)" mypy
run "mypy (benchmarks)" mypy benchmarks
exit "$FAILED"
