"""Publish distributions to the private package index; a file already there is skipped.

twine uploads. It no longer skips existing files on any index but PyPI (`--skip-existing`
is refused elsewhere since twine 6.2, pypa/twine#1253), so the tool asks the index's simple
API (PEP 503/691, what pip reads) which files it already has. A file of the same name but
other content is an error: it would mean two different wheels for one version.

A model wheel whose card does not say it was trained on the plant's data (a file or S3 object,
``data.origin`` "file") is refused before anything is uploaded, unless ``allow_generated``:
a release that forgot MODEL_TRAINING_DATA would otherwise publish a model of generated data.
"""

import hashlib
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import requests

from yield_deploy.errors import PublishError, SettingsError
from yield_deploy.model_wheel import is_model_wheel, read_model_wheel

# twine's own variables for the upload URL and credentials, and the index pip reads.
UPLOAD_URL = "TWINE_REPOSITORY_URL"
USERNAME, PASSWORD = "TWINE_USERNAME", "TWINE_PASSWORD"
INDEX_URL = "DEPLOY_INDEX_URL"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


ALLOW_GENERATED_FLAG = "--allow-generated-model"


def publish(
    files: list[Path],
    repository_url: str | None = None,
    index_url: str | None = None,
    *,
    allow_generated: bool = False,
) -> list[str]:
    """Upload the files the index lacks; one line per file saying what was done."""
    upload = repository_url or os.environ.get(UPLOAD_URL)
    index = index_url or os.environ.get(INDEX_URL)
    if not upload or not index:
        # Without an upload URL twine would send the model to the public PyPI.
        raise SettingsError(
            f"the private index needs {UPLOAD_URL} (--repository-url), where twine uploads, and"
            f" {INDEX_URL} (--index-url), its simple API that pip reads; credentials in"
            f" {USERNAME} and {PASSWORD}"
        )
    missing = [str(path) for path in files if not path.is_file()]
    if missing or not files:
        raise PublishError(f"no such distribution: {', '.join(missing) or '(none given)'}")
    done = check_model_wheels(files, allow_generated)
    auth = (os.environ[USERNAME], os.environ[PASSWORD]) if _has_credentials() else None

    new = []
    for path in files:
        published = files_on_index(index, project_of(path.name), auth)
        if path.name not in published:
            new.append(path)
            continue
        theirs, ours = published[path.name], hashlib.sha256(path.read_bytes()).hexdigest()
        if theirs is not None and theirs != ours:
            raise PublishError(
                f"the index has another {path.name} (sha256 {theirs}, this one {ours}):"
                " a published version is never replaced; release a new version"
            )
        done.append(f"skipped {path.name}: already on the index")
    if new:
        _upload(upload, new)
        done += [f"uploaded {path.name}" for path in new]
    return done


def check_model_wheels(files: list[Path], allow_generated: bool) -> list[str]:
    """Refuse a model wheel trained on generated data unless allowed; a note if allowed."""
    notes = []
    for path in filter(is_model_wheel, files):
        wheel = read_model_wheel(path)
        if not wheel.trained_on_generated_data:
            continue
        if not allow_generated:
            raise PublishError(
                f"{path.name} is not published: its card does not say the model was trained on"
                f" the plant's data ({wheel.describe_data()}); train it from"
                " MODEL_TRAINING_DATA (scripts/build-model-wheel.sh), or pass"
                f" {ALLOW_GENERATED_FLAG} to publish a model of generated data anyway"
            )
        notes.append(
            f"note: {path.name} was trained on generated data ({wheel.describe_data()});"
            f" published as {ALLOW_GENERATED_FLAG} says"
        )
    return notes


def project_of(filename: str) -> str:
    """The normalized project name (PEP 503) of a wheel or sdist file."""
    name = re.split(r"-\d", filename, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def files_on_index(index: str, project: str, auth: tuple[str, str] | None) -> dict[str, str | None]:
    """The project's files on the index, each with its sha256 when the index gives one."""
    response = requests.get(
        f"{index.rstrip('/')}/{project}/",
        auth=auth,
        headers={"Accept": f"{SIMPLE_JSON}, text/html;q=0.1"},
        timeout=60,
    )
    if response.status_code == 404:
        return {}
    if not response.ok:
        raise PublishError(
            f"the index {_without_password(index)} answered {response.status_code}"
            f" {response.reason} for {project}"
        )
    if response.headers.get("Content-Type", "").startswith(SIMPLE_JSON):
        return {f["filename"]: f.get("hashes", {}).get("sha256") for f in response.json()["files"]}
    links = _Links()
    links.feed(response.text)
    return links.files


class _Links(HTMLParser):
    """The anchors of a PEP 503 page: file name (the text) and the sha256 in the link."""

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, str | None] = {}
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href") or ""

    def handle_data(self, data: str) -> None:
        if self._href is not None and data.strip():
            digest = re.search(r"#sha256=([0-9a-f]{64})", self._href)
            self.files[data.strip()] = digest[1] if digest else None

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._href = None


def _upload(url: str, files: list[Path]) -> None:
    command = [
        sys.executable,
        "-m",
        "twine",
        "--no-color",
        "upload",
        "--non-interactive",
        "--disable-progress-bar",
        "--repository-url",
        url,
        *map(str, files),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        said = (done.stdout + done.stderr).strip()
        raise PublishError(f"twine upload to {_without_password(url)} failed:\n{said}")


def _has_credentials() -> bool:
    return bool(os.environ.get(USERNAME)) and bool(os.environ.get(PASSWORD))


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
