"""Signatures: what the deliverer signs verifies with the `standardwebhooks` package and with the README's two
receiver snippets, and nothing else does; the secret is configured or generated once and shared."""

from __future__ import annotations

import json
import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from image2model.api.webhooks.signing import (
    WebhookSigner,
    decode_secret,
    load_webhook_secret,
    new_secret,
)
from image2model.core.settings import Settings
from tests.support.webhooks import readme_verifiers

BODY = json.dumps({"type": "task_completed", "job_id": "j", "data": {"seq": 7, "message": "Grüße"}}).encode()


def signed(secret: str, at: int | None = None, webhook_id: str = "j:7") -> dict[str, str]:
    return WebhookSigner(secret).headers(webhook_id, at or int(time.time()), BODY)


def test_the_reference_library_verifies_our_signature():
    secret = new_secret()
    assert Webhook(secret).verify(BODY, signed(secret)) == json.loads(BODY)


def test_the_readme_snippets_accept_a_delivery_and_refuse_tampering():
    verifiers = readme_verifiers()
    assert set(verifiers) == {"standardwebhooks", "hmac"}
    secret, other = new_secret(), new_secret()
    headers = signed(secret)
    assert verifiers["standardwebhooks"](BODY, headers, secret) == json.loads(BODY)
    assert verifiers["hmac"](BODY, headers, secret) is True
    cases = [
        (BODY.replace(b"7", b"8"), headers, secret),  # body changed
        (BODY, {**headers, "webhook-id": "j:8"}, secret),  # replayed under another id
        (BODY, headers, other),  # another deployment's key
        (BODY, signed(secret, at=int(time.time()) - 3600), secret),  # an hour old
    ]
    for body, hdrs, key in cases:
        assert verifiers["hmac"](body, hdrs, key) is False
        with pytest.raises(WebhookVerificationError):
            verifiers["standardwebhooks"](body, hdrs, key)


def test_signature_has_the_standard_form():
    secret = new_secret()
    headers = signed(secret, at=1_700_000_000)
    assert headers["webhook-id"] == "j:7"
    assert headers["webhook-timestamp"] == "1700000000"
    version, _, value = headers["webhook-signature"].partition(",")
    assert version == "v1" and len(value) == 44  # base64 of 32 bytes


def test_a_configured_secret_is_used_and_a_bad_one_refused(tmp_path):
    secret = new_secret()
    assert load_webhook_secret(Settings(data_dir=tmp_path, webhook_secret=secret)) == secret
    for bad in ("whsec_not base64!", "whsec_c2hvcnQ=", "plain"):
        with pytest.raises(ValueError, match="IMAGE2MODEL_WEBHOOK_SECRET"):
            load_webhook_secret(Settings(data_dir=tmp_path, webhook_secret=bad))
    assert not (tmp_path / "webhook.key").exists()


def test_a_generated_secret_is_made_once_and_kept_in_the_data_dir(tmp_path):
    settings = Settings(data_dir=tmp_path)
    first = load_webhook_secret(settings)
    assert first.startswith("whsec_") and len(decode_secret(first)) == 32
    assert load_webhook_secret(Settings(data_dir=tmp_path)) == first
    assert (tmp_path / "webhook.key").read_text().strip() == first
    assert (tmp_path / "webhook.key").stat().st_mode & 0o077 == 0


@pytest.mark.redis
def test_a_generated_secret_is_shared_through_redis(tmp_path, redis_server):
    import redis

    with redis.Redis.from_url(redis_server.url) as conn:
        conn.delete("i2m:webhook-secret")
    first = load_webhook_secret(Settings(data_dir=tmp_path / "a", redis_url=redis_server.url))
    second = load_webhook_secret(Settings(data_dir=tmp_path / "b", redis_url=redis_server.url))
    assert first == second and first.startswith("whsec_")
    assert not (tmp_path / "a" / "webhook.key").exists()
