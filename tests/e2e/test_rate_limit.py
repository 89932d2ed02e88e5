"""Upload rate limiting answers 429 RATE_LIMITED with Retry-After and stores nothing."""

from __future__ import annotations

import httpx
import pytest

from tests.support.images import photo
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e


def test_uploads_over_the_rate_limit_get_429_with_retry_after(tmp_path):
    stack = Stack(tmp_path / "data", rate_limit_per_minute="2").start(workers=1)
    try:
        files = [("files", ("a.jpg", photo(), "image/jpeg"))]
        codes = [httpx.post(f"{stack.url}/api/v1/upload/", files=files).status_code for _ in range(2)]
        assert codes == [200, 200]
        refused = httpx.post(f"{stack.url}/api/v1/upload/", files=files)
        assert refused.status_code == 429
        body = refused.json()
        assert body["error_code"] == "RATE_LIMITED" and body["status_code"] == 429
        assert int(refused.headers["retry-after"]) >= 1 and "per minute" in body["message"]
        assert stack.stored_jobs() == 2
        assert httpx.get(f"{stack.url}/api/v1/models/available").status_code == 200
    finally:
        stack.stop()
