"""The wheel: named by the version, carries the trained model, predicts when installed."""

import hashlib
import json
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from yield_model import __version__
from yield_model.config import TRAINED_MODEL_DIR, card_file_name, model_file_name
from yield_model.persistence import default_model_path, file_sha256
from yield_model.predict import make_prediction
from yield_model.schemas import EXAMPLE_RECORD

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (TRAINED_MODEL_DIR / model_file_name()).is_file():
        pytest.fail(
            "no packaged model: run `python -m yield_model.train` first (tox -e model does)"
        )
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(PACKAGE_ROOT)],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("*.whl")
    return path


def test_wheel_is_named_by_the_version_and_carries_model_and_card(wheel: Path) -> None:
    assert wheel.name == f"yield_model-{__version__}-py3-none-any.whl"
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        f"yield_model/trained_models/{model_file_name()}",
        f"yield_model/trained_models/{card_file_name()}",
        "yield_model/VERSION",
        "yield_model/py.typed",
    } <= names
    card = json.loads(zipfile.ZipFile(wheel).read(f"yield_model/trained_models/{card_file_name()}"))
    assert card["version"] == __version__
    # Tests and generated data stay out of the wheel.
    assert not [n for n in names if n.startswith("tests/") or n.endswith(".csv")]


def test_installed_wheel_predicts_away_from_the_source_tree(wheel: Path, tmp_path: Path) -> None:
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(wheel)], check=True, capture_output=True
    )
    script = (
        "import json, sys, yield_model; from yield_model.predict import make_prediction; "
        "r = make_prediction([json.loads(sys.argv[1])]); "
        "print(json.dumps([yield_model.__file__, r.model_version, r.predictions]))"
    )

    def predict_there() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(python), "-c", script, json.dumps(EXAMPLE_RECORD)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )

    run = predict_there()
    assert run.returncode == 0, run.stderr
    location, version, predictions = json.loads(run.stdout)
    assert location.startswith(str(env))
    assert version == __version__
    assert predictions == make_prediction([EXAMPLE_RECORD]).predictions

    # A model replaced in the installed package is refused before it is unpickled, even with
    # its card rewritten to vouch for it: the wheel's RECORD has the model's sha256.
    installed = Path(location).parent / "trained_models" / model_file_name()
    installed.write_bytes(b"not a model")
    card_path = installed.with_name(card_file_name())
    card = json.loads(card_path.read_text())
    card["model_sha256"] = hashlib.sha256(b"not a model").hexdigest()
    card_path.write_text(json.dumps(card))
    broken = predict_there()
    assert broken.returncode != 0
    assert (
        f"has sha256 {card['model_sha256']}, not {file_sha256(default_model_path())} "
        "(the RECORD of the installed yield-model wheel)"
    ) in broken.stderr
