"""docker-compose.yml (scale-out on Redis) is valid and wired the way the docs say, and only runs commands our CLI
really has."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from image2model.cli.main import build_parser
from image2model.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def services() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def ours(services: dict[str, dict]) -> dict[str, dict]:
    return {name: s for name, s in services.items() if "build" in s}


def test_compose_has_every_role_of_a_scale_out_deployment(services):
    assert {"redis", "api", "worker", "worker-periodic", "worker-io", "worker-webhooks", "ui", "bot"} <= set(
        services
    )
    assert services["api"]["deploy"]["replicas"] >= 2
    assert services["bot"]["profiles"] == ["bot"]
    assert "--appendonly" in services["redis"]["command"]


def test_every_service_runs_a_real_cli_command(services):
    parser = build_parser()
    for name, service in ours(services).items():
        command = service["command"]
        assert command[0] == "image2model", name
        parser.parse_args(command[1:])  # exits (SystemExit) on an unknown command or flag


def test_exactly_one_worker_runs_the_periodic_tasks(services):
    parser = build_parser()
    periodic = []
    for name, service in ours(services).items():
        args = parser.parse_args(service["command"][1:])
        if args.command == "worker" and args.queue == "cpu":
            assert args.periodic is not None, f"{name} must say --periodic or --no-periodic"
            if args.periodic:
                periodic.append((name, service.get("deploy", {}).get("replicas", 1)))
    assert periodic == [("worker-periodic", 1)]


def test_cpu_workers_have_a_lower_cpu_weight_than_the_api_and_the_io_worker(services):
    parser = build_parser()
    default = 1024  # Docker's cpu_shares when unset
    weights: dict[str, list[int]] = {"cpu": [], "other": []}
    for service in ours(services).values():
        args = parser.parse_args(service["command"][1:])
        cpu_worker = args.command == "worker" and args.queue == "cpu"
        weights["cpu" if cpu_worker else "other"].append(service.get("cpu_shares", default))
    assert len(weights["cpu"]) == 2 and max(weights["cpu"]) < min(weights["other"]), weights


def test_api_and_workers_share_redis_and_the_files_volume(services):
    for name in ("api", "worker", "worker-periodic", "worker-io", "worker-webhooks"):
        service = services[name]
        env = service["environment"]
        assert env["IMAGE2MODEL_REDIS_URL"].startswith("redis://redis:"), name
        assert f"blobs:{env['IMAGE2MODEL_DATA_DIR']}" in service["volumes"], name
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
        ours = {k for k in env if not k.startswith("AWS_")}  # boto3 reads the AWS_* credentials itself
        assert ours <= {f"IMAGE2MODEL_{f.upper()}" for f in Settings.model_fields}, name


def test_one_service_delivers_the_webhooks(services):
    parser = build_parser()
    deliverers = [
        name
        for name, service in ours(services).items()
        if (args := parser.parse_args(service["command"][1:])).command == "worker"
        and args.queue == "webhooks"
    ]
    assert deliverers == ["worker-webhooks"]
    assert "IMAGE2MODEL_WEBHOOK_SECRET" in services["worker-webhooks"]["environment"]


def test_clients_reach_the_api_over_http_only(services):
    for name in ("ui", "bot"):
        service = services[name]
        command = service["command"]
        assert command[command.index("--server") + 1] == "http://api:8000", name
        assert not any(k.startswith("IMAGE2MODEL_REDIS") for k in service["environment"]), name
        assert "blobs:/data" not in service.get("volumes", []), name


def test_every_service_has_a_health_check_and_named_volumes_exist(services):
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, service in services.items():
        assert service["healthcheck"]["test"][0] == "CMD", name
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in compose["volumes"], (name, volume)


def test_dockerfile_default_command_is_serve():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'CMD ["image2model", "serve", "--host", "0.0.0.0"]' in dockerfile
    build_parser().parse_args(["serve", "--host", "0.0.0.0"])


def test_dockerfile_builds_the_notebook_viewer_where_npm_is_and_installs_with_it():
    node, python = (ROOT / "Dockerfile").read_text().split("\nFROM ")[1:]
    assert node.startswith("node:") and "npm ci" in node and "npm run build" in node
    built = "/app/notebook_ext/static/viewer.js"
    assert f"COPY --from=viewer {built} {built}" in python
    assert python.index("COPY --from=viewer") < python.index("pip install")
