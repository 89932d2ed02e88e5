"""The OpenAPI schema is true: schemathesis (every check, all its phases, a bounded number of examples) runs
against the live service with auth on and finds nothing; and the schema says what the issue asked it to."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CONFIG = Path(__file__).with_name("schemathesis.toml")
KEY = "schema-key"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("schema") / "data", api_keys=KEY).start(workers=1)
    yield s
    s.stop()


def test_schemathesis_finds_nothing_with_every_check(keyed: Stack, tmp_path: Path) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or "st"
    run = subprocess.run(
        [st, "--no-color", "--config-file", str(CONFIG), "run", f"{keyed.url}/openapi.json"]
        + ["--checks", "all", "--max-examples", "10", "--seed", "1"]
        + ["-H", f"Authorization: Bearer {KEY}", "--report-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    operations = sum(len(ops) for ops in httpx.get(f"{keyed.url}/openapi.json").json()["paths"].values())
    assert " passed" in run.stdout and f"Tested: {operations}" in run.stdout, run.stdout[-3000:]
    log = keyed.log("api")
    assert "Traceback" not in log and "unhandled_error" not in log, log[-3000:]


def test_schema_declares_auth_limits_and_real_media_types(keyed: Stack) -> None:
    schema = httpx.get(f"{keyed.url}/openapi.json").json()
    assert set(schema["components"]["securitySchemes"]) == {"bearerAuth", "apiKeyHeader"}
    paths = schema["paths"]
    files = paths["/api/v1/upload/"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert (files["properties"]["files"]["minItems"], files["properties"]["files"]["maxItems"]) == (1, 25)
    download = paths["/api/v1/download/{job_id}/{filename}"]["get"]["responses"]
    assert {"model/gltf-binary", "model/stl", "image/png"} <= set(download["200"]["content"])
    assert "application/octet-stream" not in download["200"]["content"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if operation.get("security"):
                assert "401" in responses, (method, path)
            for status, response in responses.items():
                if status[0] in "45" and method != "head":
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref == "#/components/schemas/Error", (method, path, status)
    assert paths["/api/v1/upload/"]["post"]["security"] == [{"bearerAuth": []}, {"apiKeyHeader": []}]
    assert {} in paths["/api/v1/status/tasks/{job_id}"]["get"]["security"]  # a signed link needs no key
    assert "head" in paths["/api/v1/download/{job_id}/all"] and "get" in paths["/health"]
