"""check-version: a tag releases only the version every VERSION file names."""

from pathlib import Path

import pytest
from checkout import copy_checkout

from yield_deploy.errors import VersionMismatchError
from yield_deploy.versions import VERSION_FILES, check_version

ROOT = Path(__file__).resolve().parents[2]


def make_project(root: Path, model: str, api: str, pin: str = "yield-model>=0.1,<2") -> Path:
    """A repository skeleton whose two VERSION files say `model` and `api`, and whose API
    requires `pin`."""
    for name, version in zip(VERSION_FILES, (model, api), strict=True):
        path = root / name
        path.parent.mkdir(parents=True)
        path.write_text(version + "\n")
    (root / "mlapi" / "pyproject.toml").write_text(
        f'[project]\nname = "yield-mlapi"\ndependencies = ["fastapi>=0.115", "{pin}"]\n'
    )
    return root


def bumped_copy(destination: Path, version: str) -> Path:
    """A copy of this repository's files with both VERSION files at `version`."""
    copy_checkout(destination)
    for name in VERSION_FILES:
        (destination / name).write_text(version + "\n")
    return destination


def test_a_copy_bumped_in_its_two_version_files_passes_the_release_check(
    tmp_path: Path,
) -> None:
    """Given a copy of the repository with only the VERSION files at 0.2.0, then v0.2.0 is
    a release of it (the API's requirement admits its model), and the old tag is not."""
    copy = bumped_copy(tmp_path, "0.2.0")
    assert check_version("v0.2.0", copy) == "0.2.0"
    with pytest.raises(VersionMismatchError, match=r"says '0\.2\.0'"):
        check_version(f"v{ROOT.joinpath(VERSION_FILES[0]).read_text().strip()}", copy)


def test_an_api_requirement_that_excludes_the_release_model_is_named(tmp_path: Path) -> None:
    """Given the API pinned to an older model, then the release check says to widen it."""
    root = make_project(tmp_path, "1.4.2", "1.4.2", pin="yield-model==1.4.1")

    with pytest.raises(VersionMismatchError) as error:
        check_version("v1.4.2", root)

    assert str(error.value) == (
        "mlapi/pyproject.toml requires yield-model==1.4.1, which yield-model 1.4.2 is not: "
        "widen the range so that the release's own model package is admitted"
    )


def test_the_repository_versions_agree_with_their_own_tag() -> None:
    """Given this repository, then tagging its model version passes."""
    version = (ROOT / "model_package" / "yield_model" / "VERSION").read_text().strip()

    assert check_version(f"v{version}", ROOT) == version


def test_matching_tag_names_the_version(tmp_path: Path) -> None:
    """Given both files at 1.4.2, when checking v1.4.2, then 1.4.2."""
    assert check_version("v1.4.2", make_project(tmp_path, "1.4.2", "1.4.2")) == "1.4.2"


def test_a_tag_other_than_the_files_says_which_file_differs(tmp_path: Path) -> None:
    """Given the API at 1.4.1, when checking v1.4.2, then the message names the API's file."""
    root = make_project(tmp_path, "1.4.2", "1.4.1")

    with pytest.raises(VersionMismatchError) as error:
        check_version("v1.4.2", root)

    assert str(error.value) == (
        "tag v1.4.2 does not match the project: mlapi/mlapi/VERSION says '1.4.1'. Set every "
        "VERSION file to 1.4.2 in a commit and tag that commit, or tag the version the files name."
    )


@pytest.mark.parametrize("tag", ["1.4.2", "v1.4", "v1.4.2-rc1", "v1.4.2.1", "release"])
def test_a_tag_not_shaped_vxyz_is_refused(tmp_path: Path, tag: str) -> None:
    """Given a tag that is not vX.Y.Z, then it is refused before any file is read."""
    with pytest.raises(VersionMismatchError, match=r"is not a release tag: expected vX\.Y\.Z"):
        check_version(tag, tmp_path)


def test_a_missing_version_file_is_named(tmp_path: Path) -> None:
    """Given no mlapi/mlapi/VERSION, then the error names the path."""
    (tmp_path / VERSION_FILES[0]).parent.mkdir(parents=True)
    (tmp_path / VERSION_FILES[0]).write_text("1.0.0")

    with pytest.raises(VersionMismatchError, match=r"mlapi/mlapi/VERSION does not exist"):
        check_version("v1.0.0", tmp_path)
