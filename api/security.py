"""API keys, job ownership and signed links."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from image2model.core.errors import Unauthorized
from image2model.core.numbers import parse_decimal
from image2model.core.settings import Settings

LOCAL_OWNER = "local"
MAX_EXPIRY = 10**11
"""Largest expiry a link token may carry (Unix seconds, year ~5000): anything longer is not one we signed."""
SECRET_KEY = "i2m:signing-secret"
"""Redis key of the generated deployment secret (scale-out mode)."""


def owner_of(key: str) -> str:
    """The owner id stored with a job: a hash of the key, never the key itself."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Caller:
    """Who is calling: the owner id of a valid key, or nobody (only a signed link may then grant access)."""

    owner: str | None


class KeyRing:
    """The configured API keys, compared in constant time."""

    def __init__(self, keys: list[str]) -> None:
        self._keys = [k.encode() for k in keys]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def caller(self, presented: str | None) -> Caller:
        """Resolve the presented key. Auth off: everyone is the local user. A wrong key is always a 401."""
        if not self.enabled:
            return Caller(owner=LOCAL_OWNER)
        if presented is None:
            return Caller(owner=None)
        candidate = presented.encode()
        valid = False
        for key in self._keys:
            valid |= hmac.compare_digest(candidate, key)
        if not valid:
            raise Unauthorized(
                "The API key is not valid. Check IMAGE2MODEL_API_KEY or the Authorization header."
            )
        return Caller(owner=owner_of(presented))


class LinkSigner:
    """HMAC tokens that grant read access to one job until they expire: `?token=<expiry>.<signature>`."""

    def __init__(self, secret: bytes, ttl_seconds: int) -> None:
        self._secret = secret
        self.ttl_seconds = ttl_seconds

    def _signature(self, job_id: str, expires: int) -> str:
        digest = hmac.digest(
            self._secret, f"{job_id}.{expires}".encode(), "sha256"
        )  # one-shot: a page signs many
        return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")

    def token(self, job_id: str, expires: int | None = None) -> str:
        expires = expires if expires is not None else math.ceil(time.time()) + self.ttl_seconds
        return f"{expires}.{self._signature(job_id, expires)}"

    def verify(self, job_id: str, token: str) -> None:
        """Raise Unauthorized unless the token was signed for this job and has not expired."""
        expires_text, _, signature = token.partition(".")
        expires = parse_decimal(expires_text, maximum=MAX_EXPIRY)
        if (
            expires is None
            or not signature.isascii()
            or not hmac.compare_digest(signature, self._signature(job_id, expires))
        ):
            raise Unauthorized("This link is not valid for this job.")
        if expires < time.time():
            raise Unauthorized(
                "This link has expired. Ask the API for a fresh one (GET the job's status with your key)."
            )


def load_secret(settings: Settings) -> bytes:
    """The secret that signs links and queued task data: from settings, else generated once and shared by every
    process of the deployment (kept in Redis in scale-out mode, under the data directory otherwise)."""
    if settings.signing_secret:
        return settings.signing_secret.encode()
    return shared_secret(settings, "signing.key", SECRET_KEY, lambda: secrets.token_urlsafe(48)).encode()


def shared_secret(settings: Settings, filename: str, redis_key: str, generate: Callable[[], str]) -> str:
    """A deployment-wide secret made by `generate` once, by whichever process asks first, and read by all the
    others: the Redis key `redis_key` in scale-out mode, the file `filename` under the data directory otherwise."""
    if settings.redis_url:
        import redis

        with redis.Redis.from_url(settings.redis_url) as conn:
            conn.set(redis_key, generate(), nx=True)  # first writer wins
            return bytes(conn.get(redis_key) or b"").decode()
    path: Path = settings.data_dir / filename
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{secrets.token_hex(4)}")
        tmp.write_text(generate())
        tmp.chmod(0o600)
        try:
            os.link(tmp, path)  # first writer wins; every process reads the same secret
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()
