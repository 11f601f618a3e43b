"""requirements/*.lock: each pins, with hashes, every third-party package an environment
installs, in agreement with the pyproject.toml files it is resolved from (scripts/lock.sh):
the API's image (and the model's training) from image.lock, CircleCI's release tool from
release.lock."""

import re
import tomllib
from pathlib import Path

import pytest
from conftest import ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

#: Each lock and the projects whose dependencies it is resolved from.
LOCKS = {
    "image.lock": ("mlapi", "model_package"),
    "release.lock": ("deploy",),
}
OWN = {"yield-model", "yield-mlapi", "mlapi", "yield-deploy"}
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)")


def lock_path(lock: str) -> Path:
    return ROOT / "requirements" / lock


def pins(lock: str) -> dict[str, tuple[Version, int]]:
    """Each package the lock pins: its version and how many hashes it carries."""
    found: dict[str, tuple[Version, int]] = {}
    name = None
    for line in lock_path(lock).read_text(encoding="utf-8").splitlines():
        pin = PIN.match(line)
        if pin:
            name = canonicalize_name(pin.group(1))
            found[name] = (Version(pin.group(2)), 0)
        elif name and line.strip().startswith("--hash=sha256:"):
            version, hashes = found[name]
            found[name] = (version, hashes + 1)
    return found


def requirements(lock: str) -> list[Requirement]:
    """The third-party requirements of the lock's projects."""
    listed = []
    for project_dir in LOCKS[lock]:
        path = ROOT / project_dir / "pyproject.toml"
        project = tomllib.loads(path.read_text(encoding="utf-8"))["project"]
        listed += [Requirement(line) for line in project["dependencies"]]
    return [r for r in listed if canonicalize_name(r.name) not in OWN]


def test_every_lock_is_there_and_every_lock_there_is_checked() -> None:
    assert sorted(p.name for p in (ROOT / "requirements").glob("*.lock")) == sorted(LOCKS)


@pytest.mark.parametrize("lock", LOCKS)
def test_every_package_is_pinned_with_its_hashes(lock: str) -> None:
    found = pins(lock)
    assert len(found) > 20
    assert {name for name, (_, hashes) in found.items() if hashes == 0} == set()


@pytest.mark.parametrize(
    ("lock", "requirement"),
    [(lock, requirement) for lock in LOCKS for requirement in requirements(lock)],
    ids=str,
)
def test_the_lock_satisfies_the_projects_ranges(lock: str, requirement: Requirement) -> None:
    # Refreshed by scripts/lock.sh when a range changes (the installs' `pip check` agrees).
    name = canonicalize_name(requirement.name)
    assert name in pins(lock), f"{requirement} is not in {lock}: run scripts/lock.sh"
    version, _ = pins(lock)[name]
    assert requirement.specifier.contains(version, prereleases=True), (
        f"{lock} pins {name}=={version}, outside {requirement}: run scripts/lock.sh"
    )


@pytest.mark.parametrize("lock", LOCKS)
def test_the_lock_names_no_index_and_not_the_projects_own_packages(lock: str) -> None:
    text = lock_path(lock).read_text(encoding="utf-8")
    # a machine's mirror in the lock would send every build there
    assert not re.search(r"^--(extra-)?index-url|^--find-links|^-f ", text, re.MULTILINE)
    assert not OWN & set(pins(lock))


@pytest.mark.parametrize("lock", LOCKS)
def test_scripts_lock_sh_writes_the_lock_from_its_projects(lock: str) -> None:
    # The lock's own header names the command that refreshes it, and that command resolves
    # it from exactly the projects checked here.
    assert "#    scripts/lock.sh\n" in lock_path(lock).read_text(encoding="utf-8")
    script = (ROOT / "scripts" / "lock.sh").read_text(encoding="utf-8")
    (call,) = re.findall(rf"^compile requirements/{re.escape(lock)} (?:.*\\\n)*.*", script, re.M)
    assert re.findall(r"(\S+)/pyproject\.toml", call) == list(LOCKS[lock])


def test_the_image_installs_from_the_lock_with_hashes_required() -> None:
    dockerfile = (ROOT / "mlapi" / "Dockerfile").read_text(encoding="utf-8")
    assert dockerfile.count("--require-hashes -r requirements/image.lock") == 2
    assert "install --no-deps /wheels/yield_model-*.whl ./mlapi" in dockerfile
    assert "!requirements/image.lock" in (ROOT / ".dockerignore").read_text(encoding="utf-8")
