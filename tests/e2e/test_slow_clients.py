"""Clients that trickle their headers or body, or hold too many connections, are cut with a JSON answer while
every other client is served (real API process, raw sockets on loopback)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

BOUNDARY = "slowclientboundary"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[Stack]:
    """Tight deadlines: 1 s for headers and for a body's next part, and at least 2 kB/s on average after that."""
    s = Stack(
        tmp_path_factory.mktemp("slow") / "data",
        http_header_timeout="1",
        http_body_timeout="1",
        http_body_min_rate="2000",
    )
    s.start_api()
    yield s
    s.stop()
    assert "Traceback" not in s.log("api"), s.log("api")[-3000:]


async def _collect(reader: asyncio.StreamReader, timeout: float = 15) -> bytes:
    """Everything the server sends until it closes the connection (read as it arrives, so a write that fails
    once the server closed cannot hide the answer)."""
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = await asyncio.wait_for(reader.read(65536), deadline - time.monotonic())
        except (ConnectionError, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
    return data


async def _send_slowly(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pieces: list[bytes], pause: float
) -> bytes:
    """Send `pieces` with a pause after each until the server answers (bounded by the pieces); its answer."""
    answer = asyncio.create_task(_collect(reader))
    try:
        for piece in pieces:
            if answer.done():
                break
            try:
                writer.write(piece)
                await writer.drain()
            except ConnectionError:
                break
            await asyncio.sleep(pause)
        return await answer
    finally:
        writer.close()


def _parse(raw: bytes) -> tuple[int, dict[str, str], dict]:
    assert raw, "the server closed the connection without an answer"
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, json.loads(body)


async def _trickle(port: int, data: bytes, pause: float) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    return await _send_slowly(reader, writer, [data[n : n + 1] for n in range(len(data))], pause)


async def _fast_requests(url: str, n: int) -> list[int]:
    async with httpx.AsyncClient(timeout=10) as client:
        return [(await client.get(f"{url}/api/v1/health")).status_code for _ in range(n)]


def test_trickled_headers_get_408_while_fast_clients_are_served(guarded: Stack) -> None:
    head = (
        b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris\r\nX-Padding: " + b"x" * 60
    )

    async def scenario() -> tuple[list[bytes], list[int], float]:
        started = time.monotonic()
        slow = [asyncio.create_task(_trickle(guarded.port, head, 0.1)) for _ in range(6)]
        fast = await _fast_requests(guarded.url, 30)
        return await asyncio.gather(*slow), fast, time.monotonic() - started

    answers, fast, took = asyncio.run(scenario())
    assert fast == [200] * 30
    for raw in answers:
        status, headers, body = _parse(raw)
        assert status == 408 and headers["connection"] == "close", raw[:300]
        assert body["error_code"] == "REQUEST_TIMEOUT" and "headers" in body["message"]
    assert took < 12, "the slow clients were not cut"


def test_an_idle_connection_is_closed_without_an_answer(guarded: Stack) -> None:
    async def scenario() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", guarded.port)
        return await _send_slowly(reader, writer, [], 0)

    started = time.monotonic()
    assert asyncio.run(scenario()) == b""
    assert time.monotonic() - started < 10, "the idle connection was never closed"


@pytest.mark.parametrize("shape", ["trickled", "stalled"])
def test_a_slow_upload_body_gets_408_and_leaves_nothing(guarded: Stack, shape: str) -> None:
    part = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="a.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + b"\xff\xd8\xff"
        + b"\x00" * 4000
    )
    head = (
        "POST /api/v1/upload/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len(part) + 200}\r\n\r\n"
    ).encode()

    # trickled: 40 bytes every 0.1 s (400 B/s, under the 2,000 B/s floor); stalled: nothing after the first part
    rest = [part[n : n + 40] for n in range(200, len(part), 40)] if shape == "trickled" else []

    async def scenario() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", guarded.port)
        return await _send_slowly(reader, writer, [head + part[:200], *rest], 0.1)

    status, headers, body = _parse(asyncio.run(scenario()))
    assert status == 408 and headers["connection"] == "close"
    assert body["error_code"] == "REQUEST_TIMEOUT" and "body" in body["message"]
    staging = guarded.data_dir / "staging"
    assert not staging.exists() or list(staging.iterdir()) == []
    assert guarded.stored_jobs() == 0


def test_a_process_holding_its_connection_limit_answers_503_until_one_closes(tmp_path) -> None:
    stack = Stack(tmp_path / "data", http_max_connections="5", http_header_timeout="20")
    stack.start_api()
    try:

        async def scenario() -> tuple[httpx.Response, httpx.Response]:
            idle = [await asyncio.open_connection("127.0.0.1", stack.port) for _ in range(5)]
            await asyncio.sleep(0.2)
            async with httpx.AsyncClient(timeout=10) as client:
                refused = await client.get(f"{stack.url}/api/v1/health")
            for _, writer in idle:
                writer.close()
            await asyncio.sleep(0.3)
            async with httpx.AsyncClient(timeout=10) as client:
                served = await client.get(f"{stack.url}/api/v1/health")
            return refused, served

        refused, served = asyncio.run(scenario())
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert refused.json()["error_code"] == "TOO_MANY_CONNECTIONS"
        assert served.status_code == 200
    finally:
        stack.stop()


def test_bytes_that_are_not_http_get_a_json_400(guarded: Stack) -> None:
    async def scenario() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", guarded.port)
        return await _send_slowly(reader, writer, [b"\x16\x03\x01\x02\x00 not http at all\r\n\r\n"], 0)

    status, headers, body = _parse(asyncio.run(scenario()))
    assert status == 400 and headers["content-type"] == "application/json"
    assert body["error_code"] == "VALIDATION_ERROR" and "HTTP/1.1" in body["message"]
