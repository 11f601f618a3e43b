"""One OpenMP and BLAS thread per worker: the workers, not the libraries, use the cores."""

import json
import os
import subprocess
import sys

import pytest

# What a worker has loaded by the time it serves: the service module (which imports the model
# package), the model itself, and scikit-learn's OpenMP-using estimators.
_PROBE = """
import json
import mlapi.serve
import sklearn.ensemble
from threadpoolctl import threadpool_info
from yield_model.predict import load_model
load_model()
print(json.dumps(threadpool_info()))
"""


def _thread_pools(omp_num_threads: str | None) -> list[dict[str, object]]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    if omp_num_threads is not None:
        env["OMP_NUM_THREADS"] = omp_num_threads
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    pools: list[dict[str, object]] = json.loads(done.stdout.strip().splitlines()[-1])
    return pools


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one CPU: pools default to 1")
def test_every_thread_pool_has_one_thread_by_default() -> None:
    # Given no *_NUM_THREADS in the environment, on a machine with several CPUs
    pools = _thread_pools(None)
    # Then OpenMP (scikit-learn) and BLAS (numpy) are both loaded, each with one thread
    assert {pool["user_api"] for pool in pools} >= {"openmp", "blas"}
    assert {pool["num_threads"] for pool in pools} == {1}


def test_an_explicit_setting_wins() -> None:
    pools = _thread_pools("2")
    assert {pool["num_threads"] for pool in pools if pool["user_api"] == "openmp"} == {2}
