"""publish against a real pypiserver with twine, and pip installing from it."""

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from model_wheels import VERSION, ModelWheels
from package_index import PASSWORD, USER, Index
from ports import free_port

from yield_deploy.errors import PublishError, SettingsError
from yield_deploy.publish import publish


@pytest.fixture(scope="module")
def model_wheel(model_wheels: ModelWheels) -> Path:
    """The model package's wheel, trained from a data file: what a release publishes."""
    assert model_wheels.from_file.name == f"yield_model-{VERSION}-py3-none-any.whl"
    return model_wheels.from_file


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """twine's credentials, as the CircleCI context gives them."""
    monkeypatch.setenv("TWINE_USERNAME", USER)
    monkeypatch.setenv("TWINE_PASSWORD", PASSWORD)


@pytest.mark.usefixtures("credentials")
def test_publish_uploads_and_publishing_again_is_skipped(model_wheel: Path, index: Index) -> None:
    """Given an empty index, when publishing twice, then one upload and one skip, no error."""
    first = publish([model_wheel], index.upload_url, index.simple_url)
    stored = index.packages / model_wheel.name
    assert stored.read_bytes() == model_wheel.read_bytes()
    assert first == [f"uploaded {model_wheel.name}"]
    uploaded_at = stored.stat().st_mtime_ns

    second = publish([model_wheel], index.upload_url, index.simple_url)

    assert second == [f"skipped {model_wheel.name}: already on the index"]
    assert [path.name for path in index.packages.iterdir()] == [model_wheel.name]
    assert stored.stat().st_mtime_ns == uploaded_at


@pytest.mark.usefixtures("credentials")
def test_another_file_under_a_published_name_is_refused(
    model_wheel: Path, index: Index, tmp_path: Path
) -> None:
    """Given the wheel published, when a different file of the same name comes, then an error."""
    publish([model_wheel], index.upload_url, index.simple_url)
    other = tmp_path / model_wheel.name
    other.write_bytes(model_wheel.read_bytes() + b"\0")

    with pytest.raises(PublishError, match=r"the index has another .* release a new version"):
        publish([other], index.upload_url, index.simple_url)

    assert (index.packages / model_wheel.name).read_bytes() == model_wheel.read_bytes()


