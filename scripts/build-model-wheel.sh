#!/usr/bin/env bash
# Build the model wheel with a freshly trained model inside it.
#
#   scripts/build-model-wheel.sh OUTDIR
#
# Installs the model package's dependencies (not the package itself) into the active
# virtualenv, or, when none is active, into a throw-away one of its own (never into the
# system's Python); trains on $MODEL_TRAINING_DATA (a path or s3:// URI) or, when it is unset,
# on the default generated data (seed 0, drawn by the training run itself, so that the card
# says "generated" and a release refuses to publish the wheel), and writes
# yield_model-<VERSION>-py3-none-any.whl to OUTDIR. Used by tox (env mlapi) and by the Docker
# build, so both ship the same model.
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
"$python" -m pip install -q "${deps[@]}" build
if [ -n "${MODEL_TRAINING_DATA:-}" ]; then
  PYTHONPATH=$pkg "$python" -m yield_model.train --data "$MODEL_TRAINING_DATA"
else
  PYTHONPATH=$pkg "$python" -m yield_model.train --generated
fi
"$python" -m build --wheel --outdir "$out" "$pkg" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
ls "$out"/yield_model-"$(cat "$pkg/yield_model/VERSION")"-py3-none-any.whl
