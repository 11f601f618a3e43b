"""docker-compose.yml: what each service must be, and that it agrees with the files it mounts."""

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import stack_tools
import yaml

MONITORING = ("prometheus", "alertmanager", "grafana", "cadvisor")
#: The one-shot service that makes the API keys on first start.
KEY_MAKER = "mlapi-keys"
POSTGRES_PORT = 5432
INIT_DIR = "/docker-entrypoint-initdb.d"
PASSWORDS = ("POSTGRES_PASSWORD", "POSTGRES_GRAFANA_PASSWORD")
CREATED_ROLE = re.compile(r"^CREATE ROLE (\w+) LOGIN PASSWORD :'password';$", re.MULTILINE)
PINNED_TAG = re.compile(r":v?\d+\.\d+\.\d+$")
INTERPOLATED = re.compile(r"\$\{(\w+)")

# cAdvisor's documented `docker run` (README.md of google/cadvisor, "Running cAdvisor in a
# Docker Container"): these read-only mounts and the /dev/kmsg device.
CADVISOR_MOUNTS = {
    "/:/rootfs:ro",
    "/var/run:/var/run:ro",
    "/sys:/sys:ro",
    "/var/lib/docker/:/var/lib/docker:ro",
    "/dev/disk/:/dev/disk:ro",
}


def container_port(service: dict[str, Any]) -> int:
    """The container side of the service's one published port."""
    (mapping,) = service["ports"]
    return int(str(mapping).rsplit(":", 1)[1])


def mount_target(service: dict[str, Any], source: str) -> str:
    """Where the service mounts a path of this repository."""
    for volume in service["volumes"]:
        parts = volume.split(":")
        if parts[0] == source:
            return str(parts[1])
    raise AssertionError(f"{source} is not mounted")


