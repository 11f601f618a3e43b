""".circleci/config.yml: valid by CircleCI's schema, and releasing only on vX.Y.Z tags.

CircleCI's documented rules tested here: a workflow job runs on a tag only if its filters
name tags (jobs without tag filters never run on tags), and a job that requires others runs
on a tag only if each of those has tag filters too. A filter's regex must match the whole
tag or branch name.
"""

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from yield_deploy.versions import TAG_PATTERN

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / ".circleci" / "config.yml"
TESTS = ["model", "mlapi", "lint", "type", "config", "deploy", "stack"]
RELEASE = ["check-version", "publish-wheel", "push-image", "deploy-ecs"]
CONTEXT = "yield-release"


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    """The parsed CircleCI configuration."""
    parsed: dict[str, Any] = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    return parsed


def workflow_jobs(config: dict[str, Any], workflow: str) -> dict[str, dict[str, Any]]:
    """A workflow's jobs, each with its options ({} for a bare name)."""
    jobs: dict[str, dict[str, Any]] = {}
    for entry in config["workflows"][workflow]["jobs"]:
        if isinstance(entry, str):
            jobs[entry] = {}
        else:
            ((name, options),) = entry.items()
            jobs[name] = options or {}
    return jobs


def circleci_regex(pattern: str) -> re.Pattern[str]:
    """A CircleCI filter value: /regex/ matching the whole name, or a literal name."""
    if pattern.startswith("/") and pattern.endswith("/"):
        return re.compile(pattern[1:-1])
    return re.compile(re.escape(pattern))


def runs_on_tag(options: dict[str, Any], tag: str) -> bool:
    """Whether CircleCI runs a workflow job for a pushed tag (its own filters only)."""
    tags = options.get("filters", {}).get("tags")
    if tags is None:
        return False  # no tag filter: never on tags
    only = tags.get("only")
    ignore = tags.get("ignore")
    patterns = (only if isinstance(only, list) else [only]) if only is not None else None
    if patterns is not None and not any(circleci_regex(p).fullmatch(tag) for p in patterns):
        return False
    ignored = ignore if isinstance(ignore, list) else [ignore] if ignore else []
    return not any(circleci_regex(p).fullmatch(tag) for p in ignored)


def runs_on_branch(options: dict[str, Any], branch: str) -> bool:
    """Whether CircleCI runs a workflow job for a push to a branch."""
    branches = options.get("filters", {}).get("branches", {})
    only, ignore = branches.get("only"), branches.get("ignore")
    if only is not None:
        patterns = only if isinstance(only, list) else [only]
        if not any(circleci_regex(p).fullmatch(branch) for p in patterns):
            return False
    ignored = ignore if isinstance(ignore, list) else [ignore] if ignore else []
    return not any(circleci_regex(p).fullmatch(branch) for p in ignored)


def runs_on_tag_with_requirements(jobs: dict[str, dict[str, Any]], name: str, tag: str) -> bool:
    """Whether a job runs for a tag: its filters and those of everything it requires."""
    options = jobs[name]
    return runs_on_tag(options, tag) and all(
        runs_on_tag_with_requirements(jobs, required, tag)
        for required in options.get("requires", [])
    )


def test_config_is_valid_by_circleci_schema() -> None:
    """Given the config, when check-jsonschema reads it with CircleCI's schema, then it passes."""
    checked = _check_jsonschema(CONFIG)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_schema_check_catches_a_broken_config(tmp_path: Path) -> None:
    """Given a tag filter that is a number, when checked, then the schema refuses it."""
    original = CONFIG.read_text(encoding="utf-8")
    broken = tmp_path / "config.yml"
    broken.write_text(original.replace(f"only: /{TAG_PATTERN}/", "only: 7", 1), encoding="utf-8")
    assert broken.read_text(encoding="utf-8") != original

    checked = _check_jsonschema(broken)

    assert checked.returncode == 1
    assert "$.workflows.release.jobs[0]" in checked.stdout


