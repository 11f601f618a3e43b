"""tests/support/stack_tools.py: where promtool or amtool is not installed, the config tests
run them from the stack's own images through Docker, the same checks by the same versions;
with neither, one line says what to install."""

import os
import subprocess
from pathlib import Path

import pytest
import stack_tools
from conftest import ROOT


@pytest.fixture(scope="module")
def docker() -> None:
    if not stack_tools.docker_works():
        if os.environ.get("CI") == "true":
            pytest.fail("no Docker engine: CI runs the checkers from the images", pytrace=False)
        pytest.skip("no Docker engine")


@pytest.mark.usefixtures("docker")
@pytest.mark.parametrize(
    ("tool", "check"),
    [
        (stack_tools.PROMTOOL, ["check", "rules", "prometheus/alerts.yml"]),
        (stack_tools.AMTOOL, ["check-config", "alertmanager/alertmanager.yml"]),
    ],
    ids=lambda value: value.command if isinstance(value, stack_tools.Tool) else None,
)
def test_a_checker_from_the_stack_image_checks_the_files(
    tool: stack_tools.Tool, check: list[str], tmp_path: Path
) -> None:
    wrapper = stack_tools.from_image(tool, tmp_path)
    version = subprocess.run([wrapper, "--version"], capture_output=True, text=True, check=False)
    assert version.returncode == 0, version.stderr
    tag = stack_tools.compose_image(tool.service).rsplit(":v", 1)[1]
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


@pytest.mark.parametrize(
    "tool",
    [stack_tools.PROMTOOL, stack_tools.AMTOOL, stack_tools.PROMETHEUS, stack_tools.PG_CTL],
    ids=lambda tool: tool.command,
)
def test_without_the_tool_or_docker_one_line_says_what_to_install(
    tool: stack_tools.Tool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a PATH with neither the tool nor docker on it, and no variable naming the tool
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(tool.variable, raising=False)
    monkeypatch.delenv(stack_tools.FROM_IMAGES, raising=False)
    # (a tool found at its package's place, off the PATH, is hidden by TOOLS_FROM_IMAGES)
    if tool.default and Path(tool.default).exists():
        monkeypatch.setenv(stack_tools.FROM_IMAGES, "1")
        expected = f"{stack_tools.FROM_IMAGES}=1, but no Docker engine answers"
    else:
        expected = (
            f"{tool.command} not found: install it (`apt-get install -y "
            f"--no-install-recommends {tool.package}`) or Docker"
        )
    # When the tests ask for it, then they fail with that one line
    with pytest.raises(pytest.fail.Exception) as failed:
        stack_tools.executable(tool, tmp_path)
    assert str(failed.value).startswith(expected)
    assert "\n" not in str(failed.value)


def test_tools_from_images_takes_the_image_even_where_a_tool_is_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed = tmp_path / "promtool"
    installed.write_text("#!/bin/sh\n", encoding="utf-8")
    installed.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(stack_tools.FROM_IMAGES, raising=False)
    assert stack_tools.installed(stack_tools.PROMTOOL) == str(installed)
    monkeypatch.setenv(stack_tools.FROM_IMAGES, "1")
    assert stack_tools.installed(stack_tools.PROMTOOL) is None
