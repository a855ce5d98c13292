#!/usr/bin/env bash
# The wheel on its own: build it, install it into a fresh virtual environment (CPU torch via
# constraints-cpu.txt; pip's wheel cache makes later installs quick), then, from an empty
# folder outside the checkout, check `paradime --version`, that no top-level module `data`
# is installed, `paradime specs` (the bundled specs come with the wheel) and a tiny
# `paradime run` of a bundled spec on a bundled dataset.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/paradime-wheel-check.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Built from a copy of the tracked and new files: a stale setuptools build/ folder or a
# virtual environment in the checkout must not reach the wheel.
mkdir "$work/src"
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$work/src"
python3 -m pip wheel -q --no-deps -w "$work/dist" "$work/src"
python3 -m venv "$work/venv"
start=$SECONDS
"$work/venv/bin/python" -m pip install -q -c "$repo/constraints-cpu.txt" "$work"/dist/paradime-*.whl
echo "wheel-check: fresh install took $((SECONDS - start)) s"

cd "$work"
export PARADIME_STORE="$work/store" PREFECT_HOME="$work/prefect-home" PARADIME_SPECS=
"$work/venv/bin/paradime" --version
"$work/venv/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('data') is not None)" \
    || { echo "wheel-check: a top-level module 'data' is installed" >&2; exit 1; }
"$work/venv/bin/paradime" specs | tee "$work/specs.txt"
grep -q "umap" "$work/specs.txt" || { echo "wheel-check: bundled specs missing" >&2; exit 1; }
start=$SECONDS
"$work/venv/bin/paradime" run classifier --data digits --no-progress --out "$work/out"
test -s "$work/out/embedding.npy"
echo "wheel-check: tiny run took $((SECONDS - start)) s"
