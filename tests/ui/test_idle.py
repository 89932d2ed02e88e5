"""An idle web UI's queue waits for work instead of polling, and a new event or a starting job wakes it at once."""

from __future__ import annotations

import time

import gradio as gr
import pytest
from gradio_client import Client

from image2model.ui_gradio import idle
from image2model.ui_gradio.app import launch_options
from tests.support.stack import free_port


def _until(check, what: str, timeout: float = 10.0) -> None:  # noqa: ANN001 - a predicate
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_the_queues_loops_park_while_idle_and_a_click_wakes_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(idle, "IDLE_WAIT", 120.0)  # a missed wake-up would stall the click for two minutes
    with gr.Blocks() as demo:
        word, shout = gr.Textbox(), gr.Textbox()

        def slow_upper(text: str, progress: gr.Progress = gr.Progress()) -> str:  # noqa: B008 - Gradio's way
            progress(0.5, desc="thinking")
            time.sleep(0.3)
            return text.upper()

        word.submit(slow_upper, word, shout, api_name="upper")
    demo.queue()
    idle.quiet_queue(demo)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, **launch_options())
    try:
        queue = demo._queue
        assert isinstance(queue, idle.QuietQueue)
        _until(lambda: queue.waiting == {"events", "progress"}, "the idle loops did not park")
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        job = client.submit("hi", api_name="/upper")
        # the event loop takes the click at once (it would wait 120 s otherwise) and parks again; the progress
        # loop runs while the job does
        _until(lambda: "progress" not in queue.waiting, "a running job did not wake the progress loop")
        assert job.result(timeout=20) == "HI"
        _until(lambda: queue.waiting == {"events", "progress"}, "the loops did not park again")
    finally:
        demo.close()
