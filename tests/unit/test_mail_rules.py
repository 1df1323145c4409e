"""Email rules, templates and MIME: pure, plus the file and SMTP transports' failures."""

from __future__ import annotations

import email
import email.policy
import socket
from pathlib import Path
from typing import Any

import pytest

from domain.mail import (
    KINDS,
    LANGUAGES,
    TRIGGERS,
    approval_level,
    language_of,
    mail_key,
    mask,
    redact,
    smtp_verdict,
)
from integrations.mail import FileTransport, Message, Renderer, SendError, SmtpTransport, build

VALUES: dict[str, Any] = {
    "order_id": "SO-1",
    "total": "1,234.50",
    "currency": "EUR",
    "reason": "customer asked",
    "step": "refund_payment",
    "due_at": "2026-12-06 10:00 UTC",
    "tracking": "SIM-1",
    "name": "Ada",
    "level": 2,
    "from_level": 1,
    "level_name": "manager",
    "expire_at": "2026-12-09 10:00 UTC",
    "endpoint_id": "wh_1",
    "url": "https://hooks.example/x",
    "link": "https://shop.example/track/abc",
    "report": "sales",
    "period": "2026-11-23/2026-11-30",
    "rows": 12,
    "format": "CSV",
}


@pytest.mark.parametrize(
    ("tag", "language"),
    [
        ("zh", "zh-CN"),
        ("zh-CN", "zh-CN"),
        ("zh_Hans", "zh-CN"),
        ("en", "en"),
        ("de", "en"),
        (None, "en"),
        ("", "en"),
    ],
)
def test_languages(tag: str | None, language: str) -> None:
    assert language_of(tag) == language


def test_smtp_verdicts_follow_rfc_5321() -> None:
    assert smtp_verdict(None) == "retry"  # no connection, timeout
    assert smtp_verdict(421) == "retry"
    assert smtp_verdict(451) == "retry"
    assert smtp_verdict(550) == "failed"
    assert smtp_verdict(554) == "failed"


def test_keys_levels_masks_and_redaction() -> None:
    assert mail_key("SO-1", 7, "delivered") == "SO-1:7:delivered"
    assert approval_level("approval_reminder_sent", {"level": 1}) == 1
    assert approval_level("approval_escalated", {"level": 1, "to_level": 3}) == 3
    assert mask("ada@example.com") == "a***@example.com"
    assert mask("nonsense") == "***"
    said = redact("550 5.1.1 <ada@example.com>: no such user; bob@x.io too")
    assert "@" not in said
    assert said == "550 5.1.1 <address>: no such user; <address> too"
    assert {t.kind for t in TRIGGERS.values()} <= KINDS


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_renders_in_every_language(kind: str, language: str) -> None:
    subject, text, html = Renderer().render(kind, language, VALUES)
    assert subject
    assert "\n" not in subject
    assert "{{" not in text + html
    assert {"SO-1", "wh_1", "sales"} & set(subject.split())
    assert f'<html lang="{language}">' in html
    assert text.endswith("\n")


def test_a_missing_value_is_an_error_not_a_blank() -> None:
    with pytest.raises(Exception, match="order_id"):
        Renderer().render("delivered", "en", {"name": None})


def test_html_is_escaped_and_text_is_not() -> None:
    values = VALUES | {"reason": "<script>x</script> & co"}
    _, text, html = Renderer().render("cancelled", "en", values)
    assert "<script>x</script> & co" in text
    assert "&lt;script&gt;x&lt;/script&gt; &amp; co" in html
    assert "<script>" not in html


def test_staff_and_customers_get_their_own_link_label() -> None:
    _, customer, _ = Renderer().render("delivered", "en", VALUES)
    _, staff, _ = Renderer().render("delivery_overdue", "zh-CN", VALUES, staff=True)
    assert "Track your order: https://shop.example/track/abc" in customer
    assert "打开订单: https://shop.example/track/abc" in staff


def _message(**changes: Any) -> Message:
    base: dict[str, Any] = {
        "key": "SO-1:7:delivered",
        "order_id": "SO-1",
        "kind": "delivered",
        "recipient": "ada@example.com,bob@example.com",
        "subject": "订单 SO-1 已送达",
        "body": "text part\n",
        "html": "<p>html part</p>",
        "language": "zh-CN",
    }
    return Message(**(base | changes))


def test_mime_has_both_parts_headers_and_a_stable_message_id() -> None:
    mime = build(_message(), "Orderly <orders@shop.example>")
    again = build(_message(), "Orderly <orders@shop.example>")
    assert mime["Message-ID"] == again["Message-ID"]
    assert str(mime["Message-ID"]).endswith("@shop.example>")
    assert build(_message(key="SO-1:8:x"), "o@x.io")["Message-ID"] != mime["Message-ID"]
    parsed = email.message_from_bytes(mime.as_bytes(), policy=email.policy.default)
    assert parsed["To"] == "ada@example.com, bob@example.com"
    assert parsed["Subject"] == "订单 SO-1 已送达"
    assert parsed["Content-Language"] == "zh-CN"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed.get_content_type() == "multipart/alternative"
    plain = parsed.get_body(("plain",))  # type: ignore[attr-defined]
    rich = parsed.get_body(("html",))  # type: ignore[attr-defined]
    assert plain.get_content() == "text part\n"
    assert "html part" in rich.get_content()
    text_only = build(_message(html=None), "o@x.io")
    assert text_only.get_content_type() == "text/plain"


async def test_file_transport_writes_whole_eml_files(tmp_path: Path) -> None:
    transport = FileTransport(tmp_path / "mail")
    await transport.send(build(_message(), "o@x.io"))
    [written] = list((tmp_path / "mail").iterdir())
    assert written.suffix == ".eml"
    parsed = email.message_from_bytes(written.read_bytes(), policy=email.policy.default)
    assert parsed["Subject"] == "订单 SO-1 已送达"


async def test_no_server_listening_is_a_transient_failure() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nobody listens there
    transport = SmtpTransport("127.0.0.1", port, tls="none", timeout=5)
    with pytest.raises(SendError) as caught:
        await transport.send(build(_message(), "o@x.io"))
    assert caught.value.code is None
    assert smtp_verdict(caught.value.code) == "retry"
    assert "@" not in str(caught.value)
