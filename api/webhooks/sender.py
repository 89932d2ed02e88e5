"""One POST of a delivery, guarded: names are resolved by a resolver that refuses forbidden addresses, and the
connection goes to exactly the addresses it checked (no second lookup an attacker's DNS could answer
differently), with the host name kept for `Host`, TLS SNI and certificate checks. Redirects are not followed,
no proxy from the environment is used, no cookie is kept.

aiohttp, not httpx: on this project's 2-core machine httpx's pool served 190-410 POSTs/s to one loopback
receiver at 8-128 concurrent requests, aiohttp 700-2,700 (bench/webhooks.py needs 1,000 deliveries/s)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from image2model.api.webhooks.targets import RefusedTarget, check_addresses, literal_address

USER_AGENT = "image2model-webhooks/0.1"
DNS_CACHE_SECONDS = 10
TARGET_CACHE = 4096


@dataclass(frozen=True)
class Attempt:
    """What one POST got: the HTTP status (None without an answer) and, unless it was a 2xx, why it failed."""

    status: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class GuardedResolver(AbstractResolver):
    """The system resolver (or `resolve`, a `(host, port) -> addresses` function for tests), with every answer
    checked by `check_addresses`: a refused host raises `RefusedTarget` and nothing is connected."""

    def __init__(self, allow_hosts: frozenset[str], resolve: Callable[[str, int], list[str]] | None = None):
        self._allow = allow_hosts
        self._resolve = resolve
        self._system = ThreadedResolver() if resolve is None else None

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._system is not None:
            results = await self._system.resolve(host, port, family)
        else:
            assert self._resolve is not None
            results = [
                ResolveResult(
                    hostname=host,
                    host=address,
                    port=port,
                    family=socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET,
                    proto=0,
                    flags=socket.AI_NUMERICHOST,
                )
                for address in self._resolve(host, port)
            ]
        check_addresses(host, [r["host"] for r in results], self._allow)
        return results

    async def close(self) -> None:
        if self._system is not None:
            await self._system.close()


class Sender:
    """POSTs deliveries over one pool of keep-alive connections (`max_in_flight` at most, a quarter of them to
    any one host, so one slow receiver cannot take every connection). Create it inside the event loop."""

    def __init__(
        self,
        timeout: float,
        allow_hosts: frozenset[str],
        max_in_flight: int,
        resolve: Callable[[str, int], list[str]] | None = None,
    ) -> None:
        self.timeout = timeout
        self._allow = allow_hosts
        connector = aiohttp.TCPConnector(
            limit=max_in_flight,
            limit_per_host=max(1, max_in_flight // 4),
            ttl_dns_cache=DNS_CACHE_SECONDS,
            resolver=GuardedResolver(allow_hosts, resolve),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
            auto_decompress=False,
            trust_env=False,
        )
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._targets: dict[str, tuple[URL, str]] = {}

    def _target(self, url: str) -> tuple[URL, str]:
        """The parsed URL and its host, remembered (thousands of deliveries go to a few URLs); an IP literal is
        checked here, as aiohttp connects to one without asking the resolver."""
        known = self._targets.get(url)
        if known is None:
            parsed = URL(url)
            host = parsed.host or ""
            literal = literal_address(host)
            if literal is not None:
                check_addresses(host, [str(literal)], self._allow)
            if len(self._targets) >= TARGET_CACHE:
                self._targets.clear()
            known = self._targets[url] = (parsed, host)
        return known

    async def post(self, url: str, headers: dict[str, str], body: bytes) -> Attempt:
        """POST `body` to `url`; never raises for what the receiver or the network does."""
        host = ""
        try:
            target, host = self._target(url)
            async with self._session.post(
                target, data=body, headers=headers, allow_redirects=False, timeout=self._timeout
            ) as response:
                # The status line is the answer; a body is not waited for (a small one is already read, and
                # the connection goes back to the pool; a large or slow one closes it).
                return _attempt(response.status, response.headers.get("Location"))
        except RefusedTarget as exc:
            return Attempt(None, f"refused: {exc}")
        except TimeoutError:
            return Attempt(None, f"no answer within {self.timeout:g} s")
        except aiohttp.ClientConnectorDNSError as exc:
            if isinstance(exc.os_error, RefusedTarget):
                return Attempt(None, f"refused: {exc.os_error}")
            return Attempt(None, f"could not resolve {host}: {exc.os_error}")
        except aiohttp.ClientConnectorError as exc:
            return Attempt(None, f"could not connect to {host}: {exc.os_error.strerror or exc.os_error}")
        except Exception as exc:  # anything else a receiver or the network can cause (bad URL, TLS, protocol)
            return Attempt(None, f"{type(exc).__name__}: {exc}"[:300])

    async def close(self) -> None:
        await self._session.close()


def _attempt(status: int, location: str | None) -> Attempt:
    if 200 <= status < 300:
        return Attempt(status)
    if 300 <= status < 400:
        return Attempt(
            status, f"HTTP {status}: redirects are not followed (Location: {location or '-'})"[:300]
        )
    return Attempt(status, f"HTTP {status}")
