"""deploy against moto: one new revision differing only in the image, stability, rollback."""

from typing import Any

import pytest
from conftest import TAG, put_image
from model_wheels import ModelWheels, model_sha256_of

from yield_deploy.aws import Aws
from yield_deploy.bootstrap import bootstrap
from yield_deploy.errors import NotBootstrappedError, RolloutError, SettingsError
from yield_deploy.rollout import Judgement, deploy, judge
from yield_deploy.settings import Settings
from yield_deploy.taskdef import READ_ONLY

NEW_TAG = "0.2.0"


@pytest.fixture
def service(aws: Aws, settings: Settings) -> str:
    """A bootstrapped service running TAG, with NEW_TAG pushed too; its revision's ARN."""
    bootstrap(aws, settings)
    put_image(aws, settings.repository, TAG)
    bootstrap(aws, settings)
    put_image(aws, settings.repository, NEW_TAG)
    return str(_described_service(aws, settings)["taskDefinition"])


def _described_service(aws: Aws, settings: Settings) -> dict[str, Any]:
    found = aws.ecs.describe_services(cluster=settings.cluster, services=[settings.service])
    service: dict[str, Any] = found["services"][0]
    return service


def _revisions(aws: Aws, settings: Settings) -> list[str]:
    found = aws.ecs.list_task_definitions(familyPrefix=settings.task_family)
    return list(found["taskDefinitionArns"])


def _expected_model(definition: dict[str, Any]) -> str:
    environment = definition["containerDefinitions"][0]["environment"]
    (sha256,) = [e["value"] for e in environment if e["name"] == "MLAPI_MODEL_SHA256"]
    return str(sha256)


def _writable(aws: Aws, arn: str) -> dict[str, Any]:
    described: dict[str, Any] = aws.ecs.describe_task_definition(taskDefinition=arn)
    return {k: v for k, v in described["taskDefinition"].items() if k not in READ_ONLY}


@pytest.mark.usefixtures("tasks_start")
def test_deploy_registers_one_revision_that_differs_only_in_the_image(
    aws: Aws, settings: Settings, service: str, model_wheels: ModelWheels
) -> None:
    """Given a stable service on TAG, when deploying NEW_TAG, then one new revision differing
    only in the image and the sha256 of the model it must load."""
    uri = aws.ecr.describe_repositories(repositoryNames=[settings.repository])["repositories"][0][
        "repositoryUri"
    ]

    # the new image carries another model: the generated wheel's
    new_release = {"image_tag": NEW_TAG, "model_wheel": model_wheels.generated}
    deployed = deploy(aws, settings.model_copy(update=new_release))

    family = settings.task_family
    new = f"arn:aws:ecs:eu-west-1:123456789012:task-definition/{family}:2"
    assert (deployed.revision, deployed.previous, deployed.image) == (
        new,
        service,
        f"{uri}:{NEW_TAG}",
    )
    assert _revisions(aws, settings) == [service, new]
    before, after = _writable(aws, service), _writable(aws, new)
    assert before["containerDefinitions"][0]["image"] == f"{uri}:{TAG}"
    assert after["containerDefinitions"][0]["image"] == f"{uri}:{NEW_TAG}"
    assert _expected_model(before) == model_sha256_of(model_wheels.from_file)
    assert _expected_model(after) == model_sha256_of(model_wheels.generated)
    after["containerDefinitions"][0]["image"] = before["containerDefinitions"][0]["image"]
    after["containerDefinitions"][0]["environment"] = before["containerDefinitions"][0][
        "environment"
    ]
    assert after == before
    running = _described_service(aws, settings)
    assert running["taskDefinition"] == new
    assert running["desiredCount"] == 2


@pytest.mark.usefixtures("tasks_start")
def test_deploying_the_running_image_registers_nothing(
    aws: Aws, settings: Settings, service: str
) -> None:
    """Given a service on TAG, when deploying TAG, then no revision and nothing changed."""
    deployed = deploy(aws, settings)

    assert not deployed.changed
    assert deployed.revision == service
    assert _revisions(aws, settings) == [service]


def test_a_service_that_never_becomes_stable_is_rolled_back(
    aws: Aws, settings: Settings, service: str, model_wheels: ModelWheels
) -> None:
    """Given tasks that never start (an image whose model is not the wheel's: the API refuses
    it), when deploying, then rollback to the old revision and why."""
    # Without tasks_start moto's service runs 0 of its 2 tasks: it never becomes stable.
    new_release = {
        "image_tag": NEW_TAG,
        "model_wheel": model_wheels.generated,
        "stability_timeout": 0.3,
    }
    with pytest.raises(RolloutError) as failed:
        deploy(aws, settings.model_copy(update=new_release))

    new = f"arn:aws:ecs:eu-west-1:123456789012:task-definition/{settings.task_family}:2"
    assert failed.value.rolled_back
    assert failed.value.running == service
    assert failed.value.reason == (
        f"{new}: not stable within 0.3 s: 0/2 tasks running, 1 deployments"
    )
    assert (
        str(failed.value)
        == f"deployment failed: {failed.value.reason}; rolled the service back to {service}"
    )
    assert _described_service(aws, settings)["taskDefinition"] == service
    assert _revisions(aws, settings) == [service, new]
    # the revision rolled back to expects the model it ran with; the failed one, the new model
    assert _expected_model(_writable(aws, service)) == model_sha256_of(model_wheels.from_file)
    assert _expected_model(_writable(aws, new)) == model_sha256_of(model_wheels.generated)


