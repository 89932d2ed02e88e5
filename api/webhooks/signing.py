"""Standard Webhooks signatures: the deployment's `whsec_` key and the three headers of every delivery."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from image2model.api.security import shared_secret
from image2model.core.settings import Settings

PREFIX = "whsec_"
SECRET_KEY = "i2m:webhook-secret"
"""Redis key of the generated webhook secret (scale-out mode); `webhook.key` under the data dir otherwise."""
SECRET_FILE = "webhook.key"
MIN_KEY_BYTES = 16


def new_secret() -> str:
    """A fresh `whsec_<base64 of 32 random bytes>`."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def decode_secret(secret: str) -> bytes:
    """The HMAC key inside a `whsec_<base64>` secret; ValueError with the fix when it is not one."""
    body = secret.strip().removeprefix(PREFIX)
    try:
        key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("IMAGE2MODEL_WEBHOOK_SECRET must be `whsec_` followed by base64") from exc
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"IMAGE2MODEL_WEBHOOK_SECRET must hold at least {MIN_KEY_BYTES} bytes of key")
    return key


def load_webhook_secret(settings: Settings) -> str:
    """The deployment's webhook secret: IMAGE2MODEL_WEBHOOK_SECRET, else one generated once and kept with the
    signing secret (Redis in scale-out mode, the data directory otherwise)."""
    secret = settings.webhook_secret.strip() or shared_secret(settings, SECRET_FILE, SECRET_KEY, new_secret)
    decode_secret(secret)
    return secret


class WebhookSigner:
    """Signs deliveries: `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`."""

    def __init__(self, secret: str) -> None:
        self._key = decode_secret(secret)

    def signature(self, webhook_id: str, timestamp: int, body: bytes) -> str:
        message = b"%s.%d.%s" % (webhook_id.encode(), timestamp, body)
        return "v1," + base64.b64encode(hmac.new(self._key, message, hashlib.sha256).digest()).decode()

    def headers(self, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
        """The Standard Webhooks headers of one attempt (the timestamp is the attempt's, the id the event's)."""
        return {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": self.signature(webhook_id, timestamp, body),
        }
