"""MODEL_SOURCE=wheel: the image installs a model wheel built from your own data, as it is,
with no training in the build; and two builds from the lock install the same packages."""

import contextlib
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import docker
import pytest
import stack_tools
from checkout import copy_checkout
from compose_stack import BUILD_WITHIN_S, unavailable

ROOT = Path(__file__).resolve().parents[2]
VERSION = (ROOT / "model_package" / "yield_model" / "VERSION").read_text().strip()
PLANT_FILE = ROOT.parent / "shared" / "data" / "jinnan_round1_train_20181227.csv"
SHOW_MODEL = (
    "from yield_model.predict import load_model; c = load_model().card; "
    "print(c.model_sha256, c.data.sha256)"
)


def _card_of(wheel: Path) -> dict[str, object]:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".card.json")]
        card: dict[str, object] = json.loads(archive.read(name))
    return card


@pytest.fixture
def client() -> docker.DockerClient:
    """The Docker engine the images are built on."""
    try:
        engine = docker.from_env()
        engine.ping()
    except docker.errors.DockerException as exc:
        unavailable(f"no Docker engine answers ({exc})")
    return engine


def _build(repo: Path, *options: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``docker build`` of mlapi/Dockerfile in ``repo`` with MODEL_SOURCE=wheel; unless
    ``check`` is false, the build must succeed."""
    build = subprocess.run(
        ["docker", "build", *options, "-f", "mlapi/Dockerfile",
         "--build-arg", "MODEL_SOURCE=wheel", "."],
        cwd=repo, capture_output=True, text=True, timeout=BUILD_WITHIN_S, check=False,
    )  # fmt: skip
    if check:
        assert build.returncode == 0, build.stderr[-4000:]
    return build


def _with_untrained_model_wheel(repo: Path) -> Path:
    """``repo`` with a wheel of its model package as it is, untrained, where MODEL_SOURCE=wheel
    takes it: for tests of what the image installs, not of the model."""
    wheel = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
         "-w", str(repo / "model_package" / "dist"), str(repo / "model_package")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert wheel.returncode == 0, wheel.stderr[-3000:]
    return repo


def test_an_image_of_model_source_wheel_serves_that_wheels_model(
    client: docker.DockerClient, tmp_path: Path
) -> None:
    # Given a repository with a model wheel trained on data of its own: the plant's file
    data = Path(os.environ.get("JINNAN_TRAINING_FILE", PLANT_FILE))
    if not data.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{data} is missing: CI has ../shared beside the project", pytrace=False)
        pytest.skip(f"no training file of the plant's at {data}")
    repo = copy_checkout(tmp_path / "repo")
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
        _build(repo, "-q", "-t", tag)
        shown = client.containers.run(tag, ["python", "-c", SHOW_MODEL], remove=True)
    finally:
        # Its untagged parent layers stay: they are the cache of builds that may be running
        # (a build whose parent was pruned under it fails with "unknown parent image ID").
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(tag, force=True, noprune=True)
    # Then the model it serves is the wheel's, and the data it was trained on is that file
    model_sha256, data_sha256 = shown.decode().split()
    assert model_sha256 == card["model_sha256"]
    assert data_sha256 == card["data"]["sha256"]  # type: ignore[index]


@pytest.mark.usefixtures("client")
def test_model_source_wheel_without_the_wheel_says_what_to_build(tmp_path: Path) -> None:
    repo = copy_checkout(tmp_path / "repo")
    # --force-rm: the failed step's container goes too
    build = _build(repo, "-q", "--force-rm", check=False)
    assert build.returncode != 0
    expected = f"model_package/dist/yield_model-{VERSION}-py3-none-any.whl, which is not there"
    assert expected in build.stdout + build.stderr


#: Every distribution the image's Python sees, with its version, as JSON.
LIST_DISTRIBUTIONS = (
    "import importlib.metadata as m, json; "
    "print(json.dumps(sorted((d.metadata['Name'], d.version) for d in m.distributions())))"
)


def _distributions(client: docker.DockerClient, tag: str, name: str) -> dict[str, list[str]]:
    """Each distribution installed in the image, by canonical name: its versions (one, unless
    two installs of one name are both on the path)."""
    shown = client.containers.run(tag, ["python", "-c", LIST_DISTRIBUTIONS], name=name, remove=True)
    found: dict[str, list[str]] = {}
    for dist, version in json.loads(shown):
        found.setdefault(re.sub(r"[-_.]+", "-", dist).lower(), []).append(version)
    return found


#: A step's image in the classic builder's output (BuildKit keeps its cache out of the images).
STEP_IMAGE = re.compile(r"^ ---> ([0-9a-f]{12,})$", re.MULTILINE)


def _remove_untagged_steps(client: docker.DockerClient, output: str) -> None:
    """Remove the images a build's steps made, last first: a --no-cache build's build stage is
    a chain of its own (over a GB) that removing the final tag leaves behind. Tagged images (the
    base) stay, and so does any a concurrent build has built on (Docker refuses, unforced)."""
    for image_id in reversed(STEP_IMAGE.findall(output)):
        with contextlib.suppress(docker.errors.ImageNotFound, docker.errors.APIError):
            if not client.images.get(image_id).tags:
                client.images.remove(image_id, noprune=True)


def test_two_builds_from_the_lock_install_the_same_packages(
    client: docker.DockerClient, tmp_path: Path
) -> None:
    # Given a repository with a model wheel (untrained: what is installed is the question, not
    # the model), so that MODEL_SOURCE=wheel builds without training
    repo = _with_untrained_model_wheel(copy_checkout(tmp_path / "repo"))
    tags = [f"mlapi-lock-test:{os.getpid()}-{n}" for n in (1, 2)]
    fresh = ""
    try:
        # When the image is built twice: once as the cache has it, once with no cache at all,
        # every package downloaded and installed again
        for tag, cache in zip(tags, ([], ["--no-cache"]), strict=True):
            build = _build(repo, *cache, "-t", tag)
            if cache:
                fresh = build.stdout
        first, second = (
            _distributions(client, tag, stack_tools.container_name("lock-test")) for tag in tags
        )
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            # the cached build's layers stay, as the next build's cache; the fresh one's go
            client.images.remove(tags[0], force=True, noprune=True)
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(tags[1], force=True)
        _remove_untagged_steps(client, fresh)
    # Then both hold the same distributions at the same versions, and any difference is named
    differences = {
        name: (first.get(name), second.get(name))
        for name in sorted(first.keys() | second.keys())
        if first.get(name) != second.get(name)
    }
    assert differences == {}, f"(first build, second build) where they differ: {differences}"
    assert {"mlapi", "yield-model", "numpy", "scikit-learn", "fastapi"} <= first.keys()


def _layers(client: docker.DockerClient, tag: str) -> list[str]:
    layers: list[str] = client.images.get(tag).attrs["RootFS"]["Layers"]
    return layers


def test_a_new_api_or_model_adds_only_a_small_layer_over_the_locks_packages(
    client: docker.DockerClient, tmp_path: Path
) -> None:
    # Given an image built from a repository with a model wheel
    repo = _with_untrained_model_wheel(copy_checkout(tmp_path / "repo"))
    tags = [f"mlapi-layer-test:{os.getpid()}-{n}" for n in (1, 2)]
    try:
        for n, tag in enumerate(tags):
            if n:
                # When the API changes and the image is built again
                init = repo / "mlapi" / "mlapi" / "__init__.py"
                init.write_text(init.read_text() + f"# build {tag}\n")
            _build(repo, "-q", "-t", tag)
        first, second = (_layers(client, tag) for tag in tags)
        # the newest step that wrote files: the project's layer
        project = next(step for step in client.api.history(tags[1]) if step["Size"] > 0)
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            # the first build's layers stay, as the next build's cache; the second's go
            client.images.remove(tags[0], force=True, noprune=True)
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(tags[1], force=True)
    # Then the two share every layer but the last, the project's files, which is small: the
    # lock's packages are one layer on disk and in the registry for every release
    assert len(first) == len(second)
    assert first[:-1] == second[:-1]
    assert first[-1] != second[-1]
    assert project["CreatedBy"].endswith(" in / "), project  # COPY --from=project /opt/project/ /
    assert project["Size"] < 20_000_000, project
