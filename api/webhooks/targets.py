"""Where a webhook may go: the upload fields' validation and the address guard against server-side request
forgery (targets on loopback, private or link-local addresses are refused unless their host is allowed)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from image2model.core.errors import ValidationFailed
from image2model.core.models import EventType

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
"""(host, port) -> the addresses the host resolves to."""

MAX_URL_LENGTH = 2048
EVENT_NAMES = tuple(e.value for e in EventType if e is not EventType.QUEUE_POSITION)
"""Events a webhook can carry: every stored event (queue_position notices are not stored)."""
DEFAULT_EVENTS = tuple(e.value for e in EventType if e.terminal)

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class RefusedTarget(OSError):
    """A webhook target on an address this deployment does not send to."""


@dataclass(frozen=True)
class WebhookTarget:
    """A validated `webhook_url` with the events it wants."""

    url: str
    events: tuple[str, ...]

    @property
    def host(self) -> str:
        return normalize_host(urlsplit(self.url).hostname or "")

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)


def normalize_host(host: str) -> str:
    """A host as the allow-list compares it: lower case, no brackets, no trailing dot."""
    return host.strip().strip("[]").rstrip(".").lower()


def address_problem(address: IPAddress) -> str | None:
    """Why a webhook may not be sent to `address` (None when it is a public unicast address).

    IPv6 forms that carry an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible, NAT64, 6to4) are
    judged by the IPv4 address inside them."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour
        if inner is None and (address in _NAT64 or address in _IPV4_COMPATIBLE):
            inner = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if inner is not None:
            return address_problem(inner)
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "an address that is not publicly routable"
    return None


def check_addresses(host: str, addresses: Iterable[str], allow_hosts: frozenset[str]) -> list[str]:
    """The addresses of `host`, all of them checked; raise `RefusedTarget` when any one is refused (a host with
    one private address among public ones is refused whole) unless the host is allowed."""
    found = list(dict.fromkeys(addresses))
    if normalize_host(host) in allow_hosts:
        return found
    if not found:
        raise RefusedTarget(f"{host} has no address")
    for text in found:
        problem = address_problem(ipaddress.ip_address(text.split("%", 1)[0]))
        if problem:
            shown = host if text == normalize_host(host) else f"{host} ({text})"
            raise RefusedTarget(
                f"{shown} is {problem}; webhooks are not sent there unless the host is listed in "
                "IMAGE2MODEL_WEBHOOK_ALLOW_HOSTS"
            )
    return found


def literal_address(host: str) -> IPAddress | None:
    """The IP address a URL's host spells directly, or None for a name."""
    try:
        return ipaddress.ip_address(normalize_host(host).split("%", 1)[0])
    except ValueError:
        return None


def system_resolve(host: str, port: int) -> list[str]:
    """The host's addresses from the system resolver (blocking)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def allow_list(hosts: Iterable[str]) -> frozenset[str]:
    return frozenset(normalize_host(h) for h in hosts if h.strip())


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, {"errors": [{"field": field, "message": message}]})


def parse_url(raw: str) -> str:
    """`webhook_url` checked for form: an absolute http(s) URL with a host."""
    url = raw.strip()
    if len(url) > MAX_URL_LENGTH:
        raise _invalid("webhook_url", f"webhook_url is longer than {MAX_URL_LENGTH} characters.")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise _invalid("webhook_url", "webhook_url must not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _invalid("webhook_url", f"webhook_url is not a valid URL ({exc}).") from exc
    if parts.scheme not in ("http", "https"):
        raise _invalid("webhook_url", f"webhook_url must be an http:// or https:// URL, got {url[:80]!r}.")
    if not parts.hostname:
        raise _invalid("webhook_url", "webhook_url has no host.")
    if port == 0:
        raise _invalid("webhook_url", "webhook_url has port 0.")
    return parts._replace(fragment="").geturl()


def parse_events(raw: str | None) -> tuple[str, ...]:
    """`webhook_events`: comma-separated event names (default: the three terminal events)."""
    if raw is None or not raw.strip():
        return DEFAULT_EVENTS
    names = [part.strip().lower() for part in raw.split(",") if part.strip()]
    unknown = [n for n in names if n not in EVENT_NAMES]
    if unknown:
        raise _invalid(
            "webhook_events",
            f"Unknown webhook event(s): {', '.join(unknown)}. Known events: {', '.join(EVENT_NAMES)}.",
        )
    return tuple(dict.fromkeys(names))


def parse_target(
    url: str | None,
    events: str | None,
    allow_hosts: frozenset[str],
    resolve: Resolver = system_resolve,
) -> WebhookTarget | None:
    """The webhook an upload asks for (None without `webhook_url`), its host resolved and checked; raise
    `ValidationFailed` (400) for a malformed URL, unknown events or a refused address."""
    if url is None or not url.strip():
        if events is not None and events.strip():
            raise _invalid("webhook_events", "webhook_events needs a webhook_url to send them to.")
        return None
    target = WebhookTarget(parse_url(url), parse_events(events))
    host = target.host
    literal = literal_address(host)
    try:
        addresses = [str(literal)] if literal is not None else resolve(host, target.port)
    except (OSError, UnicodeError) as exc:
        raise _invalid("webhook_url", f"The webhook host {host} could not be resolved ({exc}).") from exc
    try:
        check_addresses(host, addresses, allow_hosts)
    except RefusedTarget as exc:
        raise _invalid("webhook_url", f"webhook_url refused: {exc}.") from exc
    return target
