"""Release tags: a tag `vX.Y.Z` releases the version every VERSION file of the project names."""

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from yield_deploy.errors import VersionMismatchError

# The same pattern selects the tags CircleCI runs the release workflow on (.circleci/config.yml).
TAG_PATTERN = r"^v[0-9]+\.[0-9]+\.[0-9]+$"

# The files that name a version, relative to the repository's root: the model wheel and the API.
VERSION_FILES = ("model_package/yield_model/VERSION", "mlapi/mlapi/VERSION")


def project_versions(root: Path) -> dict[str, str]:
    """The version each VERSION file names, by its path."""
    versions = {}
    for name in VERSION_FILES:
        path = root / name
        try:
            versions[name] = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise VersionMismatchError(
                f"{path} does not exist: is {root} the repository?"
            ) from None
    return versions


# The API's requirement on the model package: a range, so that a release changes only the
# VERSION files; the image installs the very wheel of the release, whatever the range admits.
API_PROJECT = "mlapi/pyproject.toml"
MODEL_DISTRIBUTION = "yield-model"


def model_requirement(root: Path) -> Requirement:
    """The API's requirement on the model package, from its pyproject.toml."""
    path = root / API_PROJECT
    try:
        project = tomllib.loads(path.read_text(encoding="utf-8"))["project"]
    except FileNotFoundError:
        raise VersionMismatchError(f"{path} does not exist: is {root} the repository?") from None
    for line in project.get("dependencies", []):
        requirement = Requirement(line)
        if requirement.name == MODEL_DISTRIBUTION:
            return requirement
    raise VersionMismatchError(f"{path} does not require {MODEL_DISTRIBUTION}")


def check_version(tag: str, root: Path) -> str:
    """The version a release tag names, if every VERSION file names it too."""
    if not re.fullmatch(TAG_PATTERN, tag):
        raise VersionMismatchError(f"{tag!r} is not a release tag: expected vX.Y.Z, e.g. v1.2.3")
    version = tag.removeprefix("v")
    wrong = {name: found for name, found in project_versions(root).items() if found != version}
    if wrong:
        found = ", ".join(f"{name} says {value!r}" for name, value in wrong.items())
        raise VersionMismatchError(
            f"tag {tag} does not match the project: {found}. Set every VERSION file to "
            f"{version} in a commit and tag that commit, or tag the version the files name."
        )
    requirement = model_requirement(root)
    if not requirement.specifier.contains(version, prereleases=True):
        raise VersionMismatchError(
            f"{API_PROJECT} requires {requirement}, which {MODEL_DISTRIBUTION} {version} is "
            f"not: widen the range so that the release's own model package is admitted"
        )
    return version
