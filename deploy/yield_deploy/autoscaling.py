"""Scaling out: the service's desired count and its target-tracking autoscaling policy."""

from typing import Any

from yield_deploy.aws import Aws, active_service
from yield_deploy.database import require_shared_log
from yield_deploy.errors import NotBootstrappedError
from yield_deploy.settings import Settings

NAMESPACE = "ecs"
DIMENSION = "ecs:service:DesiredCount"
METRIC = "ECSServiceAverageCPUUtilization"
# Add tasks a minute after CPU stays above target; remove them only after five calm minutes,
# so that a burst of predictions does not make the service flap.
SCALE_OUT_COOLDOWN_S = 60
SCALE_IN_COOLDOWN_S = 300


def policy_configuration(settings: Settings) -> dict[str, Any]:
    """The target-tracking configuration the service's policy should have."""
    return {
        "TargetValue": settings.target_cpu,
        "PredefinedMetricSpecification": {"PredefinedMetricType": METRIC},
        "ScaleOutCooldown": SCALE_OUT_COOLDOWN_S,
        "ScaleInCooldown": SCALE_IN_COOLDOWN_S,
        "DisableScaleIn": False,
    }


def ensure_autoscaling(aws: Aws, settings: Settings) -> list[str]:
    """Register the scalable target and its CPU policy unless they are already as set."""
    changes = []
    resource = settings.autoscaling_resource
    targets = aws.autoscaling.describe_scalable_targets(
        ServiceNamespace=NAMESPACE, ResourceIds=[resource], ScalableDimension=DIMENSION
    )["ScalableTargets"]
    bounds = (settings.min_count, settings.max_count)
    if not targets or (targets[0]["MinCapacity"], targets[0]["MaxCapacity"]) != bounds:
        aws.autoscaling.register_scalable_target(
            ServiceNamespace=NAMESPACE,
            ResourceId=resource,
            ScalableDimension=DIMENSION,
            MinCapacity=settings.min_count,
            MaxCapacity=settings.max_count,
        )
        changes.append(f"autoscaling target {resource}: {bounds[0]}-{bounds[1]} tasks")

    wanted = policy_configuration(settings)
    policies = aws.autoscaling.describe_scaling_policies(
        ServiceNamespace=NAMESPACE,
        ResourceId=resource,
        ScalableDimension=DIMENSION,
        PolicyNames=[settings.scaling_policy],
    )["ScalingPolicies"]
    current = policies[0] if policies else {}
    configured = current.get("TargetTrackingScalingPolicyConfiguration", {})
    if current.get("PolicyType") != "TargetTrackingScaling" or any(
        configured.get(key) != value for key, value in wanted.items()
    ):
        aws.autoscaling.put_scaling_policy(
            PolicyName=settings.scaling_policy,
            ServiceNamespace=NAMESPACE,
            ResourceId=resource,
            ScalableDimension=DIMENSION,
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration=wanted,
        )
        changes.append(
            f"scaling policy {settings.scaling_policy}: average CPU {settings.target_cpu:g}%"
        )
    return changes


def scale(aws: Aws, settings: Settings) -> list[str]:
    """Set the service's desired count now, and its autoscaling bounds and policy."""
    require_shared_log(settings)
    service = active_service(aws, settings)
    if service is None:
        raise NotBootstrappedError(
            f"service {settings.service!r} does not exist in cluster {settings.cluster!r}:"
            " run bootstrap"
        )
    # The bounds first: Application Auto Scaling would pull a count outside them back in.
    changes = ensure_autoscaling(aws, settings)
    if service["desiredCount"] != settings.desired_count:
        aws.ecs.update_service(
            cluster=settings.cluster,
            service=settings.service,
            desiredCount=settings.desired_count,
        )
        changes.append(
            f"service {settings.service}: desired count"
            f" {service['desiredCount']} -> {settings.desired_count}"
        )
    return changes