def test_the_index_url_may_come_from_twine_variable(
    model_wheel: Path, index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given URLs and credentials in the environment (a CircleCI context), then they are used."""
    monkeypatch.setenv("TWINE_REPOSITORY_URL", index.upload_url)
    monkeypatch.setenv("DEPLOY_INDEX_URL", index.simple_url)
    monkeypatch.setenv("TWINE_USERNAME", USER)
    monkeypatch.setenv("TWINE_PASSWORD", PASSWORD)

    publish([model_wheel])

    assert [path.name for path in index.packages.iterdir()] == [model_wheel.name]


@pytest.mark.usefixtures("credentials")
def test_published_version_installs_with_pip(
    model_wheel: Path, index: Index, tmp_path: Path
) -> None:
    """Given the wheel on the index, when pip installs yield-model==VERSION, then it is that one."""
    publish([model_wheel], index.upload_url, index.simple_url)
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"

    # --no-deps: this index serves the project only; numpy and co. come from the real one.
    installed = subprocess.run(
        [
            python, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check",
            "--no-cache-dir", "--index-url", index.simple_url_with_password,
            f"yield-model=={VERSION}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip

    assert installed.returncode == 0, installed.stdout + installed.stderr
    shown = subprocess.run(
        [python, "-c", "import importlib.metadata as m; print(m.version('yield-model'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout.strip() == VERSION


def test_a_wrong_password_fails_without_showing_it(
    model_wheel: Path, index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a wrong password in the URLs, when publishing, then PublishError that hides it."""
    monkeypatch.setenv("TWINE_USERNAME", USER)
    monkeypatch.setenv("TWINE_PASSWORD", "not-the-password")
    wrong = f"http://{USER}:not-the-password@"

    with pytest.raises(PublishError, match="answered 403 Forbidden for yield-model") as failed:
        publish(
            [model_wheel],
            index.upload_url.replace("http://", wrong),
            index.simple_url.replace("http://", wrong),
        )

    assert "not-the-password" not in str(failed.value)
    assert list(index.packages.iterdir()) == []


@pytest.mark.usefixtures("credentials")
def test_a_failed_upload_is_an_error(model_wheel: Path, index: Index) -> None:
    """Given an upload URL nothing answers, when publishing, then PublishError, twine's words."""
    nowhere = f"http://127.0.0.1:{free_port()}/"

    with pytest.raises(
        PublishError, match=f"(?s)twine upload to {nowhere} failed:\n.*Connection refused"
    ):
        publish([model_wheel], nowhere, index.simple_url)


def test_no_index_is_refused_rather_than_falling_back_to_pypi(model_wheel: Path) -> None:
    """Given no index URL anywhere, when publishing, then SettingsError naming the variable."""
    with pytest.raises(SettingsError, match=r"TWINE_REPOSITORY_URL .* DEPLOY_INDEX_URL"):
        publish([model_wheel])


def test_a_missing_file_is_reported(tmp_path: Path) -> None:
    """Given a path that is not a file, when publishing, then PublishError naming it."""
    missing = tmp_path / "yield_model-9.9.9-py3-none-any.whl"
    with pytest.raises(PublishError, match=r"no such distribution: .*9\.9\.9"):
        publish([missing], "http://127.0.0.1:9/", "http://127.0.0.1:9/simple/")


@pytest.mark.usefixtures("credentials")
def test_a_model_of_generated_data_is_refused_naming_its_data_and_the_flag(
    model_wheels: ModelWheels, index: Index
) -> None:
    """Given a wheel whose card says generated data, when publishing, then nothing is uploaded."""
    with pytest.raises(PublishError) as refused:
        publish([model_wheels.generated], index.upload_url, index.simple_url)

    message = str(refused.value)
    assert message.startswith(f"{model_wheels.generated.name} is not published")
    assert "data.origin generated" in message
    assert "'generated by yield_model.datasets: 1396 rows, seed 0'" in message
    assert "--allow-generated-model" in message
    assert list(index.packages.iterdir()) == []


@pytest.mark.usefixtures("credentials")
def test_a_model_of_generated_data_is_published_when_allowed_with_a_note(
    model_wheels: ModelWheels, index: Index
) -> None:
    """Given the allow flag, when publishing a generated-data wheel, then it lands, noted."""
    done = publish(
        [model_wheels.generated], index.upload_url, index.simple_url, allow_generated=True
    )

    name = model_wheels.generated.name
    assert done[0].startswith(f"note: {name} was trained on generated data (data.origin generated")
    assert done[0].endswith("published as --allow-generated-model says")
    assert done[1:] == [f"uploaded {name}"]
    assert (index.packages / name).read_bytes() == model_wheels.generated.read_bytes()


def _run_publish(wheel: Path, index: Index, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "yield_deploy", "publish", str(wheel), *flags,
         "--repository-url", index.upload_url, "--index-url", index.simple_url],
        env={**os.environ, "TWINE_USERNAME": USER, "TWINE_PASSWORD": PASSWORD},
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip


def test_the_command_refuses_a_model_of_generated_data_with_a_non_zero_exit(
    model_wheels: ModelWheels, index: Index
) -> None:
    """Given python -m yield_deploy publish, then exit 1 and one error line; with the flag, 0."""
    refused = _run_publish(model_wheels.generated, index)

    assert refused.returncode == 1
    assert refused.stderr.startswith(f"error: {model_wheels.generated.name} is not published")
    assert "--allow-generated-model" in refused.stderr
    assert list(index.packages.iterdir()) == []

    allowed = _run_publish(model_wheels.generated, index, "--allow-generated-model")

    assert allowed.returncode == 0, allowed.stderr
    assert f"uploaded {model_wheels.generated.name}" in allowed.stdout.splitlines()


@pytest.mark.usefixtures("credentials")
def test_a_wheel_not_of_the_model_is_published_without_a_card(tmp_path: Path, index: Index) -> None:
    """Given another project's wheel (the release tool's), then no model card is asked for."""
    source = tmp_path / "deploy"
    root = Path(__file__).resolve().parents[2]
    shutil.copytree(
        root / "deploy", source, ignore=shutil.ignore_patterns("build", "*.egg-info", "tests")
    )
    built = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", tmp_path,
         source],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = tmp_path.glob("yield_deploy-*.whl")

    assert publish([wheel], index.upload_url, index.simple_url) == [f"uploaded {wheel.name}"]
