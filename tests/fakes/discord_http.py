"""A Discord wire double for bot tests: a loopback HTTP server answering the REST and webhook routes a bot
uses, recording every call (method, path, JSON payload, multipart files, raw body), serving attachments like
Discord's CDN, with scripted faults. Nothing reaches Discord.

How discord.py is pointed at it (discord.py==2.7.1): every REST call, the bot's own (`HTTPClient.request`) and
the interaction webhook's (`AsyncWebhookAdapter.request`, used by `Interaction.response`/`followup`/
`edit_original_response`), builds its URL as `Route.BASE + path`; `route_to(fake)` swaps that one class
attribute. `bot.login(token)` then logs in against the fake (GET /users/@me, the application) and runs
`setup_hook`, without a gateway. Interactions enter where the gateway hands them to the library:
`dispatch(bot, payload)` calls `ConnectionState.parse_interaction_create` with an INTERACTION_CREATE dict, so
the real command tree, option transformers, `Attachment`s and `DynamicItem` dispatch run. Those two private
names (`Route.BASE`, `_connection.parse_interaction_create`) are the only internals touched, both here.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import email.policy
import itertools
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.parser import BytesParser
from typing import Any

from aiohttp import web

API_PREFIX = "/api/v10"
DEFAULT_FILESIZE_LIMIT = 10 * 1024 * 1024


@dataclass
class Call:
    """One request the bot made."""

    method: str
    path: str  # without the /api/v10 prefix
    query: dict[str, str]
    headers: dict[str, str]
    payload: Any  # the JSON body, or the multipart `payload_json`
    files: list[dict[str, Any]] = field(default_factory=list)  # {name, filename, content_type, data}
    raw: bytes = b""
    at: float = 0.0

    @property
    def file_names(self) -> list[str]:
        return [f["filename"] for f in self.files]


@dataclass
class Fault:
    method: str
    pattern: str
    status: int
    body: dict[str, Any]
    times: int


class FakeDiscord:
    """Start with `await FakeDiscord().start()`; `url` is its base, `calls` what it saw."""

    def __init__(
        self, app_id: int = 900_000_000_000_000_001, bot_user_id: int = 900_000_000_000_000_002
    ) -> None:
        self.app_id = app_id
        self.bot_user = {
            "id": str(bot_user_id),
            "username": "image2model",
            "discriminator": "0",
            "global_name": "image2model",
            "avatar": None,
            "bot": True,
        }
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self._attachments: dict[str, tuple[str, bytes]] = {}
        self._ids = itertools.count(int(time.time()) << 22)
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- lifecycle --

    async def start(self) -> FakeDiscord:
        app = web.Application(client_max_size=200 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_base(self) -> str:
        return self.url + API_PREFIX

    # -- scripting --

    def attachment(
        self, filename: str, data: bytes, content_type: str | None, size: int | None = None
    ) -> dict:
        """An attachment payload (as in `data.resolved.attachments`) whose URL this server serves."""
        attachment_id = str(self.snowflake())
        self._attachments[attachment_id] = (content_type or "application/octet-stream", data)
        url = f"{self.url}/attachments/{attachment_id}/{filename}"
        payload = {
            "id": attachment_id,
            "filename": filename,
            "size": len(data) if size is None else size,
            "url": url,
            "proxy_url": url,
        }
        if content_type is not None:
            payload["content_type"] = content_type
        return payload

    def fail(self, method: str, pattern: str, status: int, body: dict | None = None, times: int = 1) -> None:
        """Answer the next `times` requests matching (method, path regex) with `status` and `body`."""
        self.faults.append(Fault(method, pattern, status, body or {"message": "fault", "code": 0}, times))

    def snowflake(self) -> int:
        return next(self._ids)

    # -- reading the record --

    def find(self, method: str, pattern: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and re.search(pattern, c.path)]

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
        """Poll until `predicate()` is truthy (returning it); AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            await asyncio.sleep(0.02)
        raise AssertionError(
            f"timed out after {timeout} s; calls: {[(c.method, c.path) for c in self.calls]}"
        )

    # -- the server --

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith("/attachments/"):
            self.calls.append(
                Call(
                    request.method,
                    path,
                    dict(request.query),
                    dict(request.headers),
                    None,
                    at=time.monotonic(),
                )
            )
            found = self._attachments.get(path.split("/")[2])
            if found is None:
                return web.Response(status=404)
            return web.Response(body=found[1], content_type=found[0])
        raw = await request.read()
        payload, files = await _parse_body(request, raw)
        api_path = path[len(API_PREFIX) :] if path.startswith(API_PREFIX) else path
        call = Call(
            request.method,
            api_path,
            dict(request.query),
            dict(request.headers),
            payload,
            files,
            raw,
            time.monotonic(),
        )
        self.calls.append(call)
        for fault in self.faults:
            if fault.times > 0 and fault.method == request.method and re.search(fault.pattern, api_path):
                fault.times -= 1
                return _json(fault.body, status=fault.status)
        return self._answer(call)

    def _answer(self, call: Call) -> web.StreamResponse:
        m, p = call.method, call.path
        if m == "GET" and p == "/users/@me":
            return _json(self.bot_user)
        if m == "GET" and p == "/oauth2/applications/@me":
            return _json(self._application())
        if m == "PUT" and re.fullmatch(r"/applications/\d+(/guilds/\d+)?/commands", p):
            commands = [
                {**c, "id": str(self.snowflake()), "application_id": str(self.app_id), "version": "1"}
                for c in call.payload or []
            ]
            return _json(commands)
        if m == "POST" and re.fullmatch(r"/interactions/\d+/[^/]+/callback", p):
            interaction_id = p.split("/")[2]
            kind = (call.payload or {}).get("type")
            body: dict[str, Any] = {"interaction": {"id": interaction_id, "type": 2}}
            if kind in (4, 7):
                body["resource"] = {"type": kind, "message": self._message(call, "0")}
            return _json(body)
        match = re.fullmatch(r"/webhooks/\d+/[^/]+/messages/(@original|\d+)", p)
        if match and m in ("PATCH", "GET"):
            return _json(self._message(call, "0", message_id=match[1]))
        if match and m == "DELETE":
            return web.Response(status=204)
        if m == "POST" and re.fullmatch(r"/webhooks/\d+/[^/]+", p):
            return _json(self._message(call, "0"))
        match = re.fullmatch(r"/channels/(\d+)/messages", p)
        if m == "POST" and match:
            return _json(self._message(call, match[1]))
        if m == "DELETE" and re.fullmatch(r"/channels/\d+/messages/\d+", p):
            return web.Response(status=204)
        if m == "POST" and p == "/users/@me/channels":
            recipient = str((call.payload or {}).get("recipient_id"))
            return _json(
                {
                    "id": str(self.snowflake()),
                    "type": 1,
                    "recipients": [{**self.bot_user, "id": recipient, "bot": False}],
                }
            )
        return _json({"message": f"fake Discord has no route {m} {p}", "code": 0}, status=404)

    def _application(self) -> dict[str, Any]:
        return {
            "id": str(self.app_id),
            "name": "image2model",
            "description": "",
            "icon": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": {**self.bot_user, "id": "1", "bot": False},
            "verify_key": "0" * 64,
            "flags": 0,
            "team": None,
            "summary": "",
        }

    def _message(self, call: Call, channel_id: str, message_id: str | None = None) -> dict[str, Any]:
        payload = call.payload if isinstance(call.payload, dict) else {}
        data = payload.get("data", payload) if "type" in payload and "data" in payload else payload
        attachments = [
            {
                "id": str(self.snowflake()),
                "filename": f["filename"],
                "size": len(f["data"]),
                "url": f"{self.url}/attachments/out/{f['filename']}",
                "proxy_url": f"{self.url}/attachments/out/{f['filename']}",
            }
            for f in call.files
        ]
        return {
            "id": str(self.snowflake()) if message_id in (None, "@original") else message_id,
            "channel_id": channel_id,
            "author": self.bot_user,
            "content": data.get("content") or "",
            "timestamp": datetime.datetime.now(datetime.UTC).isoformat(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": attachments,
            "embeds": data.get("embeds") or [],
            "pinned": False,
            "type": 0,
            "flags": data.get("flags") or 0,
            "components": data.get("components") or [],
        }


def _json(body: Any, status: int = 200) -> web.Response:
    # discord.py decodes a body only when Content-Type is exactly application/json (no charset).
    return web.Response(
        body=json.dumps(body).encode(), status=status, headers={"Content-Type": "application/json"}
    )


async def _parse_body(request: web.Request, raw: bytes) -> tuple[Any, list[dict[str, Any]]]:
    kind = request.headers.get("Content-Type", "")
    if kind.startswith("multipart/"):
        # The body was read whole (for the record), so parse it with the standard library.
        message = BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {kind}\r\n\r\n".encode() + raw
        )
        payload: Any = None
        files: list[dict[str, Any]] = []
        for part in message.iter_parts():
            data = part.get_payload(decode=True) or b""
            name = part.get_param("name", header="content-disposition")
            if name == "payload_json":
                payload = json.loads(data)
            else:
                files.append(
                    {
                        "name": name,
                        "filename": part.get_filename(),
                        "content_type": part.get_content_type(),
                        "data": bytes(data),
                    }
                )
        return payload, files
    if raw and "json" in kind:
        return json.loads(raw), []
    return None, []


