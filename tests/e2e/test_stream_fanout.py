"""Many watchers of one job: 100 streams on one job where one client stops reading. The other 99 get every event
while it is stalled; the stalled stream is closed once too many events wait for it, and its client resumes with
Last-Event-ID, ending up with every event exactly once."""

from __future__ import annotations

import asyncio
import re
import socket
import time

import httpx
import pytest

from tests.e2e.test_jobs import upload
from tests.support.images import photo
from tests.support.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FRAME_ID = re.compile(rb"(?:^|\n)id: (\d+)\r?\n")
DELIVERIES = re.compile(r'^image2model_stream_deliveries_total\{path="(\w+)"\} (\S+)$', re.M)


class Reader:
    """One stream read off a raw socket (HTTP/1.1 chunked), keeping the ids of the frames received."""

    def __init__(self, port: int, job_id: str, after: int | None = None, rcvbuf: int | None = None) -> None:
        self.port, self.job_id, self.after, self.rcvbuf = port, job_id, after, rcvbuf
        self.ids: list[int] = []
        self.terminal = False
        self._buffer = b""

    async def open(self) -> None:
        """Connect and read the response head, and nothing of the body: until `read_to_end`, what the server sends
        stays in the sockets' buffers (an asyncio stream would read up to 128 KB ahead, letting the server's send
        buffer grow with the window)."""
        sock = socket.socket()
        if self.rcvbuf:  # a small window and small segments: the server's socket buffers stay small too
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, ("127.0.0.1", self.port))
        resume = f"Last-Event-ID: {self.after}\r\n" if self.after is not None else ""
        path = f"/api/v1/status/tasks/{self.job_id}/stream"
        await loop.sock_sendall(sock, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{resume}\r\n".encode())
        head = b""
        while not head.endswith(b"\r\n\r\n"):  # a byte at a time, so not one byte of the body is taken
            byte = await asyncio.wait_for(loop.sock_recv(sock, 1), 30)
            assert byte, f"the server closed the connection after {head!r}"
            head += byte
        assert head.startswith(b"HTTP/1.1 200"), head
        self.sock = sock

    async def read_chunk(self) -> bool:
        """One HTTP chunk; False at the end of the body."""
        size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            return False
        self._buffer += (await self.reader.readexactly(size + 2))[:-2]
        *frames, self._buffer = self._buffer.split(b"\r\n\r\n")
        for frame in frames:
            self.ids += [int(n) for n in FRAME_ID.findall(frame)]
            if b"event: task_completed" in frame:
                self.terminal = True
        return True

    async def read_to_end(self, seconds: float) -> None:
        self.reader, self.writer = await asyncio.open_connection(sock=self.sock)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and await asyncio.wait_for(self.read_chunk(), seconds):
            if self.terminal:
                break
        self.writer.close()


def test_one_stalled_reader_holds_up_none_of_99_others_and_resumes_without_a_gap(tmp_path):
    # Progress events as fast as the generator reports them: some 3,000 events, far more than the socket buffers
    # of a client that reads nothing (with small TCP segments, about 100 KB) and its 100 pending events hold.
    stack = Stack(tmp_path / "data", progress_min_interval="0.001", sse_max_pending_events="100")
    stack.start_api()
    try:
        files = [(f"p{n:02d}.jpg", photo(48, 48)) for n in range(25)]
        job = upload(stack.url, files, delay="0.2", steps="80")["job_id"]

        async def run() -> tuple[list[Reader], Reader, Reader]:
            # Every reader is connected before a worker starts, so all the events reach the stalled one live,
            # while it reads nothing after the headers: a replay of the history at its connect would go out in one
            # write, whatever its size, and a slow machine's longer connect phase would leave too few events after it.
            stalled = Reader(stack.port, job, rcvbuf=1024)
            await stalled.open()
            fast = [Reader(stack.port, job) for _ in range(99)]
            for reader in fast:
                await reader.open()
            stack.start_worker(workers=2)
            await asyncio.wait_for(asyncio.gather(*(r.read_to_end(120) for r in fast)), 150)
            assert all(r.terminal for r in fast), "a fast reader did not get to the end while one was stalled"
            await stalled.read_to_end(60)  # resumes: the rest of what was sent, then the server's end
            resumed = Reader(stack.port, job, after=stalled.ids[-1])
            await resumed.open()
            await resumed.read_to_end(60)
            return fast, stalled, resumed

        fast, stalled, resumed = asyncio.run(run())
        total = fast[0].ids[-1]
        assert total > 2000, f"only {total} events: too few to fill a stalled client's buffers"
        for reader in fast:
            assert reader.ids == list(range(1, total + 1))  # every event, in order, once
        assert not stalled.terminal, "the stalled stream was not closed for falling behind"
        assert (
            stalled.ids + resumed.ids == list(range(1, total + 1)) and resumed.terminal
        )  # no gap, no repeat
        assert "event=subscriber_overflow" in stack.log("api")
        # The idle readers were mostly written to by the hub itself; the stalled one's events went through its task.
        delivered = dict(DELIVERIES.findall(httpx.get(f"{stack.url}/metrics").text))
        direct, through_task = float(delivered["direct"]), float(delivered["stream"])
        assert direct > 20 * through_task and through_task > 0, delivered
    finally:
        stack.stop()
