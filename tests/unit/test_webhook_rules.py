"""Outbound webhook rules: what is retried and when, which targets are refused, signing."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from db.vault import without_pii
from domain.webhooks import (
    TargetError,
    Verdict,
    check_url,
    classify,
    message_id,
    next_wait,
    parse_retry_after,
    private_address,
)
from integrations.webhooks import UnresolvedHost, check_target, new_secret, signature_header

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, Verdict.DELIVERED),
        (204, Verdict.DELIVERED),
        (299, Verdict.DELIVERED),
        (301, Verdict.FAILED),  # redirects are not followed
        (400, Verdict.FAILED),
        (401, Verdict.FAILED),
        (404, Verdict.FAILED),
        (408, Verdict.RETRY),
        (410, Verdict.GONE),
        (422, Verdict.FAILED),
        (429, Verdict.RETRY),
        (500, Verdict.RETRY),
        (502, Verdict.RETRY),
        (503, Verdict.RETRY),
        (None, Verdict.RETRY),  # timeout, refused or reset connection
    ],
)
def test_answers_are_delivered_retried_or_final(status: int | None, verdict: Verdict) -> None:
    assert classify(status, now=NOW).verdict is verdict


def test_retry_after_is_honoured_on_429_and_503_only() -> None:
    assert classify(429, "120", now=NOW).retry_after == timedelta(seconds=120)
    assert classify(503, "7", now=NOW).retry_after == timedelta(seconds=7)
    assert classify(500, "120", now=NOW).retry_after is None
    http_date = "Thu, 03 Dec 2026 12:05:00 GMT"
    assert parse_retry_after(http_date, NOW) == timedelta(minutes=5)
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after("999999999", NOW) == timedelta(hours=24)  # capped
    assert parse_retry_after("Thu, 03 Dec 2026 11:00:00 GMT", NOW) == timedelta(0)


def test_retry_waits_follow_the_schedule_with_jitter_then_end() -> None:
    schedule = (timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30))
    rng = random.Random(1)
    for attempts, base in enumerate(schedule, start=1):
        for _ in range(50):
            wait = next_wait(schedule, attempts, rng)
            assert wait is not None
            assert base * 0.9 <= wait <= base * 1.1
    waits = {next_wait(schedule, 1, rng) for _ in range(20)}
    assert len(waits) > 1  # jittered: receivers are not hit in lockstep
    assert next_wait(schedule, 4, rng) is None  # the schedule is over: dead letter
    # A receiver asking for longer gets it; asking for shorter does not shorten the schedule.
    assert next_wait(schedule, 1, rng, timedelta(minutes=10)) == timedelta(minutes=10)
    shorter = next_wait(schedule, 2, rng, timedelta(seconds=1))
    assert shorter is not None
    assert shorter >= timedelta(minutes=4.5)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/hook", "http:// or https://"),
        ("example.com/hook", "http:// or https://"),
        ("https:///hook", "no host"),
        ("https://user:pw@example.com/hook", "credentials"),
        ("https://example.com/hook#x", "fragment"),
        ("https://example.com:99999/hook", "not a URL"),
        ("https://" + "a" * 2000 + ".com", "at most"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(TargetError, match=reason):
        check_url(url)


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.9", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1", "link-local"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("0.0.0.0", "private or reserved"),
        ("fc00::1", "private"),
    ],
)
def test_private_addresses_are_named(address: str, why: str) -> None:
    reason = private_address(address)
    assert reason is not None
    assert why in reason
    assert private_address("93.184.216.34") is None


async def test_targets_resolving_to_private_addresses_are_refused_unless_allowed() -> None:
    for url in ("http://127.0.0.1:8080/x", "http://localhost/x", "http://[::1]/x"):
        with pytest.raises(TargetError, match="ORDERLY_WEBHOOK_ALLOW_PRIVATE"):
            await check_target(url, allow_private=False)
        await check_target(url, allow_private=True)
    with pytest.raises(UnresolvedHost, match="does not resolve"):
        await check_target("https://no-such-host.invalid/x", allow_private=False)


def test_signatures_verify_with_the_standard_webhooks_library_for_every_secret() -> None:
    old, new = new_secret(), new_secret()
    assert old.startswith("whsec_")
    assert old != new
    body = '{"type":"order.created"}'
    msg_id = message_id("SO-1", 3)
    now = datetime.now(UTC)
    header = signature_header([new, old], msg_id, now, body)
    assert header.count("v1,") == 2
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": header,
    }
    for secret in (new, old):  # a receiver holding either secret accepts it
        assert Webhook(secret).verify(body, headers) == {"type": "order.created"}
    with pytest.raises(Exception, match="signature"):
        Webhook(new_secret()).verify(body, headers)


def test_payloads_leave_customer_data_out() -> None:
    stored = {
        "type": "created",
        "customer": {"id": "C-1", "name": "Ada", "email": "ada@example.com", "tier": "vip"},
        "shipping_address": {"name": "Ada", "line1": "12 Row", "city": "London", "country": "GB"},
        "lines": [{"sku": "W-1", "quantity": 2}],
        "_pii": "sealed-blob",
    }
    thin = without_pii(stored)
    assert thin == {
        "type": "created",
        "customer": {"id": "C-1", "tier": "vip"},
        "shipping_address": {"country": "GB"},
        "lines": [{"sku": "W-1", "quantity": 2}],
    }