# --- discord.py hooks (the only internals touched) ---------------------------------------------------------


@contextlib.contextmanager
def route_to(fake: FakeDiscord) -> Iterator[None]:
    """Send every discord.py REST and webhook call to the fake while the block runs."""
    from discord.http import Route

    saved = Route.BASE
    Route.BASE = fake.api_base
    try:
        yield
    finally:
        Route.BASE = saved


def dispatch(bot: Any, payload: dict[str, Any]) -> None:
    """Hand an INTERACTION_CREATE payload to the library as the gateway would."""
    bot._connection.parse_interaction_create(payload)


# --- gateway payloads ---------------------------------------------------------------------------------------


def snowflake_at(when: datetime.datetime, fake: FakeDiscord) -> int:
    """A snowflake for `when` (interactions expire 15 min after the time in their id)."""
    from discord.utils import time_snowflake

    return time_snowflake(when) + fake.snowflake() % 4096


def user_payload(user_id: int, name: str = "maker") -> dict[str, Any]:
    return {"id": str(user_id), "username": name, "discriminator": "0", "global_name": name, "avatar": None}


def _base(
    fake: FakeDiscord,
    kind: int,
    user_id: int,
    guild_id: int | None,
    channel_id: int,
    created: datetime.datetime | None,
    filesize_limit: int,
) -> dict[str, Any]:
    created = created or datetime.datetime.now(datetime.UTC)
    payload: dict[str, Any] = {
        "id": str(snowflake_at(created, fake)),
        "application_id": str(fake.app_id),
        "type": kind,
        "token": f"itoken-{fake.snowflake()}",
        "version": 1,
        "channel_id": str(channel_id),
        "locale": "en-US",
        "attachment_size_limit": filesize_limit,
        "app_permissions": str((1 << 11) | (1 << 15)),  # send messages, attach files
        "entitlements": [],
    }
    if guild_id is not None:
        payload["guild_id"] = str(guild_id)
        payload["guild_locale"] = "en-US"
        payload["channel"] = {
            "id": str(channel_id),
            "type": 0,
            "name": "models",
            "guild_id": str(guild_id),
            "position": 0,
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
        }
        payload["member"] = {
            "user": user_payload(user_id),
            "roles": [],
            "joined_at": "2024-01-01T00:00:00+00:00",
            "deaf": False,
            "mute": False,
            "flags": 0,
            "permissions": str((1 << 11) | (1 << 15)),
        }
        payload["authorizing_integration_owners"] = {"0": str(guild_id)}
        payload["context"] = 0
    else:
        payload["channel"] = {"id": str(channel_id), "type": 1, "recipients": [user_payload(user_id)]}
        payload["user"] = user_payload(user_id)
        payload["authorizing_integration_owners"] = {"1": str(user_id)}
        payload["context"] = 1
    return payload


