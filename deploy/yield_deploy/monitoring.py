"""Production metrics and alerts: the service's Amazon Managed Service for Prometheus (AMP)
workspace, its alert rules (prometheus/alerts.yml, the file the compose stack runs), its alert
manager sending to SNS, and the task role its Prometheus agents write with."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from botocore.exceptions import ClientError

from yield_deploy.aws import Aws, ensure_ecs_role, ensure_role_policy, error_code
from yield_deploy.errors import NotBootstrappedError, SettingsError
from yield_deploy.settings import Settings

#: The task role's inline policy: remote write into the service's workspace, nothing else.
WRITE_POLICY = "remote-write-metrics"
#: Workspace states in which it is, or becomes, usable.
LIVE = {"ACTIVE", "CREATING", "UPDATING"}


@dataclass(frozen=True)
class Workspace:
    """An AMP workspace as described."""

    workspace_id: str
    arn: str
    endpoint: str

    @property
    def remote_write_url(self) -> str:
        """Where Prometheus agents send their samples."""
        return f"{self.endpoint.rstrip('/')}/api/v1/remote_write"


def find_workspace(aws: Aws, settings: Settings) -> Workspace | None:
    """The workspace whose alias is the settings' one, or None."""
    # list_workspaces' alias filter matches a prefix: the exact alias is picked here.
    pages = aws.amp.get_paginator("list_workspaces").paginate(alias=settings.workspace_alias)
    found = [
        w["workspaceId"]
        for page in pages
        for w in page["workspaces"]
        if w.get("alias") == settings.workspace_alias and w["status"]["statusCode"] in LIVE
    ]
    if len(found) > 1:
        raise SettingsError(
            f"{len(found)} AMP workspaces have the alias {settings.workspace_alias!r}"
            f" ({', '.join(found)}): delete the extra ones or set DEPLOY_WORKSPACE_ALIAS"
        )
    if not found:
        return None
    return _described(aws, found[0])


def _described(aws: Aws, workspace_id: str) -> Workspace:
    workspace = aws.amp.describe_workspace(workspaceId=workspace_id)["workspace"]
    if workspace["status"]["statusCode"] != "ACTIVE":
        aws.amp.get_waiter("workspace_active").wait(workspaceId=workspace_id)
        workspace = aws.amp.describe_workspace(workspaceId=workspace_id)["workspace"]
    return Workspace(
        workspace_id=workspace_id,
        arn=str(workspace["arn"]),
        endpoint=str(workspace["prometheusEndpoint"]),
    )


def ensure_workspace(aws: Aws, settings: Settings, changes: list[str]) -> Workspace:
    """The service's workspace, created when there is none."""
    found = find_workspace(aws, settings)
    if found is not None:
        return found
    created = aws.amp.create_workspace(
        alias=settings.workspace_alias, tags={"service": settings.service}
    )
    changes.append(f"AMP workspace {settings.workspace_alias} ({created['workspaceId']})")
    return _described(aws, str(created["workspaceId"]))


def require_workspace(aws: Aws, settings: Settings) -> Workspace:
    """The service's workspace, which bootstrap creates."""
    found = find_workspace(aws, settings)
    if found is None:
        raise NotBootstrappedError(
            f"AMP workspace {settings.workspace_alias!r} does not exist: run bootstrap"
        )
    return found


def read_file(path: Path, variable: str) -> bytes:
    """A file the settings name, or a SettingsError naming its variable."""
    try:
        return path.read_bytes()
    except OSError as error:
        raise SettingsError(
            f"{variable} names a file that cannot be read: {path} ({error.strerror});"
            " run from the repository's root or set it"
        ) from None


def ensure_rules(aws: Aws, settings: Settings, workspace: Workspace, changes: list[str]) -> None:
    """The workspace's rule groups namespace holds exactly prometheus/alerts.yml."""
    data = read_file(settings.alert_rules_file, "DEPLOY_ALERT_RULES_FILE")
    name = settings.rules_namespace
    try:
        found = aws.amp.describe_rule_groups_namespace(
            workspaceId=workspace.workspace_id, name=name
        )["ruleGroupsNamespace"]
    except ClientError as error:
        if error_code(error) != "ResourceNotFoundException":
            raise
        aws.amp.create_rule_groups_namespace(
            workspaceId=workspace.workspace_id, name=name, data=data
        )
        changes.append(f"AMP rules {name}: {settings.alert_rules_file}")
        return
    if bytes(found["data"]) != data:
        aws.amp.put_rule_groups_namespace(workspaceId=workspace.workspace_id, name=name, data=data)
        changes.append(f"AMP rules {name}: replaced by {settings.alert_rules_file}")


