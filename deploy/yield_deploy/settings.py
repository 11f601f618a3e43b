"""The release tool's settings: one class, read from ``DEPLOY_*`` variables or CLI flags."""

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "DEPLOY_"

# Fargate's valid task sizes: CPU units -> memory MiB (first, last, step).
FARGATE_MEMORY = {
    256: (512, 2048, 512),
    512: (1024, 4096, 1024),
    1024: (2048, 8192, 1024),
    2048: (4096, 16384, 1024),
    4096: (8192, 30720, 1024),
    8192: (16384, 61440, 4096),
    16384: (32768, 122880, 8192),
}
# An API worker's worst case, what the API needs beside its workers (gunicorn's master, the
# platform's share), and the metrics agent's hard limit, in MiB: benchmarks/README.md, "A
# worker's memory under hostile bodies" (six 10,000-record batches at once, the bodies in
# flight at their limit).
WORKER_MEMORY_MIB = 640
TASK_OVERHEAD_MIB = 256
AGENT_MEMORY_MIB = 128
# The only values CloudWatch Logs accepts for a retention period.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096)

ECS_NAME = r"^[A-Za-z0-9_-]{1,255}$"
IMAGE_TAG = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
# A secret's complete ARN: ECS takes only that, and Secrets Manager's six random characters at
# its end keep a later secret of the same name from inheriting the execution role's access.
SECRET_ARN = (
    r"^arn:aws[a-z-]*:secretsmanager:(?P<region>[a-z0-9-]+):\d{12}"
    r":secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$"
)

SNS_TOPIC_ARN = r"^arn:aws[a-z-]*:sns:(?P<region>[a-z0-9-]+):\d{12}:[A-Za-z0-9_-]{1,256}$"

Ids = Annotated[tuple[str, ...], NoDecode]


