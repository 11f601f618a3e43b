"""A copy of this checkout's files, for tests that build, bump or release a repository of
their own: the files git tracks and the new ones it does not ignore, as they are in the
working tree (in CI's fresh clone, exactly the committed files).

The suites import this module by name: pytest's ``pythonpath`` (tox.ini, mlapi's and deploy's
pyproject.toml) puts tests/support on the path.
"""

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def checkout_files() -> list[str]:
    """The checkout's files, relative to its root."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout
    return [name for name in listed.decode().split("\0") if name and (ROOT / name).is_file()]


def copy_checkout(destination: Path) -> Path:
    """Copy the checkout's files into ``destination``; returns it."""
    for name in checkout_files():
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    return destination