@pytest.mark.usefixtures("tasks_start")
def test_the_running_image_with_another_model_wheel_is_a_new_revision(
    aws: Aws, settings: Settings, service: str, model_wheels: ModelWheels
) -> None:
    """Given a service on TAG, when deploying TAG with another wheel, then a new revision
    that expects that wheel's model (the image named must then carry it, or fail to start)."""
    deployed = deploy(aws, settings.model_copy(update={"model_wheel": model_wheels.generated}))

    assert deployed.changed
    assert _expected_model(_writable(aws, deployed.revision)) == model_sha256_of(
        model_wheels.generated
    )


def test_deploy_needs_the_model_wheel(aws: Aws, settings: Settings, service: str) -> None:
    """Given no model wheel, when deploying, then SettingsError naming it, nothing registered."""
    with pytest.raises(SettingsError, match=r"DEPLOY_MODEL_WHEEL \(--model-wheel\)"):
        deploy(aws, settings.model_copy(update={"image_tag": NEW_TAG, "model_wheel": None}))

    assert _revisions(aws, settings) == [service]


@pytest.mark.usefixtures("tasks_start")
def test_deploy_from_the_template_takes_changed_settings(
    aws: Aws, settings: Settings, service: str
) -> None:
    """Given more memory in the settings, when deploying from the template, then it is in."""
    bigger = settings.model_copy(update={"image_tag": NEW_TAG, "memory": 2048})

    deployed = deploy(aws, bigger, from_template=True)

    after = _writable(aws, deployed.revision)
    assert after["memory"] == "2048"
    assert after["containerDefinitions"][0]["image"] == deployed.image
    assert _expected_model(after) == model_sha256_of(settings.model_wheel)
    assert _writable(aws, service)["memory"] == "1024"


def test_an_image_not_in_ecr_is_not_deployed(aws: Aws, settings: Settings, service: str) -> None:
    """Given no image 9.9.9, when deploying it, then nothing is registered."""
    with pytest.raises(NotBootstrappedError, match=r":9\.9\.9 is not in ECR: push it first"):
        deploy(aws, settings.model_copy(update={"image_tag": "9.9.9"}))

    assert _revisions(aws, settings) == [service]


def test_deploy_before_bootstrap_says_so(aws: Aws, settings: Settings) -> None:
    """Given no cluster or service, when deploying, then the error says to bootstrap."""
    with pytest.raises(NotBootstrappedError, match=r"does not exist in cluster .*: run bootstrap"):
        deploy(aws, settings)


def test_deploy_needs_an_image_tag(aws: Aws, settings: Settings) -> None:
    """Given no image tag, when deploying, then SettingsError naming the variable."""
    with pytest.raises(SettingsError, match="DEPLOY_IMAGE_TAG"):
        deploy(aws, settings.model_copy(update={"image_tag": None}))


OLD, NEW, OTHER = "td:1", "td:2", "td:3"


def described(
    running: str, deployments: list[dict[str, Any]], count: tuple[int, int] = (2, 2)
) -> dict[str, Any]:
    """A service as describe_services shows it: revision, deployments, running/desired."""
    return {
        "taskDefinition": running,
        "deployments": deployments,
        "runningCount": count[0],
        "desiredCount": count[1],
        "events": [{"message": "(service api) has reached a steady state."}],
    }


PRIMARY = {"status": "PRIMARY", "taskDefinition": NEW, "rolloutState": "IN_PROGRESS"}
ACTIVE = {"status": "ACTIVE", "taskDefinition": OLD, "rolloutState": "COMPLETED"}
LAST = "; last event: (service api) has reached a steady state."


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        (
            described(NEW, [{**PRIMARY, "rolloutState": "COMPLETED"}]),
            Judgement("stable", "2/2 tasks running"),
        ),
        (
            described(NEW, [PRIMARY, ACTIVE]),
            Judgement("waiting", f"2/2 tasks running, 2 deployments{LAST}"),
        ),
        (
            described(NEW, [PRIMARY], count=(1, 2)),
            Judgement("waiting", f"1/2 tasks running, 1 deployments{LAST}"),
        ),
        (
            described(
                NEW,
                [
                    {
                        **PRIMARY,
                        "rolloutState": "FAILED",
                        "rolloutStateReason": "tasks failed to start",
                    },
                    ACTIVE,
                ],
            ),
            Judgement("failed", "tasks failed to start"),
        ),
        (
            described(
                OLD,
                [
                    {**ACTIVE, "status": "PRIMARY", "rolloutState": "IN_PROGRESS"},
                    {
                        "status": "ACTIVE",
                        "taskDefinition": NEW,
                        "rolloutState": "FAILED",
                        "rolloutStateReason": "circuit breaker: 3 tasks failed health checks",
                    },
                ],
            ),
            Judgement(
                "rolled_back",
                "ECS rolled the deployment back: circuit breaker: 3 tasks failed health checks"
                + LAST,
            ),
        ),
        (
            described(OTHER, [{**PRIMARY, "taskDefinition": OTHER}]),
            Judgement("superseded", f"another deployment moved the service to {OTHER}"),
        ),
    ],
    ids=[
        "stable",
        "old-tasks-draining",
        "tasks-starting",
        "circuit-breaker",
        "ecs-rolled-back",
        "superseded",
    ],
)
def test_judge(service: dict[str, Any], expected: Judgement) -> None:
    """Given a described service, then the deployment's state is judged as ECS's waiter would."""
    assert judge(service, NEW, OLD) == expected
