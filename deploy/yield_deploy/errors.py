"""The one exception hierarchy of the release tool: each error's message is shown as it is."""


class DeployError(Exception):
    """Base class of every error the tool raises on purpose; the CLI exits with `exit_code`."""

    exit_code = 1


class SettingsError(DeployError):
    """A setting is missing or unsafe; nothing was changed."""

    exit_code = 2


class VersionMismatchError(DeployError):
    """A release tag does not name the project's version."""


class NotBootstrappedError(DeployError):
    """Something `bootstrap` creates is missing (repository, cluster, service, image)."""


class PushError(DeployError):
    """The registry refused the login or the image."""


class PublishError(DeployError):
    """The package index refused a distribution, or the tool refused to publish it."""


class ModelWheelError(DeployError):
    """A model wheel is unreadable, carries no model, or its records of the model disagree."""


class RolloutError(DeployError):
    """A new revision did not become stable; says why and what the service runs now."""

    def __init__(self, reason: str, running: str, rolled_back: bool) -> None:
        self.reason = reason
        self.running = running
        self.rolled_back = rolled_back
        action = "rolled the service back to" if rolled_back else "the service runs"
        super().__init__(f"deployment failed: {reason}; {action} {running}")
