"""Shared fixtures: generated data files, the plant's training file, a moto S3 endpoint, and
models trained on them."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from yield_model import datasets
from yield_model.config import TrainingConfig
from yield_model.data import load_dataset
from yield_model.persistence import file_sha256, save_model
from yield_model.predict import TrainedModel, load_model
from yield_model.train import train


@pytest.fixture(scope="session")
def train_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A default-size generated training file (GB18030, seed 0)."""
    path = tmp_path_factory.mktemp("data") / "train.csv"
    assert datasets.main(["train", "--out", str(path)]) == 0
    return path


#: Where the published training file is kept next to the checkout (DATA.md); a checkout
#: elsewhere names it in JINNAN_TRAINING_FILE.
SHARED_TRAINING_FILE = Path(__file__).parents[3] / "shared/data/jinnan_round1_train_20181227.csv"


@pytest.fixture(scope="session")
def plant_training_file() -> Path:
    """The published training file: skipped where it is absent, except under CI=true on a
    machine that keeps it (the shared folder exists, or JINNAN_TRAINING_FILE names it)."""
    named = os.environ.get("JINNAN_TRAINING_FILE")
    path = Path(named) if named else SHARED_TRAINING_FILE
    if path.is_file():
        return path
    expected = bool(named) or SHARED_TRAINING_FILE.parents[1].is_dir()
    if expected and os.environ.get("CI") == "true":
        pytest.fail(f"CI=true, and the published training file is not at {path}")
    pytest.skip(f"the published training file is not at {path}")


@pytest.fixture(scope="session")
def test_csv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A generated test file and its header-less answer file."""
    folder = tmp_path_factory.mktemp("test-data")
    data, answers = folder / "test.csv", folder / "answers.csv"
    assert datasets.main(["test", "--out", str(data), "--answers", str(answers)]) == 0
    return data, answers


@pytest.fixture(scope="session")
def trained_model(train_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    """A model trained on the default generated file and saved outside the package."""
    pipeline, card = train(load_dataset(train_csv), TrainingConfig())
    path = save_model(pipeline, card, tmp_path_factory.mktemp("model"))
    return load_model(path, sha256=file_sha256(path))


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on loopback: real HTTP for boto3 to talk to, with fake credentials."""
    fake = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    saved = {k: os.environ.get(k) for k in fake}
    os.environ.update(fake)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
