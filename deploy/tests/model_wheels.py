"""Real model wheels for the release tool's tests: the model package trained and built.

A small ridge model without cross-validation, so that a wheel takes seconds: what the release
tool reads (the card, the model file and the wheel's RECORD) is made exactly as a release
makes it. ``from_file`` is trained from a data file on disk (the card's data.origin "file"),
``generated`` from the generator inside the training run (data.origin "generated").
"""

import hashlib
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VERSION = (ROOT / "model_package" / "yield_model" / "VERSION").read_text().strip()
QUICK = ["--regressor", "ridge", "--cv-folds", "none"]


@dataclass(frozen=True)
class ModelWheels:
    """Two wheels of the repository's version."""

    from_file: Path
    generated: Path


def _run(*command: str | Path) -> None:
    done = subprocess.run(list(map(str, command)), capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{command}:\n{done.stdout}{done.stderr}"


def build_wheel(work: Path, data: list[str], out: Path) -> Path:
    """Train on ``data`` (train's arguments) into a copy of the model package, build its wheel."""
    source = work / "model_package"
    if not source.exists():
        shutil.copytree(
            ROOT / "model_package",
            source,
            ignore=shutil.ignore_patterns(
                "build", "dist", "*.egg-info", "tests", "__pycache__", "*.joblib", "*.card.json"
            ),
        )
    models = source / "yield_model" / "trained_models"
    _run(sys.executable, "-m", "yield_model.train", *data, *QUICK, "--output-dir", models)
    _run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", out, source)
    return out / f"yield_model-{VERSION}-py3-none-any.whl"


def build_model_wheels(work: Path) -> ModelWheels:
    """A wheel trained from a data file and one trained on generated data."""
    data = work / "train.csv"
    _run(sys.executable, "-m", "yield_model.datasets", "train", "--out", data, "--rows", "300")
    return ModelWheels(
        from_file=build_wheel(work, ["--data", str(data)], work / "from-file"),
        generated=build_wheel(work, ["--generated"], work / "generated"),
    )


def model_sha256_of(wheel: Path | None) -> str:
    """The sha256 of the model file inside a wheel, read here without the release tool."""
    assert wheel is not None
    with zipfile.ZipFile(wheel) as archive:
        (model,) = [name for name in archive.namelist() if name.endswith(".joblib")]
        return hashlib.sha256(archive.read(model)).hexdigest()