def _check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("check-jsonschema") or str(
        Path(sys.executable).with_name("check-jsonschema")
    )
    return subprocess.run(
        [executable, "--builtin-schema", "vendor.circle-ci", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_job_a_workflow_names_exists(config: dict[str, Any]) -> None:
    """Given each workflow, then every job it runs or requires is defined under jobs."""
    defined = set(config["jobs"])
    for workflow in config["workflows"]:
        jobs = workflow_jobs(config, workflow)
        assert set(jobs) <= defined, workflow
        for options in jobs.values():
            assert set(options.get("requires", [])) <= set(jobs), workflow


def test_workflows_run_the_tests_and_the_release(config: dict[str, Any]) -> None:
    """Given the workflows, then pushes run the tests, tags run tests and release steps."""
    assert list(workflow_jobs(config, "test")) == TESTS
    assert list(workflow_jobs(config, "release")) == TESTS + RELEASE


def test_every_release_job_has_exactly_the_tag_filter_and_ignores_branches(
    config: dict[str, Any],
) -> None:
    """Given the release workflow, then each job: tags only vX.Y.Z, every branch ignored."""
    for name, options in workflow_jobs(config, "release").items():
        assert options["filters"] == {
            "tags": {"only": f"/{TAG_PATTERN}/"},
            "branches": {"ignore": "/.*/"},
        }, name


def test_the_test_workflow_runs_on_branches_only(config: dict[str, Any]) -> None:
    """Given the test workflow, then its jobs have no filters: every branch, never a tag."""
    for name, options in workflow_jobs(config, "test").items():
        assert "filters" not in options, name
        assert runs_on_branch(options, "main")
        assert not runs_on_tag(options, "v1.2.3")


TAGS = [
    ("v1.2.3", True),
    ("v0.1.0", True),
    ("v10.20.300", True),
    ("1.2.3", False),
    ("v1.2", False),
    ("v1.2.3.4", False),
    ("v1.2.3-rc1", False),
    ("v1.2.3rc1", False),
    ("release-v1.2.3", False),
    ("v1.2.3 ", False),
    ("V1.2.3", False),
    ("va.b.c", False),
    ("v1..3", False),
    ("", False),
]


@pytest.mark.parametrize(("tag", "releases"), TAGS)
def test_release_runs_for_exactly_the_vxyz_tags(
    config: dict[str, Any], tag: str, releases: bool
) -> None:
    """Given a pushed tag, then every release job runs (with its requirements) iff it is vX.Y.Z."""
    jobs = workflow_jobs(config, "release")
    for name in jobs:
        assert runs_on_tag_with_requirements(jobs, name, tag) is releases, (name, tag)


@pytest.mark.parametrize("branch", ["main", "v1.2.3", "release/v1.2.3", "feature"])
def test_release_never_runs_for_a_branch(config: dict[str, Any], branch: str) -> None:
    """Given a push to a branch, even one named like a tag, then no release job runs."""
    for name, options in workflow_jobs(config, "release").items():
        assert not runs_on_branch(options, branch), (name, branch)


def test_release_steps_run_in_order_after_every_test(config: dict[str, Any]) -> None:
    """Given the release workflow, then publish, push, deploy each wait for all before them."""
    jobs = workflow_jobs(config, "release")

    def before(name: str) -> set[str]:
        required = set(jobs[name].get("requires", []))
        return required | {earlier for job in required for earlier in before(job)}

    assert before("publish-wheel") == {*TESTS, "check-version"}
    assert before("push-image") == {*TESTS, "check-version", "publish-wheel"}
    assert before("deploy-ecs") == {*TESTS, "check-version", "publish-wheel", "push-image"}


def test_only_the_steps_that_need_secrets_get_the_context(config: dict[str, Any]) -> None:
    """Given the workflows, then the release context reaches publish, push and deploy only."""
    for workflow in config["workflows"]:
        for name, options in workflow_jobs(config, workflow).items():
            wanted = [CONTEXT] if name in {"publish-wheel", "push-image", "deploy-ecs"} else None
            context = options.get("context")
            assert ([context] if isinstance(context, str) else context) == wanted, name


def test_check_version_gets_the_tag(config: dict[str, Any]) -> None:
    """Given the check-version job, then it runs the deploy tool's check on $CIRCLE_TAG."""
    commands = [
        step["run"]["command"] for step in config["jobs"]["check-version"]["steps"] if "run" in step
    ]
    assert commands == ['python -m yield_deploy check-version "$CIRCLE_TAG"']


def test_tox_envs_run_by_circleci_exist_in_tox_ini(config: dict[str, Any]) -> None:
    """Given the test jobs, then each runs `tox -e <its name>`, an env tox.ini defines."""
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini", encoding="utf-8")
    for name in TESTS:
        (tox_step,) = [step for step in config["jobs"][name]["steps"] if "tox" in step]
        assert tox_step["tox"]["env"] == name
        assert tox.has_section(f"testenv:{name}"), f"tox.ini has no [testenv:{name}]"


def test_cache_keys_checksum_files_that_exist(config: dict[str, Any]) -> None:
    """Given the pip cache keys, then every file they checksum exists (else the key is constant)."""
    text = CONFIG.read_text(encoding="utf-8")
    named = set(re.findall(r'checksum "([^"]+)"', text))
    assert named == {
        "model_package/pyproject.toml",
        "mlapi/pyproject.toml",
        "deploy/pyproject.toml",
        "requirements/image.lock",
        "requirements/release.lock",
        "tox.ini",
    }
    assert all((ROOT / path).is_file() for path in named)


def _commands(job: dict[str, Any]) -> list[str]:
    return [
        step["run"]["command"] if isinstance(step["run"], dict) else step["run"]
        for step in job["steps"]
        if isinstance(step, dict) and "run" in step
    ]


def test_the_release_image_installs_the_published_wheel_not_a_new_training(
    config: dict[str, Any],
) -> None:
    # Given the wheel job, which builds and publishes the wheel into model_package/dist
    wheel_job = config["jobs"]["publish-wheel"]
    assert any("build-model-wheel.sh model_package/dist" in c for c in _commands(wheel_job))
    persisted = [
        s["persist_to_workspace"] for s in wheel_job["steps"] if "persist_to_workspace" in s
    ]
    assert persisted == [{"root": ".", "paths": ["model_package/dist"]}]
    # Then the image job takes that directory from the workspace and builds from the wheel
    image_job = config["jobs"]["push-image"]
    assert {"attach_workspace": {"at": "."}} in image_job["steps"]
    (build,) = [c for c in _commands(image_job) if "docker build" in c]
    assert "--build-arg MODEL_SOURCE=wheel" in build
    release = workflow_jobs(config, "release")
    assert "publish-wheel" in release["push-image"]["requires"]


RELEASE_WHEEL = '"model_package/dist/yield_model-$VERSION-py3-none-any.whl"'


def test_a_release_trains_on_the_plants_data_or_fails(config: dict[str, Any]) -> None:
    # Given the wheel job's commands
    commands = _commands(config["jobs"]["publish-wheel"])
    (guard,) = [c for c in commands if "MODEL_TRAINING_DATA" in c]
    (build,) = [i for i, c in enumerate(commands) if "build-model-wheel.sh" in c]
    (publish,) = [c for c in commands if "yield_deploy publish" in c]
    # Then the check comes before the training, and publish is never told to take generated data
    assert commands.index(guard) < build
    assert publish == f"python -m yield_deploy publish {RELEASE_WHEEL}"
    # And the check fails without MODEL_TRAINING_DATA (or with it empty), naming it
    for unset in ({}, {"MODEL_TRAINING_DATA": ""}):
        run = subprocess.run(
            ["bash", "-eo", "pipefail", "-c", guard],
            env={"PATH": "/usr/bin:/bin", **unset},
            capture_output=True,
            text=True,
            check=False,
        )
        assert run.returncode != 0
        assert "MODEL_TRAINING_DATA" in run.stderr
    given = {"PATH": "/usr/bin:/bin", "MODEL_TRAINING_DATA": "s3://plant/train.csv"}
    run = subprocess.run(["bash", "-eo", "pipefail", "-c", guard], env=given, check=False)
    assert run.returncode == 0


def test_the_deployment_expects_the_published_wheels_model(config: dict[str, Any]) -> None:
    # Given the deploy job, which must tell the task definition the model's sha256
    job = config["jobs"]["deploy-ecs"]
    # Then it takes the published wheel from the workspace, and names it to bootstrap and deploy
    assert {"attach_workspace": {"at": "."}} in job["steps"]
    commands = _commands(job)
    for step in ("bootstrap", "deploy"):
        (command,) = [c for c in commands if f"yield_deploy {step} " in c]
        assert command == (
            f'python -m yield_deploy {step} --image-tag "$VERSION" --model-wheel {RELEASE_WHEEL}'
        )


def test_the_deploy_tests_have_a_registry_and_an_engine(config: dict[str, Any]) -> None:
    # Given the deploy test job, which runs the release test
    job = config["jobs"]["deploy"]
    commands = "\n".join(_commands(job))
    # Then the distribution registry is installed (its service stopped), and Docker is required
    assert re.search(r"apt-get install .*\bdocker-registry\b", commands)
    assert re.search(r"systemctl disable --now .*\bdocker-registry\b", commands)
    (tox_step,) = [step["tox"] for step in job["steps"] if "tox" in step]
    assert tox_step == {"env": "deploy", "args": "-- --require-docker"}


def _run_commands(config: dict[str, Any], steps: list[Any]) -> list[str]:
    """The shell commands of steps, with those of the reusable commands they name."""
    found = []
    for step in steps:
        name, options = (step, None) if isinstance(step, str) else next(iter(step.items()))
        if name == "run":
            found.append(options["command"] if isinstance(options, dict) else options)
        elif name in config.get("commands", {}):
            found += _run_commands(config, config["commands"][name]["steps"])
    return found


@pytest.mark.parametrize("job", RELEASE)
def test_the_release_jobs_install_the_release_tool_from_its_lock(
    config: dict[str, Any], job: str
) -> None:
    # Given each release job, with the commands it uses spelled out
    commands = _run_commands(config, config["jobs"][job]["steps"])
    installs = [
        line.strip()
        for command in commands
        for line in command.splitlines()
        if re.search(r"\bpip\b.*\binstall\b", line)
    ]
    # Then the release tool's dependencies come from the lock, hashes required; what else is
    # installed adds no dependency of its own, which pip check then confirms
    assert (
        '"$HOME/release/bin/pip" install --require-hashes -r requirements/release.lock' in installs
    ), job
    assert '"$HOME/release/bin/pip" install --no-deps ./deploy' in installs, job
    unlocked = [
        line
        for line in installs
        if not re.search(r" install (--require-hashes -r requirements/\S+\.lock|--no-deps )", line)
    ]
    assert unlocked == [], job
    assert any('"$HOME/release/bin/pip" check' in command for command in commands), job
    assert (ROOT / "requirements" / "release.lock").is_file()