class Settings(BaseSettings):
    """Where and how the API runs on AWS; every AWS name comes from here."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_ignore_empty=True, extra="ignore", frozen=True
    )

    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$", description="AWS region.")
    endpoint_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="AWS endpoint instead of AWS (a moto server); AWS_ENDPOINT_URL works too.",
    )
    cluster: str = Field(pattern=ECS_NAME, description="ECS cluster.")
    service: str = Field(pattern=ECS_NAME, description="ECS service.")
    repository: str = Field(
        pattern=r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$",
        min_length=2,
        max_length=256,
        description="ECR repository of the API image.",
    )
    task_family: str = Field(
        default_factory=lambda data: data["service"],
        pattern=ECS_NAME,
        description="Task definition family (default: the service's name).",
    )
    container: str = Field(
        default="mlapi", pattern=ECS_NAME, description="Name of the API's container in the task."
    )
    log_group: str = Field(
        default_factory=lambda data: f"/ecs/{data['service']}",
        pattern=r"^[.\-_/#A-Za-z0-9]{1,512}$",
        description="CloudWatch log group (default: /ecs/SERVICE).",
    )
    log_retention_days: int = Field(default=30, description="Days CloudWatch keeps the logs.")
    execution_role: str = Field(
        default_factory=lambda data: f"{data['service']}-task-execution",
        pattern=r"^[A-Za-z0-9_+=,.@-]{1,64}$",
        description="IAM role ECS pulls images and writes logs with (SERVICE-task-execution).",
    )
    cpu: int = Field(default=512, description="Task CPU units (1024 = 1 vCPU).")
    memory: int = Field(default=1024, description="Task memory, MiB.")
    desired_count: int = Field(default=2, ge=0, description="Tasks the service starts with.")
    min_count: int = Field(default=2, ge=0, description="Fewest tasks autoscaling keeps.")
    max_count: int = Field(default=6, ge=1, description="Most tasks autoscaling starts.")
    target_cpu: float = Field(
        default=60.0, gt=0, le=100, description="Average CPU % autoscaling holds the service at."
    )
    scaling_policy: str = Field(
        default_factory=lambda data: f"{data['service']}-cpu-target",
        pattern=r"^[A-Za-z0-9_:/.-]{1,256}$",
        description="Name of the target-tracking policy (default: SERVICE-cpu-target).",
    )
    subnets: Ids = Field(default=(), description="Subnets of the tasks, comma-separated.")
    security_groups: Ids = Field(
        default=(), description="Security groups of the tasks, comma-separated."
    )
    assign_public_ip: bool = Field(
        default=False, description="Give tasks a public IP (public subnets without a NAT)."
    )
    target_group_arn: str | None = Field(
        default=None,
        pattern=r"^arn:aws[a-z-]*:elasticloadbalancing:",
        description="Load balancer target group to register the tasks in.",
    )
    image_tag: str | None = Field(
        default=None, pattern=IMAGE_TAG, description="Image tag to run (the release's version)."
    )
    model_wheel: Path | None = Field(
        default=None,
        description=(
            "The published model wheel (yield_model-VERSION-py3-none-any.whl) the image"
            " installs: the task definition tells the API its model's sha256."
        ),
    )
    stability_timeout: float = Field(
        default=900, gt=0, description="Seconds a deployment gets to become stable."
    )
    poll_interval: float = Field(
        default=15, gt=0, description="Seconds between two looks at the deployment."
    )
    database_secret_arn: str | None = Field(
        default=None,
        pattern=SECRET_ARN,
        description=(
            "Complete ARN of the Secrets Manager secret holding the prediction log's URL"
            " (postgresql://...); needed when the service may run more than one task."
        ),
    )
    api_keys_secret_arn: str | None = Field(
        default=None,
        pattern=SECRET_ARN,
        description=(
            "Complete ARN of the Secrets Manager secret holding the API's key file (the hashes"
            " and scopes of its keys, python -m mlapi.keys); the API starts only with it."
        ),
    )
    metrics_key_secret_arn: str | None = Field(
        default=None,
        pattern=SECRET_ARN,
        description=(
            "Complete ARN of the Secrets Manager secret holding the key the Prometheus agent"
            " scrapes the API with (a key of the metrics scope, python -m mlapi.keys new)."
        ),
    )
    task_role: str = Field(
        default_factory=lambda data: f"{data['service']}-task",
        pattern=r"^[A-Za-z0-9_+=,.@-]{1,64}$",
        description="IAM role the task runs with: remote write to AMP (SERVICE-task).",
    )
    workspace_alias: str = Field(
        default_factory=lambda data: f"{data['service']}-metrics",
        pattern=r"^[A-Za-z0-9_.-]{1,100}$",
        description="Alias of the service's AMP workspace (default: SERVICE-metrics).",
    )
    rules_namespace: str = Field(
        default_factory=lambda data: data["service"],
        pattern=r"^[0-9A-Za-z][-.0-9A-Z_a-z]{0,63}$",
        description="The workspace's rule groups namespace (default: the service's name).",
    )
    alert_rules_file: Path = Field(
        default=Path("prometheus/alerts.yml"),
        description="Alert rules uploaded to the workspace (default: prometheus/alerts.yml).",
    )
    alert_routes_file: Path = Field(
        default=Path("alertmanager/alertmanager.yml"),
        description="Alert routing of the workspace (default: alertmanager/alertmanager.yml).",
    )
    alert_topic_arn: str | None = Field(
        default=None,
        pattern=SNS_TOPIC_ARN,
        description="SNS topic the workspace's alert manager sends alerts to.",
    )
    grafana_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="Grafana's address, put before each alert's dashboard path in messages.",
    )
    prometheus_image: str = Field(
        default="prom/prometheus:v2.42.0",
        pattern=r"^\S+:v\d+\.\d+\.\d+$",
        description="Image of the Prometheus agent beside the API (the compose stack's).",
    )
    registry: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9.-]+(:\d+)?$",
        description="Push to this registry host instead of ECR's own (a mirror, a test registry).",
    )

    @field_validator("subnets", "security_groups", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("subnets")
    @classmethod
    def _subnet_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _ids(value, "subnet-")

    @field_validator("security_groups")
    @classmethod
    def _group_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _ids(value, "sg-")

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"must be one of {', '.join(map(str, LOG_RETENTION_DAYS))}")
        return value

    @field_validator(
        "database_secret_arn", "api_keys_secret_arn", "metrics_key_secret_arn", "alert_topic_arn"
    )
    @classmethod
    def _same_region(cls, value: str | None, info: ValidationInfo) -> str | None:
        pattern = SNS_TOPIC_ARN if info.field_name == "alert_topic_arn" else SECRET_ARN
        match = re.match(pattern, value) if value is not None else None
        region = info.data.get("region")
        if match and region and match["region"] != region:
            what = "topic" if info.field_name == "alert_topic_arn" else "secret"
            raise ValueError(f"must be a {what} in DEPLOY_REGION ({region}), not {match['region']}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.cpu not in FARGATE_MEMORY:
            raise ValueError(f"cpu must be one of {', '.join(map(str, FARGATE_MEMORY))}")
        first, last, step = FARGATE_MEMORY[self.cpu]
        if not (first <= self.memory <= last and (self.memory - first) % step == 0):
            raise ValueError(
                f"Fargate runs {self.cpu} CPU units with {first}-{last} MiB in steps of {step},"
                f" not {self.memory}"
            )
        needed = self.workers * WORKER_MEMORY_MIB + TASK_OVERHEAD_MIB + AGENT_MEMORY_MIB
        if self.memory < needed:
            raise ValueError(
                f"a task of {self.cpu} CPU units runs {self.workers} API worker(s) and the "
                f"metrics agent, which need {needed} MiB at worst ({WORKER_MEMORY_MIB} a worker, "
                f"{TASK_OVERHEAD_MIB} beside them, {AGENT_MEMORY_MIB} the agent), not {self.memory}"
            )
        if not self.min_count <= self.desired_count <= self.max_count:
            raise ValueError(
                f"need min_count <= desired_count <= max_count,"
                f" got {self.min_count}, {self.desired_count}, {self.max_count}"
            )
        return self

    @property
    def workers(self) -> int:
        """API worker processes for the task: one per vCPU, at least one."""
        return max(1, self.cpu // 1024)

    @property
    def most_tasks(self) -> int:
        """The most tasks the service may run at once: the desired count never exceeds it."""
        return self.max_count

    @property
    def autoscaling_resource(self) -> str:
        """The service's id in Application Auto Scaling."""
        return f"service/{self.cluster}/{self.service}"


def _ids(value: tuple[str, ...], prefix: str) -> tuple[str, ...]:
    bad = [item for item in value if not item.startswith(prefix)]
    if bad:
        raise ValueError(f"expected ids starting with {prefix!r}, got {', '.join(bad)}")
    return value


@lru_cache(maxsize=8)
def get_settings(**overrides: Any) -> Settings:
    """The settings: environment variables, overridden by the CLI flags given."""
    return Settings(**overrides)


def flag(name: str) -> str:
    """The CLI flag of a setting."""
    return "--" + name.replace("_", "-")


def describe_settings_error(error: ValidationError) -> str:
    """One line per bad setting, named by its environment variable and flag."""
    lines = []
    for problem in error.errors():
        if problem["type"] == "default_factory_not_called":
            continue  # a derived name, reported through the setting it derives from
        loc = [str(part) for part in problem["loc"]]
        message = problem["msg"].removeprefix("Value error, ")
        if not loc:
            lines.append(message)
            continue
        name = loc[0]
        given = problem.get("input")
        shown = f" (got {given!r})" if isinstance(given, str | int | float) else ""
        lines.append(f"{ENV_PREFIX}{name.upper()} ({flag(name)}): {message}{shown}")
    return "\n".join(lines)
