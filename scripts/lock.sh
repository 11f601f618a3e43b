#!/usr/bin/env bash
# Refresh the two locks, every third-party package pinned with its hashes (pip-tools'
# pip-compile --generate-hashes); the ranges stay in the pyproject.toml files, for people who
# install the wheels themselves:
#   requirements/image.lock    what the API's image (and the model's training) installs beside
#                              the project's own two wheels: mlapi/ and model_package/
#   requirements/release.lock  what CircleCI's release jobs install the release tool on:
#                              deploy/
#
#   scripts/lock.sh            # keeps the pins that still satisfy the ranges
#   scripts/lock.sh --upgrade  # every package to its newest allowed version
#
# Runs in a throw-away virtualenv of its own; needs Python 3.11 (the image's and CI's) and PyPI.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || {
  echo "lock.sh: the image and CI run Python 3.11; run this with a python3 of 3.11" >&2
  exit 1
}
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q 'pip-tools>=7.4,<8'
# yield-model is the project's own, on no public index: its metadata comes from a wheel built
# here, and it is left out of the lock (the image installs the release's wheel by file).
"$work/venv/bin/python" -m pip wheel -q --no-deps "$root/model_package" -w "$work/links"
cd "$root"
compile() {
  local lock=$1
  shift
  CUSTOM_COMPILE_COMMAND="scripts/lock.sh" "$work/venv/bin/pip-compile" --quiet \
    --generate-hashes --strip-extras --no-emit-find-links --no-emit-index-url \
    --output-file "$lock" "$@"
  echo "$lock: $(grep -c '==' "$lock") packages"
}
compile requirements/image.lock --unsafe-package yield-model --find-links "$work/links" \
  "$@" mlapi/pyproject.toml model_package/pyproject.toml
compile requirements/release.lock "$@" deploy/pyproject.toml
