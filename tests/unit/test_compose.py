"""docker-compose.yml is valid YAML and only runs commands our CLI really has."""

from __future__ import annotations

from pathlib import Path

import yaml

from image2model.api.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def test_compose_services_run_real_cli_commands():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    parser = build_parser()
    assert {"api", "worker"} <= compose["services"].keys()
    for name, service in compose["services"].items():
        command = service["command"]
        assert command[0] == "image2model", name
        parser.parse_args(command[1:])  # exits (SystemExit) on an unknown command or flag
        assert "/data" in [v.split(":")[1] for v in service["volumes"]], name
    assert "healthcheck" in compose["services"]["api"]


def test_dockerfile_default_command_is_serve():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'CMD ["image2model", "serve", "--host", "0.0.0.0"]' in dockerfile
    build_parser().parse_args(["serve", "--host", "0.0.0.0"])