def alert_manager_definition(settings: Settings) -> bytes:
    """The workspace's alert manager: the stack's routing (alertmanager/alertmanager.yml), each
    receiver sending to the SNS topic; AMP's definition format (alertmanager_config)."""
    text = read_file(settings.alert_routes_file, "DEPLOY_ALERT_ROUTES_FILE")
    routing: dict[str, Any] = yaml.safe_load(text)
    grafana = (settings.grafana_url or "").rstrip("/")
    for receiver in routing["receivers"]:
        receiver["sns_configs"] = [
            {
                "topic_arn": settings.alert_topic_arn,
                "sigv4": {"region": settings.region},
                "send_resolved": True,
                "subject": (
                    "[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}"
                    " ({{ .CommonLabels.severity }})"
                ),
                "message": (
                    "{{ range .Alerts }}{{ .Annotations.summary }} ({{ .Status }})\n"
                    "{{ .Annotations.description }}\n"
                    f"{{{{ if .Annotations.dashboard }}}}{grafana}{{{{ .Annotations.dashboard }}}}"
                    "{{ end }}\n\n{{ end }}"
                ),
                "attributes": {"severity": "{{ .CommonLabels.severity }}"},
            }
        ]
    config = yaml.safe_dump(routing, sort_keys=False)
    definition: str = yaml.safe_dump({"alertmanager_config": config}, sort_keys=False)
    return definition.encode()


def ensure_alert_manager(
    aws: Aws, settings: Settings, workspace: Workspace, changes: list[str]
) -> None:
    """The workspace's alert manager definition, sending to DEPLOY_ALERT_TOPIC_ARN."""
    data = alert_manager_definition(settings)
    try:
        found = aws.amp.describe_alert_manager_definition(workspaceId=workspace.workspace_id)
    except ClientError as error:
        if error_code(error) != "ResourceNotFoundException":
            raise
        aws.amp.create_alert_manager_definition(workspaceId=workspace.workspace_id, data=data)
        changes.append(f"AMP alert manager: to SNS topic {settings.alert_topic_arn}")
        return
    if bytes(found["alertManagerDefinition"]["data"]) != data:
        aws.amp.put_alert_manager_definition(workspaceId=workspace.workspace_id, data=data)
        changes.append(f"AMP alert manager: replaced, to SNS topic {settings.alert_topic_arn}")


def write_policy(workspace: Workspace) -> dict[str, Any]:
    """The task role's policy: remote write into this workspace only."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "RemoteWriteMetrics",
                "Effect": "Allow",
                "Action": "aps:RemoteWrite",
                "Resource": workspace.arn,
            }
        ],
    }


def ensure_task_role(aws: Aws, settings: Settings, workspace: Workspace, changes: list[str]) -> str:
    """The role the task's containers run with: the agent writes metrics with it; its ARN."""
    name = settings.task_role
    description = f"The tasks of {settings.service}: write metrics to AMP"
    role = ensure_ecs_role(aws, name, description, changes)
    ensure_role_policy(
        aws,
        name,
        WRITE_POLICY,
        write_policy(workspace),
        changes,
        change=f"IAM role {name}: may remote-write to {workspace.arn}",
    )
    return str(role["Arn"])


def require_task_role(aws: Aws, settings: Settings) -> str:
    """The task role's ARN, which bootstrap creates."""
    try:
        return str(aws.iam.get_role(RoleName=settings.task_role)["Role"]["Arn"])
    except ClientError as error:
        if error_code(error) != "NoSuchEntity":
            raise
        raise NotBootstrappedError(
            f"IAM role {settings.task_role!r} does not exist: run bootstrap"
        ) from None


#: The topic policy's statement that lets the workspace's alert manager publish.
PUBLISH_SID = "AmpAlertManagerPublish"


def publish_statement(settings: Settings, workspace: Workspace) -> dict[str, Any]:
    """Let AMP publish to the alert topic for this workspace only."""
    return {
        "Sid": PUBLISH_SID,
        "Effect": "Allow",
        "Principal": {"Service": "aps.amazonaws.com"},
        "Action": ["sns:Publish", "sns:GetTopicAttributes"],
        "Resource": settings.alert_topic_arn,
        # Only on behalf of this workspace: no other AMP workspace can use the grant.
        "Condition": {"ArnEquals": {"aws:SourceArn": workspace.arn}},
    }


def ensure_topic_policy(
    aws: Aws, settings: Settings, workspace: Workspace, changes: list[str]
) -> None:
    """The alert topic's policy has the publish statement, its other statements kept."""
    attributes = aws.sns.get_topic_attributes(TopicArn=settings.alert_topic_arn)["Attributes"]
    policy = json.loads(attributes.get("Policy") or '{"Version": "2012-10-17", "Statement": []}')
    statements = policy.get("Statement", [])
    statements = [statements] if isinstance(statements, dict) else statements
    wanted = publish_statement(settings, workspace)
    if wanted in statements:
        return
    policy["Statement"] = [s for s in statements if s.get("Sid") != PUBLISH_SID] + [wanted]
    aws.sns.set_topic_attributes(
        TopicArn=settings.alert_topic_arn, AttributeName="Policy", AttributeValue=json.dumps(policy)
    )
    changes.append(f"SNS topic {settings.alert_topic_arn}: AMP workspace may publish")


def check_topic(aws: Aws, settings: Settings) -> None:
    """Refuse an alert topic that does not exist."""
    try:
        aws.sns.get_topic_attributes(TopicArn=settings.alert_topic_arn)
    except ClientError as error:
        if error_code(error) != "NotFound":
            raise
        raise SettingsError(
            f"DEPLOY_ALERT_TOPIC_ARN names no SNS topic: {settings.alert_topic_arn}; create it"
            " (README: Watching production)"
        ) from None
