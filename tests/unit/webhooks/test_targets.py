"""Webhook targets: URL and event validation, and the address guard (every loopback, private and link-local
form, literal or behind a name, is refused unless its host is allowed)."""

from __future__ import annotations

import ipaddress

import pytest

from image2model.api.webhooks.targets import (
    DEFAULT_EVENTS,
    RefusedTarget,
    address_problem,
    allow_list,
    check_addresses,
    parse_events,
    parse_target,
)
from image2model.core.errors import ValidationFailed

REFUSED = [
    "127.0.0.1",
    "127.255.0.9",
    "0.0.0.0",
    "10.1.2.3",
    "172.16.5.4",
    "192.168.0.1",
    "169.254.169.254",
    "100.64.0.1",
    "224.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",
    "64:ff9b::7f00:1",
    "2002:7f00:1::",
    "2001:db8::1",
]
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:93.184.216.34", "64:ff9b::808:808"]


@pytest.mark.parametrize("text", REFUSED)
def test_loopback_private_link_local_and_embedded_forms_are_refused(text):
    assert address_problem(ipaddress.ip_address(text)) is not None


@pytest.mark.parametrize("text", PUBLIC)
def test_public_addresses_pass(text):
    assert address_problem(ipaddress.ip_address(text)) is None


def fake_dns(table: dict[str, list[str]]):
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(-2, "Name or service not known")
        return table[host]

    return resolve


DNS = fake_dns(
    {
        "hooks.example.com": ["93.184.216.34"],
        "intranet.example.com": ["10.0.0.5"],
        "sneaky.example.com": ["93.184.216.34", "127.0.0.1"],
        "mapped.example.com": ["::ffff:127.0.0.1"],
        "metadata.example.com": ["169.254.169.254"],
    }
)


@pytest.mark.parametrize(
    "url",
    [
        "http://intranet.example.com/hook",
        "https://sneaky.example.com/hook",
        "http://mapped.example.com/",
        "http://metadata.example.com/latest",
        "http://127.0.0.1:8080/",
        "http://[::1]/",
        "http://[::ffff:7f00:1]/",
        "http://[fe80::1%25eth0]/",
    ],
)
def test_names_and_literals_that_land_on_forbidden_addresses_are_refused_with_400(url):
    with pytest.raises(ValidationFailed) as info:
        parse_target(url, None, frozenset(), DNS)
    assert info.value.status_code == 400
    assert info.value.details["errors"][0]["field"] == "webhook_url"
    assert "IMAGE2MODEL_WEBHOOK_ALLOW_HOSTS" in info.value.message


def test_a_public_name_is_accepted_with_the_default_terminal_events():
    target = parse_target("https://hooks.example.com/in#frag", None, frozenset(), DNS)
    assert target is not None
    assert target.url == "https://hooks.example.com/in"
    assert target.events == DEFAULT_EVENTS == ("task_completed", "task_failed", "task_cancelled")


def test_allowed_hosts_skip_the_address_check_by_name_or_literal():
    allowed = allow_list(["Intranet.Example.com.", "[::1]", " 127.0.0.1 "])
    assert parse_target("http://intranet.example.com/h", None, allowed, DNS) is not None
    assert parse_target("http://[::1]:9000/h", None, allowed, DNS) is not None
    assert parse_target("http://127.0.0.1/h", None, allowed, DNS) is not None
    with pytest.raises(ValidationFailed):
        parse_target("http://127.0.0.2/h", None, allowed, DNS)


def test_a_host_that_does_not_resolve_is_a_400_naming_it():
    with pytest.raises(ValidationFailed, match="nowhere.example.com could not be resolved"):
        parse_target("http://nowhere.example.com/", None, frozenset(), DNS)


@pytest.mark.parametrize(
    "url, message",
    [
        ("ftp://hooks.example.com/x", "http:// or https://"),
        ("hooks.example.com/x", "http:// or https://"),
        ("http:///path", "no host"),
        ("http://hooks.example.com:99999/", "not a valid URL"),
        ("http://hooks.example.com/a b", "spaces"),
        ("http://hooks.example.com/" + "a" * 2100, "longer than"),
    ],
)
def test_malformed_urls_are_400(url, message):
    with pytest.raises(ValidationFailed, match=message):
        parse_target(url, None, frozenset(), DNS)


def test_events_are_checked_and_unknown_names_listed():
    assert parse_events("task_queued, FILE_UPDATE,task_queued") == ("task_queued", "file_update")
    with pytest.raises(ValidationFailed) as info:
        parse_events("task_done,task_completed,queue_position")
    assert "task_done, queue_position" in info.value.message
    assert info.value.details["errors"][0]["field"] == "webhook_events"


def test_events_without_a_url_are_refused_and_no_url_is_no_webhook():
    assert parse_target(None, None, frozenset(), DNS) is None
    assert parse_target("  ", "", frozenset(), DNS) is None
    with pytest.raises(ValidationFailed, match="needs a webhook_url"):
        parse_target("", "task_completed", frozenset(), DNS)


def test_one_forbidden_address_among_public_ones_refuses_the_host():
    with pytest.raises(RefusedTarget, match=r"sneaky.example.com \(127.0.0.1\) is a loopback address"):
        check_addresses("sneaky.example.com", ["93.184.216.34", "127.0.0.1"], frozenset())
