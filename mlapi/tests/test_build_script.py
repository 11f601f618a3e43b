"""scripts/build-model-wheel.sh never installs into a Python outside a virtualenv."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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
    assert len(list((tmp_path / "wheels").glob("yield_model-*-py3-none-any.whl"))) == 1
    assert _installed(base / "python3") == before
