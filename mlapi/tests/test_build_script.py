"""scripts/build-model-wheel.sh never installs into a Python outside a virtualenv, and trains
with the library versions of requirements/image.lock, which the image loads the model with."""

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "image.lock"


def _installed(python: Path) -> str:
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=False,
    )
    return listed.stdout


def test_without_a_virtualenv_the_build_makes_its_own(tmp_path: Path) -> None:
    # Given only a Python that is no virtualenv first on the PATH
    base = Path(sys.base_prefix) / "bin"
    assert (base / "python3").exists(), base
    before = _installed(base / "python3")
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    env["PATH"] = f"{base}{os.pathsep}/usr/bin{os.pathsep}/bin"
    # When the model wheel is built
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-model-wheel.sh"), str(tmp_path / "wheels")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    # Then it is, in a throw-away virtualenv it says it made, and that Python is unchanged
    assert done.returncode == 0, done.stderr[-3000:]
    assert "no virtualenv is active; building in a throw-away one" in done.stderr
    (wheel,) = (tmp_path / "wheels").glob("yield_model-*-py3-none-any.whl")
    assert _installed(base / "python3") == before
    # and the model was pickled by the scikit-learn the image installs: the lock's
    with zipfile.ZipFile(wheel) as archive:
        (card,) = [n for n in archive.namelist() if n.endswith(".card.json")]
        trained_with = json.loads(archive.read(card))["sklearn_version"]
    assert trained_with == _locked("scikit-learn")


def _locked(name: str) -> str:
    pin = re.search(rf"^{re.escape(name)}==(\S+)", LOCK.read_text(encoding="utf-8"), re.M)
    assert pin, f"{name} is not in {LOCK}"
    return pin.group(1)


def test_a_lock_that_leaves_a_model_dependency_out_stops_the_build(tmp_path: Path) -> None:
    # Given a model package that needs a joblib no version of which the lock pins
    for name in ("scripts/build-model-wheel.sh", "requirements/image.lock"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tmp_path / name)
    (tmp_path / "model_package").mkdir()
    pyproject = (ROOT / "model_package" / "pyproject.toml").read_text(encoding="utf-8")
    assert '"joblib>=1.3",' in pyproject
    (tmp_path / "model_package" / "pyproject.toml").write_text(
        pyproject.replace('"joblib>=1.3",', '"joblib>=99",'), encoding="utf-8"
    )
    # When the wheel is built (in this virtualenv, which already holds the lock)
    assert sys.prefix != sys.base_prefix, "the tests run in a virtualenv"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", str(tmp_path / "scripts" / "build-model-wheel.sh"), str(tmp_path / "wheels")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    # Then it stops before training, naming the range and what to run
    assert done.returncode == 1, done.stderr[-3000:]
    assert "joblib>=99" in done.stderr
    assert "image.lock does not satisfy model_package/pyproject.toml's dependencies" in done.stderr
    assert "scripts/lock.sh" in done.stderr
    assert not (tmp_path / "wheels").exists()
