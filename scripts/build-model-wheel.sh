#!/usr/bin/env bash
# Build the model wheel with a freshly trained model inside it.
#
#   scripts/build-model-wheel.sh OUTDIR
#
# Installs the model package's dependencies (not the package itself) from
# requirements/image.lock, hashes required, into the active virtualenv, or, when none is
# active, into a throw-away one of its own (never into the system's Python): the model is
# pickled by the library versions the image loads it with. Trains on $MODEL_TRAINING_DATA
# (a path or s3:// URI) or, when it is unset, on the default generated data (seed 0, drawn by
# the training run itself, so that the card says "generated" and a release refuses to publish
# the wheel), and writes yield_model-<VERSION>-py3-none-any.whl to OUTDIR. Used by tox (env
# mlapi) and by the Docker build, so both ship the same model.
set -euo pipefail
out=${1:?usage: build-model-wheel.sh OUTDIR}
root=$(cd "$(dirname "$0")/.." && pwd)
pkg=$root/model_package

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python=python3
if ! "$python" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)'; then
  echo "build-model-wheel.sh: no virtualenv is active; building in a throw-away one" >&2
  "$python" -m venv "$work/venv"
  python=$work/venv/bin/python
fi

deps=$("$python" - "$pkg/pyproject.toml" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["dependencies"]))
PY
)
mapfile -t deps <<<"$deps"
lock=$root/requirements/image.lock
"$python" -m pip install -q --require-hashes -r "$lock"
# The lock must cover the model's own ranges: then pip, offline, has nothing left to install.
if ! "$python" -m pip install -q --no-index --dry-run --report "$work/covered.json" \
  "${deps[@]}" 2>"$work/covered.log" ||
  ! "$python" -c 'import json, sys; sys.exit(bool(json.load(open(sys.argv[1]))["install"]))' \
    "$work/covered.json"; then
  cat "$work/covered.log" >&2
  echo "build-model-wheel.sh: $lock does not satisfy model_package/pyproject.toml's dependencies: refresh it with scripts/lock.sh" >&2
  exit 1
fi
# The wheel builder, which the model does not import.
"$python" -m pip install -q build
if [ -n "${MODEL_TRAINING_DATA:-}" ]; then
  PYTHONPATH=$pkg "$python" -m yield_model.train --data "$MODEL_TRAINING_DATA"
else
  PYTHONPATH=$pkg "$python" -m yield_model.train --generated
fi
"$python" -m build --wheel --outdir "$out" "$pkg" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
ls "$out"/yield_model-"$(cat "$pkg/yield_model/VERSION")"-py3-none-any.whl
