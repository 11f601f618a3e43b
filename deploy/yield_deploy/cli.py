"""``python -m yield_deploy`` (``yield-deploy``): the commands CI runs, and a user too."""

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from yield_deploy.errors import DeployError, PushError, SettingsError
from yield_deploy.settings import ENV_PREFIX, Settings, describe_settings_error, flag, get_settings

SETTING = "setting_"


def check_version_command(args: argparse.Namespace) -> int:
    """Fail unless the tag names the version of every VERSION file."""
    from yield_deploy.versions import check_version

    version = check_version(args.tag, args.root)
    print(f"{args.tag} releases version {version}")
    return 0


def publish_command(args: argparse.Namespace) -> int:
    """Upload distributions to the private index, skipping those already there."""
    from yield_deploy.publish import publish

    published = publish(
        args.files, args.repository_url, args.index_url, allow_generated=args.allow_generated_model
    )
    for line in published:
        print(line)
    return 0


def bootstrap_command(args: argparse.Namespace) -> int:
    """Create the repository, log group, roles, metrics workspace and its alerts, cluster, task
    definition, service, autoscaling."""
    from yield_deploy.aws import connect
    from yield_deploy.bootstrap import bootstrap

    settings = settings_from(args)
    report = bootstrap(connect(settings), settings)
    for change in report.changes:
        print(f"changed: {change}")
    if not report.changes:
        print("nothing to change")
    if report.waiting:
        print(f"not yet: {report.waiting}")
    for note in report.notes:
        print(f"note: {note}")
    return 0


def push_command(args: argparse.Namespace) -> int:
    """Tag a local image for ECR and push it under every tag given."""
    import docker

    from yield_deploy.aws import connect
    from yield_deploy.push import push

    settings = settings_from(args)
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as error:
        raise PushError(f"no Docker engine answers: {error}") from None
    for tag, digest in push(connect(settings), settings, client, args.image, args.tags).items():
        print(f"pushed {settings.repository}:{tag} {digest}")
    return 0


def deploy_command(args: argparse.Namespace) -> int:
    """Run the image tagged DEPLOY_IMAGE_TAG; roll back and fail if it does not become stable."""
    from yield_deploy.aws import connect
    from yield_deploy.rollout import deploy

    settings = settings_from(args)
    deployed = deploy(connect(settings), settings, from_template=args.from_template)
    if deployed.changed:
        print(f"deployed {deployed.image} as {deployed.revision} (was {deployed.previous})")
    else:
        print(f"already running {deployed.image} ({deployed.revision})")
    return 0


def scale_command(args: argparse.Namespace) -> int:
    """Set the desired count now and the autoscaling bounds and CPU target."""
    from yield_deploy.autoscaling import scale
    from yield_deploy.aws import connect

    settings = settings_from(args)
    changes = scale(connect(settings), settings)
    for change in changes:
        print(f"changed: {change}")
    if not changes:
        print("nothing to change")
    return 0


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings: environment variables, overridden by the flags given."""
    overrides = {
        name.removeprefix(SETTING): value
        for name, value in vars(args).items()
        if name.startswith(SETTING) and value is not None
    }
    try:
        return get_settings(**overrides)
    except ValidationError as error:
        raise SettingsError(f"invalid settings:\n{describe_settings_error(error)}") from None


def build_parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per release step."""
    parser = argparse.ArgumentParser(
        prog="python -m yield_deploy",
        description="Release the yield model API: version check, wheel, image, ECS service.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, run: Callable[[argparse.Namespace], int], **kwargs: Any) -> Any:
        sub = commands.add_parser(name, help=run.__doc__, description=run.__doc__, **kwargs)
        sub.set_defaults(run=run)
        return sub

    check = add("check-version", check_version_command)
    check.add_argument("tag", help="the release tag, vX.Y.Z")
    check.add_argument("--root", type=Path, default=Path(), help="the repository (default: .)")

    publish = add("publish", publish_command)
    publish.add_argument("files", nargs="+", type=Path, help="wheels or sdists")
    publish.add_argument("--repository-url", help="upload URL (default: $TWINE_REPOSITORY_URL)")
    publish.add_argument(
        "--index-url", help="the index's simple API, as pip takes it (default: $DEPLOY_INDEX_URL)"
    )
    publish.add_argument(
        "--allow-generated-model",
        action="store_true",
        help="publish a model wheel whose card says it was trained on generated data",
    )

    aws = argparse.ArgumentParser(add_help=False)
    group = aws.add_argument_group(
        "settings", f"each flag overrides its {ENV_PREFIX}* environment variable"
    )
    for name, field in Settings.model_fields.items():
        group.add_argument(
            flag(name),
            dest=SETTING + name,
            metavar=name.upper(),
            help=(field.description or "").replace("%", "%%"),
        )
    add("bootstrap", bootstrap_command, parents=[aws])
    push = add("push", push_command, parents=[aws])
    push.add_argument("image", help="the local image, e.g. mlapi:latest")
    push.add_argument(
        "--tag", action="append", dest="tags", required=True, help="a tag to push (repeatable)"
    )
    deploy = add("deploy", deploy_command, parents=[aws])
    deploy.add_argument(
        "--from-template",
        action="store_true",
        help="build the new revision from taskdef.json and the settings, not the running one",
    )
    add("scale", scale_command, parents=[aws])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; errors the tool expects are one message and a non-zero status."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except DeployError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    return status