def dockerfile_instruction(root: Path, name: str) -> list[str]:
    """The arguments of each ``name`` instruction of mlapi/Dockerfile, continued lines joined."""
    text = (root / "mlapi" / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    return [line.split(None, 1)[1] for line in text.splitlines() if line.startswith(f"{name} ")]


def test_file_has_no_version_key(compose: dict[str, Any]) -> None:
    # The key is obsolete in the compose spec and makes `docker compose` warn.
    assert "version" not in compose


def test_stack_has_the_six_services_and_the_key_maker(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"mlapi", "postgres", *MONITORING, KEY_MAKER}


def test_the_api_reads_the_hashes_of_the_keys_made_on_its_volume_before_it_starts(
    compose: dict[str, Any], root: Path
) -> None:
    services = compose["services"]
    maker, mlapi = services[KEY_MAKER], services["mlapi"]
    # The same image, built once from the same definition
    assert maker["image"] == mlapi["image"]
    assert maker["build"] == mlapi["build"]
    # Given what `python -m mlapi.keys init` is told to make
    command = maker["command"]
    assert command[:4] == ["python", "-m", "mlapi.keys", "init"]
    keys_file = PurePosixPath(command[4])
    (client_key,) = [a.split("=", 1)[1] for a in command if a.startswith("--client-key=")]
    # Then the key file and the client key are on the API's data volume, which both mount
    data = mount_target(mlapi, "mlapi-data")
    assert mount_target(maker, "mlapi-data") == data
    assert keys_file.parent == PurePosixPath(client_key).parent == PurePosixPath(data)
    assert mlapi["environment"]["MLAPI_API_KEYS_FILE"] == str(keys_file)
    assert "MLAPI_AUTH" not in mlapi["environment"]
    assert mlapi["depends_on"][KEY_MAKER] == {"condition": "service_completed_successfully"}
    # and the maker reaches no network, runs as the image's user, read-only, without privileges
    assert maker["network_mode"] == "none"
    assert "user" not in maker
    assert maker["read_only"] is True
    assert maker["cap_drop"] == ["ALL"]
    # The metrics key's volume takes the owner of the image's directory, which others may
    # traverse (Prometheus runs as another user)
    (metrics_key,) = [a.split("=", 1)[1] for a in command if a.startswith("--metrics-key=")]
    key_dir = PurePosixPath(metrics_key).parent
    volume = [v.split(":")[0] for v in maker["volumes"] if v.split(":")[1] == str(key_dir)]
    assert volume
    assert volume[0] in compose["volumes"]
    (user,) = dockerfile_instruction(root, "USER")
    uid, gid = user.split(":")
    runs = dockerfile_instruction(root, "RUN")
    assert any(f"install -d -o {uid} -g {gid} -m 0755 {key_dir}" in run for run in runs)


@pytest.mark.parametrize("name", MONITORING)
def test_monitoring_images_are_pinned(compose: dict[str, Any], name: str) -> None:
    assert PINNED_TAG.search(compose["services"][name]["image"])


def test_promtool_is_the_prometheus_version_the_stack_runs(
    compose: dict[str, Any], promtool: str
) -> None:
    # The rules and config are checked by promtool: it must parse them as the server will.
    image_version = compose["services"]["prometheus"]["image"].rsplit(":v", 1)[1]
    banner = subprocess.run([promtool, "--version"], capture_output=True, text=True, check=True)
    found = re.search(r"version (\d+\.\d+)\.", banner.stdout + banner.stderr)
    assert found, banner.stdout
    assert found[1] == image_version.rsplit(".", 1)[0], (
        f"promtool {found[1]} checks files for Prometheus {image_version}: set PROMTOOL to a "
        "promtool of the same minor version"
    )


def test_cadvisor_is_the_maintained_image(compose: dict[str, Any]) -> None:
    image = compose["services"]["cadvisor"]["image"]
    assert image.startswith(("gcr.io/cadvisor/cadvisor:", "ghcr.io/google/cadvisor:"))


@pytest.mark.parametrize("name", MONITORING)
def test_monitoring_ports_listen_on_loopback_only(compose: dict[str, Any], name: str) -> None:
    ports = compose["services"][name]["ports"]
    assert ports
    assert all(str(port).startswith("127.0.0.1:") for port in ports)


def test_api_is_built_from_its_dockerfile_with_the_repo_as_context(
    compose: dict[str, Any], root: Path
) -> None:
    build = compose["services"]["mlapi"]["build"]
    assert (build["context"], build["dockerfile"]) == (".", "mlapi/Dockerfile")
    assert (root / build["dockerfile"]).is_file()


def test_api_port_is_the_port_the_image_exposes(compose: dict[str, Any], root: Path) -> None:
    assert dockerfile_instruction(root, "EXPOSE") == [
        str(container_port(compose["services"]["mlapi"]))
    ]


def test_api_runs_as_non_root_on_a_read_only_filesystem(
    compose: dict[str, Any], root: Path
) -> None:
    (user,) = dockerfile_instruction(root, "USER")
    assert user.split(":")[0] not in {"0", "root"}
    mlapi = compose["services"]["mlapi"]
    assert mlapi["read_only"] is True
    # The workers' metric files go to /tmp/mlapi-metrics-PID, the service's default.
    assert "/tmp" in mlapi["tmpfs"]


def test_image_default_log_is_on_a_named_volume_its_user_owns(
    compose: dict[str, Any], root: Path
) -> None:
    # The image's own default (SQLite), kept on a volume: the log of a release before
    # PostgreSQL stays there, to be copied over.
    env = " ".join(dockerfile_instruction(root, "ENV")).split()
    (setting,) = [e for e in env if e.startswith("MLAPI_PREDICTION_LOG_URL=")]
    log_path = PurePosixPath(setting.split("=", 1)[1].removeprefix("sqlite://"))
    assert mount_target(compose["services"]["mlapi"], "mlapi-data") == str(log_path.parent)
    assert "mlapi-data" in compose["volumes"]
    # A new named volume takes the owner of the image's directory: the service's user.
    (user,) = dockerfile_instruction(root, "USER")
    uid, gid = user.split(":")
    runs = dockerfile_instruction(root, "RUN")
    assert any(f"install -d -o {uid} -g {gid} -m 0750 {log_path.parent}" in run for run in runs)


def test_api_logs_to_the_postgres_service_once_it_is_healthy(compose: dict[str, Any]) -> None:
    mlapi, postgres = compose["services"]["mlapi"], compose["services"]["postgres"]
    url = urlsplit(mlapi["environment"]["MLAPI_PREDICTION_LOG_URL"])
    assert (url.scheme, url.hostname, url.port) == ("postgresql", "postgres", POSTGRES_PORT)
    assert url.username == postgres["environment"]["POSTGRES_USER"]
    assert url.path == "/" + postgres["environment"]["POSTGRES_DB"]
    # The password reaches libpq as PGPASSWORD: the URL holds none, and the two services
    # read the same variable.
    assert url.password is None
    assert mlapi["environment"]["PGPASSWORD"] == postgres["environment"]["POSTGRES_PASSWORD"]
    assert mlapi["depends_on"]["postgres"] == {"condition": "service_healthy"}


def test_postgres_is_the_major_version_the_api_tests_run_against(
    compose: dict[str, Any], root: Path
) -> None:
    # mlapi's PostgreSQL tests start Debian's server, which .ci/run installs, or else this image
    # (tests/support/stack_tools.py): the same major version either way.
    image = compose["services"]["postgres"]["image"]
    major = image.split(":")[1].split("-")[0]
    assert stack_tools.PG_CTL.default == f"/usr/lib/postgresql/{major}/bin/pg_ctl"
    assert stack_tools.PG_CTL.package == f"postgresql-{major}"
    assert stack_tools.PG_CTL.default in (root / ".ci" / "run").read_text(encoding="utf-8")


def test_postgres_is_reached_on_the_compose_network_only(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    assert "ports" not in postgres
    assert "network_mode" not in postgres


def test_postgres_keeps_its_data_on_a_named_volume(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    assert mount_target(postgres, "postgres-data") == "/var/lib/postgresql/data"
    assert "postgres-data" in compose["volumes"]


@pytest.mark.parametrize("name", PASSWORDS)
def test_database_passwords_have_no_default(compose: dict[str, Any], name: str) -> None:
    value = compose["services"]["postgres"]["environment"][name]
    # ${VAR:?message}: compose stops with the message when VAR is unset or empty.
    assert value.startswith(f"${{{name}:?{name} ")
    assert value.endswith("}")
    assert value.count("$") == 1


def test_postgres_is_healthy_once_it_answers_over_tcp(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    test = postgres["healthcheck"]["test"]
    env = postgres["environment"]
    assert test[:2] == ["CMD", "pg_isready"]
    # The image's first-start server listens on a Unix socket only: TCP means initialised.
    assert "--host=127.0.0.1" in test
    assert f"--username={env['POSTGRES_USER']}" in test
    assert f"--dbname={env['POSTGRES_DB']}" in test


def test_grafana_reads_the_log_as_the_role_the_init_script_creates(
    compose: dict[str, Any], postgres_datasource: dict[str, Any], root: Path
) -> None:
    services = compose["services"]
    postgres = services["postgres"]
    init_dir = mount_target(postgres, "./postgres/initdb")
    assert init_dir == INIT_DIR
    scripts = sorted((root / "postgres" / "initdb").iterdir())
    assert [path.name for path in scripts] == ["grafana-role.sh"]
    # Executable, so that the image runs it rather than sourcing it into its own shell.
    assert scripts[0].stat().st_mode & stat.S_IXUSR
    roles = CREATED_ROLE.findall(scripts[0].read_text(encoding="utf-8"))
    assert roles == [postgres_datasource["user"]]
    assert postgres_datasource["user"] != postgres["environment"]["POSTGRES_USER"]
    assert postgres_datasource["url"] == f"postgres:{POSTGRES_PORT}"
    assert postgres_datasource["jsonData"]["database"] == postgres["environment"]["POSTGRES_DB"]
    # The data source's password is an environment variable of Grafana's container, given
    # the same compose variable as the one the init script sets the role's password from.
    password = postgres_datasource["secureJsonData"]["password"]
    assert password == "$POSTGRES_GRAFANA_PASSWORD"
    given = services["grafana"]["environment"]["POSTGRES_GRAFANA_PASSWORD"]
    assert given == postgres["environment"]["POSTGRES_GRAFANA_PASSWORD"]
    assert services["grafana"]["depends_on"]["postgres"] == {"condition": "service_healthy"}


def test_api_healthcheck_is_the_images(compose: dict[str, Any], root: Path) -> None:
    # Compose only times the check; the command lives once, in the Dockerfile.
    assert "test" not in compose["services"]["mlapi"]["healthcheck"]
    (healthcheck,) = dockerfile_instruction(root, "HEALTHCHECK")
    assert "/api/v1/health" in healthcheck


def test_every_service_restarts(compose: dict[str, Any]) -> None:
    services = {name: s for name, s in compose["services"].items() if name != KEY_MAKER}
    assert {s["restart"] for s in services.values()} == {"unless-stopped"}
    # but the key maker, which runs once per start of the stack
    assert compose["services"][KEY_MAKER]["restart"] == "no"


#: A worker's worst case and gunicorn master's share, in MB: benchmarks/README.md, "A worker's
#: memory under hostile bodies" (six 10,000-record batches at once, bodies in flight at their
#: limit, on a worker of ~190 MB).
WORKER_MB, MASTER_MB = 640, 256
DEFAULT = re.compile(r"^\$\{\w+:-(.+)\}$")
SIZE = re.compile(r"^(\d+)([mg])$")


def megabytes(value: str) -> int:
    """A compose memory size such as 512m or 1g, or a variable's default of one, in MB."""
    default = DEFAULT.match(value)
    match = SIZE.match(default.group(1) if default else value)
    assert match, f"not a size: {value!r}"
    number, unit = match.groups()
    return int(number) * (1024 if unit == "g" else 1)


def test_every_service_has_a_memory_limit(compose: dict[str, Any]) -> None:
    limits = {name: megabytes(s["mem_limit"]) for name, s in compose["services"].items()}
    assert all(limit >= 128 for limit in limits.values()), limits


def test_the_api_memory_limit_fits_its_workers_worst_case(compose: dict[str, Any]) -> None:
    api = compose["services"]["mlapi"]
    workers = int(DEFAULT.match(api["environment"]["MLAPI_WORKERS"]).group(1))  # type: ignore[union-attr]
    assert megabytes(api["mem_limit"]) >= WORKER_MB * workers + MASTER_MB


def test_health_conditions_wait_for_services_that_have_a_healthcheck(
    compose: dict[str, Any], root: Path
) -> None:
    services = compose["services"]
    conditions = [
        (name, dependency, spec["condition"])
        for name, service in services.items()
        for dependency, spec in service.get("depends_on", {}).items()
    ]
    assert ("grafana", "prometheus", "service_healthy") in conditions
    assert ("mlapi", "postgres", "service_healthy") in conditions
    for _, dependency, condition in conditions:
        if condition == "service_healthy":
            has_own = "test" in services[dependency].get("healthcheck", {})
            from_image = dependency == "mlapi" and dockerfile_instruction(root, "HEALTHCHECK")
            assert has_own or from_image, f"{dependency} has no healthcheck to wait for"


def test_prometheus_mounts_its_config_and_the_rule_files_it_names(
    compose: dict[str, Any], prometheus_config: dict[str, Any], root: Path
) -> None:
    service = compose["services"]["prometheus"]
    config_dir = mount_target(service, "./prometheus")
    assert f"--config.file={config_dir}/prometheus.yml" in service["command"]
    for rule_file in prometheus_config["rule_files"]:
        assert (root / "prometheus" / rule_file).is_file()


def test_prometheus_keeps_data_in_a_named_volume_for_a_set_time(compose: dict[str, Any]) -> None:
    service = compose["services"]["prometheus"]
    assert mount_target(service, "prometheus-data") == "/prometheus"
    assert "prometheus-data" in compose["volumes"]
    assert any(flag.startswith("--storage.tsdb.retention.time=") for flag in service["command"])


def test_scrape_targets_are_compose_services_on_their_container_ports(
    compose: dict[str, Any], prometheus_config: dict[str, Any]
) -> None:
    services = compose["services"]
    targets = {
        job["job_name"]: target
        for job in prometheus_config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    assert targets.pop("prometheus") == f"localhost:{container_port(services['prometheus'])}"
    assert targets == {
        name: f"{name}:{container_port(services[name])}" for name in ("mlapi", "cadvisor")
    }


def test_grafana_password_has_no_default_and_signup_and_anonymous_access_are_off(
    compose: dict[str, Any],
) -> None:
    service = compose["services"]["grafana"]
    env = service["environment"]
    # Empty unless the user sets it; the entrypoint then generates one (never "admin").
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == "${GRAFANA_ADMIN_PASSWORD:-}"
    assert service["entrypoint"] == ["/bin/sh", "/etc/grafana/entrypoint.sh"]
    assert mount_target(service, "./grafana/entrypoint.sh") == "/etc/grafana/entrypoint.sh"
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


def test_grafana_mounts_what_its_provisioning_points_at(
    compose: dict[str, Any], dashboard_provider: dict[str, Any], root: Path
) -> None:
    service = compose["services"]["grafana"]
    assert mount_target(service, "./grafana/provisioning") == "/etc/grafana/provisioning"
    dashboards_dir = mount_target(service, "./grafana/dashboards")
    assert dashboard_provider["options"]["path"] == dashboards_dir
    home = Path(service["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert str(home.parent) == dashboards_dir
    assert (root / "grafana" / "dashboards" / home.name).is_file()
    assert mount_target(service, "grafana-data") == "/var/lib/grafana"
    assert "grafana-data" in compose["volumes"]
    # Production's optional data source, where the entrypoint copies it from, with its settings
    assert mount_target(service, "./grafana/optional") == "/etc/grafana/optional"
    entrypoint = (root / "grafana" / "entrypoint.sh").read_text(encoding="utf-8")
    assert "${GRAFANA_OPTIONAL:-/etc/grafana/optional}/amp.yml" in entrypoint
    amp = (root / "grafana" / "optional" / "amp.yml").read_text(encoding="utf-8")
    for name in set(re.findall(r"\$\{(GRAFANA_AMP_\w+)\}", amp)) | {"GRAFANA_AMP_WORKSPACE_ID"}:
        assert service["environment"][name] == f"${{{name}:-}}", name


def test_grafana_datasource_points_at_the_prometheus_service(
    compose: dict[str, Any], datasource: dict[str, Any]
) -> None:
    url = urlsplit(datasource["url"])
    assert url.hostname == "prometheus"
    assert url.port == container_port(compose["services"]["prometheus"])


def test_cadvisor_has_its_documented_mounts_device_and_limits(compose: dict[str, Any]) -> None:
    service = compose["services"]["cadvisor"]
    assert set(service["volumes"]) == CADVISOR_MOUNTS
    assert service["devices"] == ["/dev/kmsg"]
    assert "--docker_only=true" in service["command"]
    intervals = [f for f in service["command"] if f.startswith("--housekeeping_interval=")]
    # The default is 1s, which costs a good share of a core on a busy host.
    assert intervals == ["--housekeeping_interval=15s"]


def test_env_example_documents_every_interpolated_variable(root: Path) -> None:
    used = set(INTERPOLATED.findall((root / "docker-compose.yml").read_text(encoding="utf-8")))
    lines = (root / ".env.example").read_text(encoding="utf-8").splitlines()
    documented = {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}
    assert documented == used


def compose_clis() -> list[list[str]]:
    """The compose commands installed here: `docker compose` (v2) and `docker-compose`."""
    found = []
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            found.append([docker, "compose"])
    legacy = shutil.which("docker-compose")
    if legacy:
        found.append([legacy])
    return found


CLIS: list[list[str] | None] = [*compose_clis()] or [None]


@pytest.fixture(params=CLIS, ids=lambda cli: " ".join(cli or ["none"]))
def compose_cli(request: pytest.FixtureRequest) -> list[str]:
    """Each installed compose command in turn."""
    if request.param is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    cli: list[str] = request.param
    return cli


def run_config(
    cli: list[str], root: Path, env: dict[str, str], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """``compose config -q`` on docker-compose.yml, with an empty env file.

    The empty env file keeps a developer's .env from deciding the outcome.
    """
    env_file = tmp_path / "empty.env"
    env_file.touch()
    return subprocess.run(
        [*cli, "--env-file", str(env_file), "-f", str(root / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        check=False,
    )


def environment_without(*names: str) -> dict[str, str]:
    """This process' environment with the database passwords set, less ``names``."""
    env = {**os.environ, **{name: f"test-{name.lower()}" for name in PASSWORDS}}
    return {k: v for k, v in env.items() if k not in names}


@pytest.mark.parametrize("password", ["a-test-password", None])
def test_compose_loads_the_file_with_or_without_a_grafana_password(
    compose_cli: list[str], root: Path, tmp_path: Path, password: str | None
) -> None:
    env = environment_without("GRAFANA_ADMIN_PASSWORD")
    if password:
        env["GRAFANA_ADMIN_PASSWORD"] = password
    result = run_config(compose_cli, root, env, tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", PASSWORDS)
@pytest.mark.parametrize("empty", [False, True], ids=["unset", "empty"])
def test_compose_refuses_to_start_without_a_database_password(
    compose_cli: list[str], root: Path, tmp_path: Path, name: str, empty: bool
) -> None:
    env = environment_without(name)
    if empty:
        env[name] = ""
    result = run_config(compose_cli, root, env, tmp_path)
    assert result.returncode != 0
    assert f"{name} is not set, put one in .env (see .env.example)" in result.stderr


def test_compose_passes_a_password_on_as_given(
    compose_cli: list[str], root: Path, tmp_path: Path
) -> None:
    # Characters a URL would need escaped reach both services unchanged.
    password = "p@ss/w:rd?#%+= x"
    env = {**environment_without(), "POSTGRES_PASSWORD": password}
    env_file = tmp_path / "empty.env"
    env_file.touch()
    files = ["--env-file", str(env_file), "-f", str(root / "docker-compose.yml")]
    resolved = subprocess.run(
        [*compose_cli, *files, "config"],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        check=True,
    )
    services = yaml.safe_load(resolved.stdout)["services"]
    assert services["mlapi"]["environment"]["PGPASSWORD"] == password
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == password


def _run_grafana_entrypoint(
    root: Path, data: Path, password: str | None
) -> subprocess.CompletedProcess[str]:
    # The wrapper hands over to GRAFANA_START; here a stand-in that prints what Grafana gets.
    start = data.parent / "run.sh"
    start.write_text('#!/bin/sh\nprintf "%s|%s" "$GF_SECURITY_ADMIN_PASSWORD" "$*"\n')
    start.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "GF_PATHS_DATA": str(data), "GRAFANA_START": str(start)}
    if password is not None:
        env["GF_SECURITY_ADMIN_PASSWORD"] = password
    return subprocess.run(
        ["sh", str(root / "grafana" / "entrypoint.sh"), "--flag"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )


def test_grafana_entrypoint_generates_and_keeps_a_password_when_none_is_given(
    root: Path, tmp_path: Path
) -> None:
    data = tmp_path / "grafana-data"
    data.mkdir()
    first = _run_grafana_entrypoint(root, data, None)
    password, args = first.stdout.split("|")
    stored = data / "admin-password"
    assert password == stored.read_text()
    assert len(password) >= 24
    assert password != "admin"
    assert args == "--flag"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert "generated one in" in first.stderr
    # A restart reuses it: Grafana stored it when the volume was created.
    again = _run_grafana_entrypoint(root, data, None)
    assert again.stdout.split("|")[0] == password
    assert again.stderr == ""


def test_grafana_entrypoint_uses_the_given_password(root: Path, tmp_path: Path) -> None:
    data = tmp_path / "grafana-data"
    data.mkdir()
    given = _run_grafana_entrypoint(root, data, "chosen-by-the-user")
    assert given.stdout == "chosen-by-the-user|--flag"
    assert not (data / "admin-password").exists()
