"""Event streams recorded from the real service (`python -m tests.support.record_streams` wrote them), for the
tests that render a job in every client from the same sequences."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from image2model.core.client._base import to_event
from image2model.core.client._sse import SSEDecoder
from image2model.core.client.jobview import JobView
from image2model.core.models import Event, FileListing, ItemStatus, UploadResponse

HERE = Path(__file__).parent / "recordings"
NAMES = sorted(p.stem for p in HERE.glob("*.json"))


@dataclass(frozen=True)
class Recording:
    name: str
    note: str
    upload: UploadResponse
    raw: bytes
    """The stream's bytes as the server sent them."""
    events: list[Event]
    listing: FileListing

    @property
    def stored(self) -> list[Event]:
        """The events with an id of their own (no queue notices)."""
        return [e for e in self.events if e.type != "queue_position"]

    def views(self, start: JobView | None = None) -> list[JobView]:
        """`start` (default: the upload's view), then every view `Client.watch` yields for this stream: each event
        folded in, the listing's entries attached once a file has completed."""
        view = start or JobView.from_upload(self.upload)
        out = [view]
        for event in self.events:
            changed = view.apply(event)
            if changed is view:
                continue
            if any(f.status == ItemStatus.COMPLETED and not f.entries for f in changed.files):
                changed = changed.with_entries(self.listing.files)
            view = changed
            out.append(view)
        return out


def load(name: str) -> Recording:
    body = json.loads((HERE / f"{name}.json").read_text())
    raw = body["stream"].encode()
    events = [e for e in (to_event(sse) for sse in SSEDecoder().feed(raw)) if e is not None]
    return Recording(
        name,
        body["note"],
        UploadResponse.model_validate(body["upload"]),
        raw,
        events,
        FileListing.model_validate(body["listing"]),
    )
