"""``python -m mlapi.prediction_log copy``: an existing log, whole, into an empty one."""

import subprocess
import sys
from pathlib import Path

import pytest
from mlapi_support import BACKENDS, new_log_url
from test_prediction_log import T0, write

from mlapi.prediction_log import PredictionLogError, open_prediction_log
from mlapi.prediction_log.__main__ import copy_log


@pytest.mark.parametrize("target_backend", BACKENDS)
def test_every_prediction_and_feedback_is_copied_as_it_was(
    request: pytest.FixtureRequest, tmp_path: Path, target_backend: str
) -> None:
    # Given an SQLite log of 7 predictions in 3 requests, 2 with feedback
    source = open_prediction_log(f"sqlite://{tmp_path / 'old' / 'predictions.db'}")
    ids = write(source, [0.9, 0.91, 0.92]) + write(source, [0.8], at=T0 + 1)
    ids += write(source, [0.7, 0.71, 0.72], at=T0 + 2, version="0.2.0")
    source.add_feedback([(ids[1], 0.95), (ids[5], 0.75)], T0 + 10)
    target = open_prediction_log(new_log_url(request, target_backend, tmp_path / "new"))
    # When it is copied, two rows at a time
    assert copy_log(source, target, batch=2) == {"predictions": 7, "feedback": 2}
    # Then the new log answers as the old one did
    assert [target.get(i) for i in ids] == [source.get(i) for i in ids]
    assert target.counts() == {"predictions": 7, "feedback": 2}
    for version in ("0.1.0", "0.2.0"):
        old, new = source.recent_predictions(version, 10), target.recent_predictions(version, 10)
        assert (new.inputs, new.predictions.tolist()) == (old.inputs, old.predictions.tolist())
        assert [a.tolist() for a in target.recent_feedback(version, 10)] == [
            a.tolist() for a in source.recent_feedback(version, 10)
        ]
    # And a second copy is refused rather than mixed in
    with pytest.raises(PredictionLogError, match="is not empty: copy into a new log"):
        copy_log(source, target)
    source.close()
    target.close()


def test_the_command_copies_into_the_log_the_service_is_set_to(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # Given an SQLite log, and the service set to a new PostgreSQL one
    source_url = f"sqlite://{tmp_path / 'predictions.db'}"
    source = open_prediction_log(source_url)
    ids = write(source, [0.9, 0.8])
    source.close()
    target_url = new_log_url(request, "postgresql", tmp_path)
    env = {"MLAPI_PREDICTION_LOG_URL": target_url, "PATH": "/usr/bin:/bin"}
    # When the command runs with the source alone
    command = [sys.executable, "-m", "mlapi.prediction_log", "copy", source_url]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    # Then it says what it copied, where, without the target's credentials
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("copied 2 predictions and 0 feedbacks from sqlite:///")
    target = open_prediction_log(target_url)
    assert [e.predicted_yield if e else None for e in map(target.get, ids)] == [0.9, 0.8]
    target.close()
    # And run again, it refuses, and says why
    again = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert again.returncode == 1
    assert "is not empty" in again.stderr