def slash_command(
    fake: FakeDiscord,
    name: str,
    options: dict[str, Any],
    attachments: dict[str, dict[str, Any]] | None = None,
    *,
    user_id: int = 111_111_111_111_111_111,
    guild_id: int | None = 222_222_222_222_222_222,
    channel_id: int = 333_333_333_333_333_333,
    created: datetime.datetime | None = None,
    filesize_limit: int = DEFAULT_FILESIZE_LIMIT,
) -> dict[str, Any]:
    """An APPLICATION_COMMAND interaction. `options` are plain values (ints → INTEGER, strs → STRING);
    `attachments` maps option names to payloads from `FakeDiscord.attachment`."""
    payload = _base(fake, 2, user_id, guild_id, channel_id, created, filesize_limit)
    opts: list[dict[str, Any]] = []
    for key, value in options.items():
        kind = (
            4
            if isinstance(value, int) and not isinstance(value, bool)
            else 5
            if isinstance(value, bool)
            else 3
        )
        opts.append({"name": key, "type": kind, "value": value})
    resolved: dict[str, Any] = {}
    for key, attachment in (attachments or {}).items():
        opts.append({"name": key, "type": 11, "value": attachment["id"]})
        resolved.setdefault("attachments", {})[attachment["id"]] = attachment
    payload["data"] = {"id": str(fake.snowflake()), "name": name, "type": 1, "options": opts}
    if guild_id is not None:
        payload["data"]["guild_id"] = str(guild_id)
    if resolved:
        payload["data"]["resolved"] = resolved
    return payload


def component(
    fake: FakeDiscord,
    custom_id: str,
    message_components: list[dict[str, Any]],
    *,
    component_type: int = 2,
    values: list[str] | None = None,
    user_id: int = 111_111_111_111_111_111,
    guild_id: int | None = 222_222_222_222_222_222,
    channel_id: int = 333_333_333_333_333_333,
    filesize_limit: int = DEFAULT_FILESIZE_LIMIT,
) -> dict[str, Any]:
    """A MESSAGE_COMPONENT interaction: a click on `custom_id` of a bot message carrying `message_components`
    (e.g. the `components` of a recorded final edit)."""
    payload = _base(fake, 3, user_id, guild_id, channel_id, None, filesize_limit)
    payload["data"] = {"custom_id": custom_id, "component_type": component_type}
    if values is not None:
        payload["data"]["values"] = values
    payload["message"] = {
        "id": str(fake.snowflake()),
        "channel_id": str(channel_id),
        "author": fake.bot_user,
        "content": "",
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": False,
        "type": 0,
        "flags": 0,
        "components": message_components,
    }
    return payload
