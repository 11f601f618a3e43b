"""Deploy an image: a new revision, the service moved to it, stable in time or rolled back."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from yield_deploy import monitoring, taskdef
from yield_deploy.api_keys import require_api_keys, require_metrics_key
from yield_deploy.aws import Aws, active_service, image_exists, repository_uri
from yield_deploy.database import require_shared_log
from yield_deploy.errors import NotBootstrappedError, RolloutError, SettingsError
from yield_deploy.settings import Settings

State = Literal["stable", "waiting", "failed", "rolled_back", "superseded"]


@dataclass(frozen=True)
class Judgement:
    """How a deployment stands, and why."""

    state: State
    detail: str


@dataclass(frozen=True)
class Deployed:
    """The revision the service runs after a successful deploy."""

    revision: str
    previous: str
    image: str

    @property
    def changed(self) -> bool:
        """Whether a new revision was registered."""
        return self.revision != self.previous


def judge(service: dict[str, Any], new: str, previous: str) -> Judgement:
    """How the move of a described service from `previous` to `new` stands."""
    running = service.get("taskDefinition")
    deployments = service.get("deployments", [])
    events = service.get("events", [])
    last_event = f"; last event: {events[0]['message']}" if events else ""
    if running != new:
        failed = [d for d in deployments if d.get("rolloutState") == "FAILED"]
        reason = failed[0].get("rolloutStateReason", "") if failed else ""
        if running == previous:
            # The circuit breaker returned the service to its last completed deployment.
            return Judgement("rolled_back", f"ECS rolled the deployment back: {reason}{last_event}")
        return Judgement("superseded", f"another deployment moved the service to {running}")
    primary: dict[str, Any] = next((d for d in deployments if d.get("status") == "PRIMARY"), {})
    if primary.get("rolloutState") == "FAILED":
        return Judgement("failed", f"{primary.get('rolloutStateReason', 'rollout failed')}")
    counts = f"{service.get('runningCount')}/{service.get('desiredCount')} tasks running"
    # The condition of ECS's own services-stable waiter: one deployment, every task running.
    if len(deployments) == 1 and service.get("runningCount") == service.get("desiredCount"):
        return Judgement("stable", counts)
    return Judgement("waiting", f"{counts}, {len(deployments)} deployments{last_event}")


def wait_until_settled(
    aws: Aws,
    settings: Settings,
    new: str,
    previous: str,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Judgement:
    """Poll the service until the deployment is decided or the stability timeout passes."""
    deadline = clock() + settings.stability_timeout
    while True:
        service = active_service(aws, settings)
        if service is None:
            return Judgement("superseded", "the service was deleted")
        judgement = judge(service, new, previous)
        if judgement.state != "waiting":
            return judgement
        remaining = deadline - clock()
        if remaining <= 0:
            return Judgement(
                "failed", f"not stable within {settings.stability_timeout:g} s: {judgement.detail}"
            )
        sleep(min(settings.poll_interval, remaining))


def deploy(
    aws: Aws,
    settings: Settings,
    from_template: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> Deployed:
    """Run the image tagged `settings.image_tag`; roll back if it does not become stable."""
    if settings.image_tag is None:
        raise SettingsError("deploy needs the image's tag: DEPLOY_IMAGE_TAG (--image-tag)")
    model_sha256 = taskdef.expected_model_sha256(settings)
    if from_template:
        require_shared_log(settings)
        require_api_keys(settings)
        require_metrics_key(settings)
    service = active_service(aws, settings)
    if service is None:
        raise NotBootstrappedError(
            f"service {settings.service!r} does not exist in cluster {settings.cluster!r}:"
            " run bootstrap"
        )
    image = f"{repository_uri(aws, settings)}:{settings.image_tag}"
    if not image_exists(aws, settings, settings.image_tag):
        raise NotBootstrappedError(f"image {image} is not in ECR: push it first")

    previous = str(service["taskDefinition"])
    described = aws.ecs.describe_task_definition(taskDefinition=previous, include=["TAGS"])
    current = described["taskDefinition"]
    if from_template:
        spec = taskdef.render(
            settings,
            image,
            current["executionRoleArn"],
            monitoring.require_task_role(aws, settings),
            monitoring.require_workspace(aws, settings).remote_write_url,
            model_sha256=model_sha256,
        )
    elif taskdef.runs(current, settings.container, image, model_sha256):
        return Deployed(revision=previous, previous=previous, image=image)
    else:
        spec = taskdef.with_image(current, settings.container, image, model_sha256)
    if described.get("tags"):
        spec["tags"] = described["tags"]
    new = str(aws.ecs.register_task_definition(**spec)["taskDefinition"]["taskDefinitionArn"])
    # Only the revision changes: the desired count belongs to autoscaling.
    aws.ecs.update_service(cluster=settings.cluster, service=settings.service, taskDefinition=new)

    judgement = wait_until_settled(aws, settings, new, previous, sleep=sleep)
    if judgement.state == "stable":
        return Deployed(revision=new, previous=previous, image=image)
    if judgement.state == "failed":
        aws.ecs.update_service(
            cluster=settings.cluster, service=settings.service, taskDefinition=previous
        )
        raise RolloutError(f"{new}: {judgement.detail}", previous, rolled_back=True)
    if judgement.state == "rolled_back":
        raise RolloutError(f"{new}: {judgement.detail}", previous, rolled_back=True)
    raise RolloutError(f"{new}: {judgement.detail}", "another revision", rolled_back=False)
