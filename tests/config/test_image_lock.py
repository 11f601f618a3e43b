"""requirements/image.lock: what the API's image installs beside the project's own wheels,
pinned with hashes, and in agreement with the two pyproject.toml files it is resolved from."""

import re
import tomllib
from pathlib import Path

import pytest
from conftest import ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

LOCK = ROOT / "requirements" / "image.lock"
PROJECTS = (ROOT / "mlapi" / "pyproject.toml", ROOT / "model_package" / "pyproject.toml")
OWN = {"yield-model", "yield-mlapi", "mlapi"}
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)")


def pins() -> dict[str, tuple[Version, int]]:
    """Each pinned package: its version and how many hashes it carries."""
    found: dict[str, tuple[Version, int]] = {}
    name = None
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        pin = PIN.match(line)
        if pin:
            name = canonicalize_name(pin.group(1))
            found[name] = (Version(pin.group(2)), 0)
        elif name and line.strip().startswith("--hash=sha256:"):
            version, hashes = found[name]
            found[name] = (version, hashes + 1)
    return found


def requirements() -> list[Requirement]:
    """The third-party requirements of the two projects."""
    listed = []
    for path in PROJECTS:
        project = tomllib.loads(path.read_text(encoding="utf-8"))["project"]
        listed += [Requirement(line) for line in project["dependencies"]]
    return [r for r in listed if canonicalize_name(r.name) not in OWN]


def test_every_package_is_pinned_with_its_hashes() -> None:
    found = pins()
    assert len(found) > 20
    assert {name for name, (_, hashes) in found.items() if hashes == 0} == set()


@pytest.mark.parametrize("requirement", requirements(), ids=str)
def test_the_lock_satisfies_the_projects_ranges(requirement: Requirement) -> None:
    # Refreshed by scripts/lock.sh when a range changes (the image's `pip check` agrees).
    name = canonicalize_name(requirement.name)
    assert name in pins(), f"{requirement} is not in the lock: run scripts/lock.sh"
    version, _ = pins()[name]
    assert requirement.specifier.contains(version, prereleases=True), (
        f"the lock pins {name}=={version}, outside {requirement}: run scripts/lock.sh"
    )


def test_the_lock_names_no_index_and_not_the_projects_own_packages() -> None:
    text = LOCK.read_text(encoding="utf-8")
    # a machine's mirror in the lock would send every build there
    assert not re.search(r"^--(extra-)?index-url|^--find-links|^-f ", text, re.MULTILINE)
    assert not OWN & set(pins())


def test_the_image_installs_from_the_lock_with_hashes_required() -> None:
    dockerfile = (ROOT / "mlapi" / "Dockerfile").read_text(encoding="utf-8")
    assert dockerfile.count("--require-hashes -r requirements/image.lock") == 2
    assert "install --no-deps /wheels/yield_model-*.whl ./mlapi" in dockerfile
    assert "!requirements/image.lock" in (ROOT / ".dockerignore").read_text(encoding="utf-8")
    assert Path(ROOT / "scripts" / "lock.sh").is_file()
