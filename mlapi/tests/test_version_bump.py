"""A release changes only the two VERSION files: a copy of the repository bumped in those
alone builds its model wheel at the new version, and the API's version-dependent tests pass
against it."""

import os
import subprocess
import sys
from pathlib import Path

from checkout import copy_checkout

ROOT = Path(__file__).resolve().parents[2]
VERSION_FILES = ("model_package/yield_model/VERSION", "mlapi/mlapi/VERSION")
BUMPED = "0.2.0"
#: The tests that read the versions the service reports (the card, the answers, the metrics).
VERSION_TESTS = ("tests/test_api.py", "tests/test_metrics.py", "tests/test_logs.py")
SHOW_VERSIONS = "import mlapi, yield_model; print(mlapi.__version__, yield_model.__version__)"


def _run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"{command}:\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_a_copy_bumped_in_its_version_files_builds_and_serves_the_new_version(
    tmp_path: Path,
) -> None:
    # Given a copy of the repository whose VERSION files, and nothing else, say 0.2.0
    copy = copy_checkout(tmp_path / "repo")
    for name in VERSION_FILES:
        (copy / name).write_text(BUMPED + "\n", encoding="utf-8")
    # When its model wheel is built and installed with its API, over this environment's
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    _run("bash", copy / "scripts" / "build-model-wheel.sh", wheels, cwd=copy)
    (wheel,) = wheels.glob("yield_model-*.whl")
    assert wheel.name == f"yield_model-{BUMPED}-py3-none-any.whl"
    pip = (sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", site)
    _run(*pip, wheel, copy / "mlapi", cwd=copy)
    env = {**os.environ, "PYTHONPATH": str(site)}  # before this environment's site-packages
    versions = _run(sys.executable, "-c", SHOW_VERSIONS, cwd=tmp_path, env=env)
    assert versions.split() == [BUMPED, BUMPED]
    # Then the version-dependent tests of the copy pass against it
    # -P: not the working directory first on the path, where the build left its egg-info
    pytest = (sys.executable, "-P", "-m", "pytest", "-q", "-p", "no:cacheprovider")
    _run(*pytest, *VERSION_TESTS, cwd=copy / "mlapi", env=env)
