"""MODEL_SOURCE=wheel: the image installs a model wheel built from your own data, as it is,
with no training in the build."""

import contextlib
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import docker
import pytest
from compose_stack import BUILD_WITHIN_S, unavailable

ROOT = Path(__file__).resolve().parents[2]
VERSION = (ROOT / "model_package" / "yield_model" / "VERSION").read_text().strip()
PLANT_FILE = ROOT.parent / "shared" / "data" / "jinnan_round1_train_20181227.csv"
SHOW_MODEL = (
    "from yield_model.predict import load_model; c = load_model().card; "
    "print(c.model_sha256, c.data.sha256)"
)


def _tracked_copy(destination: Path) -> Path:
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        if (ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, destination / name)
    return destination


def _card_of(wheel: Path) -> dict[str, object]:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".card.json")]
        card: dict[str, object] = json.loads(archive.read(name))
    return card


def test_an_image_of_model_source_wheel_serves_that_wheels_model(tmp_path: Path) -> None:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        unavailable(f"no Docker engine answers ({exc})")
    # Given a repository with a model wheel trained on data of its own: the plant's file
    data = Path(os.environ.get("JINNAN_TRAINING_FILE", PLANT_FILE))
    if not data.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{data} is missing: CI has ../shared beside the project", pytrace=False)
        pytest.skip(f"no training file of the plant's at {data}")
    repo = _tracked_copy(tmp_path / "repo")
    dist = repo / "model_package" / "dist"
    built = subprocess.run(
        ["bash", str(repo / "scripts" / "build-model-wheel.sh"), str(dist)],
        env={**os.environ, "MODEL_TRAINING_DATA": str(data)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = dist.glob(f"yield_model-{VERSION}-py3-none-any.whl")
    card = _card_of(wheel)
    # When the image is built from it with MODEL_SOURCE=wheel
    tag = f"mlapi-wheel-test:{os.getpid()}"
    try:
        build = subprocess.run(
            ["docker", "build", "-q", "-f", "mlapi/Dockerfile", "-t", tag,
             "--build-arg", "MODEL_SOURCE=wheel", "."],
            cwd=repo, capture_output=True, text=True, timeout=BUILD_WITHIN_S, check=False,
        )  # fmt: skip
        assert build.returncode == 0, build.stderr[-4000:]
        shown = client.containers.run(tag, ["python", "-c", SHOW_MODEL], remove=True)
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(tag, force=True)
    # Then the model it serves is the wheel's, and the data it was trained on is that file
    model_sha256, data_sha256 = shown.decode().split()
    assert model_sha256 == card["model_sha256"]
    assert data_sha256 == card["data"]["sha256"]  # type: ignore[index]


def test_model_source_wheel_without_the_wheel_says_what_to_build(tmp_path: Path) -> None:
    try:
        docker.from_env().ping()
    except docker.errors.DockerException as exc:
        unavailable(f"no Docker engine answers ({exc})")
    repo = _tracked_copy(tmp_path / "repo")
    build = subprocess.run(
        ["docker", "build", "-q", "-f", "mlapi/Dockerfile", "--build-arg", "MODEL_SOURCE=wheel",
         "."],
        cwd=repo, capture_output=True, text=True, timeout=BUILD_WITHIN_S, check=False,
    )  # fmt: skip
    assert build.returncode != 0
    expected = f"model_package/dist/yield_model-{VERSION}-py3-none-any.whl, which is not there"
    assert expected in build.stdout + build.stderr
