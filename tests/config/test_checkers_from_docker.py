"""Where promtool or amtool is not installed, the config tests run them from the stack's own
images through Docker: the same checks, by the same versions."""

import os
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, docker_tool, docker_works, load_yaml


@pytest.fixture(scope="module")
def docker() -> None:
    if not docker_works():
        if os.environ.get("CI") == "true":
            pytest.fail("no Docker engine: CI runs the checkers from the images", pytrace=False)
        pytest.skip("no Docker engine")


@pytest.mark.usefixtures("docker")
@pytest.mark.parametrize(
    ("tool", "service", "check"),
    [
        ("promtool", "prometheus", ["check", "rules", "prometheus/alerts.yml"]),
        ("amtool", "alertmanager", ["check-config", "alertmanager/alertmanager.yml"]),
    ],
)
def test_a_checker_from_the_stack_image_checks_the_files(
    tool: str, service: str, check: list[str], tmp_path: Path
) -> None:
    wrapper = docker_tool(tool, service, tmp_path)
    version = subprocess.run([wrapper, "--version"], capture_output=True, text=True, check=False)
    assert version.returncode == 0, version.stderr
    tag = _image_tag(service)
    assert f"version {tag}" in version.stdout + version.stderr
    done = subprocess.run([wrapper, *check], capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    # and it fails where the file is wrong, as the installed checker would
    broken = tmp_path / "broken.yml"
    broken.write_text("route: [\n", encoding="utf-8")
    bad = subprocess.run(
        [wrapper, *check[:-1], str(broken)], capture_output=True, text=True, check=False
    )
    assert bad.returncode != 0


def _image_tag(service: str) -> str:
    image = load_yaml(ROOT / "docker-compose.yml")["services"][service]["image"]
    return str(image).rsplit(":v", 1)[1]
