"""Email end to end: orders on a real Temporal server, the mail consumer workflow, and a real
SMTP server in-process (aiosmtpd) that accepts, defers (451) or refuses (550) recipients."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from db import cursors
from db.models import CustomerRow
from domain.order import OrderSpec
from domain.status import OrderStatus as S
from integrations.mail import Message
from tests.conftest import Stack
from tests.factories import order_payload, order_spec
from tests.helpers import deliver, eventually, start_order, wait_status
from workflows.mail import start_mail_dispatch


@dataclass
class Recorder:
    """An SMTP handler: ``defer`` recipients answer 451 that many times, ``refuse`` ones 550."""

    received: list[EmailMessage] = field(default_factory=list)
    defer: dict[str, int] = field(default_factory=dict)
    refuse: set[str] = field(default_factory=set)

    async def handle_RCPT(
        self, _server: SMTP, _session: Session, envelope: Envelope, address: str, _options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        if self.defer.get(address, 0) > 0:
            self.defer[address] -= 1
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(parsed)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Recorder, int]]:
    recorder = Recorder()
    port = _free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield recorder, port
    finally:
        controller.stop()


@pytest.fixture
def settings_overrides(smtp: tuple[Recorder, int]) -> dict[str, object]:
    return {
        "mail_transport": "smtp",
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp[1],
        "smtp_tls": "none",
        "mail_from": "Orderly <orders@shop.example>",
        "mail_retry_schedule": ["PT1S", "PT1S"],  # three attempts, a second apart
        "mail_poll": "PT0.2S",
    }


@pytest.fixture
async def mail_stack(stack: Stack) -> Stack:
    """``stack`` with the mail consumer workflow running on its worker."""
    await start_mail_dispatch(stack.client, stack.settings)
    return stack


async def _outbox(stack: Stack, order_id: str, kind: str, status: str) -> Message:
    async def probe() -> list[Message]:
        return await stack.mailer.activities.outbox.sent(order_id)

    found = await eventually(
        probe,
        lambda ms: any(m.kind == kind and m.status == status for m in ms),
        timeout=30,
        what=f"{kind} {status}",
    )
    return next(m for m in found if m.kind == kind)


def _spec(**customer: str) -> OrderSpec:
    payload = order_payload()
    payload["customer"].update(customer)
    return OrderSpec.model_validate(payload)


def _parts(mime: EmailMessage) -> tuple[str, str]:
    text = mime.get_body(("plain",))
    html = mime.get_body(("html",))
    assert text is not None
    assert html is not None
    return text.get_content(), html.get_content()


async def test_delivered_order_mails_the_customer_in_their_language(
    mail_stack: Stack, smtp: tuple[Recorder, int]
) -> None:
    recorder, _ = smtp
    handle = await start_order(mail_stack, _spec(language="zh-CN"))
    await wait_status(handle, S.FULFILLING)
    await deliver(handle)
    done = await handle.result()
    stored = await _outbox(mail_stack, done.id, "delivered", "sent")
    assert stored.attempts == 1
    [mime] = [m for m in recorder.received if done.id in str(m["Subject"])]
    assert mime["Subject"] == f"订单 {done.id} 已送达"
    assert mime["To"] == "ada@example.com"
    assert mime["From"] == "Orderly <orders@shop.example>"
    assert mime["Content-Language"] == "zh-CN"
    text, html = _parts(mime)
    assert text.startswith("Ada Lovelace，您好：")  # noqa: RUF001
    assert f"您的订单 {done.id} 已送达。" in text
    assert "/track/" in text  # the customer's tracking link
    assert '<html lang="zh-CN">' in html
    assert "/track/" in html
    assert mime["Message-ID"].startswith("<")


async def test_a_deferred_recipient_is_retried_and_a_refused_one_recorded(
    mail_stack: Stack, smtp: tuple[Recorder, int]
) -> None:
    recorder, _ = smtp
    recorder.defer["slow@example.com"] = 2  # 451 twice, then accepted
    recorder.refuse.add("gone@example.com")
    # The customer record's language decides when the order names none.
    sealed_by = mail_stack.vault.seal_text
    async with mail_stack.sessions.begin() as session:
        now = datetime.now(UTC)
        session.add(
            CustomerRow(
                id="C-slow",
                name=await sealed_by(session, "C-slow", "Slow Poke"),
                email=await sealed_by(session, "C-slow", "slow@example.com"),
                region="EU-WEST",
                tier="standard",
                tags=[],
                language="en",
                created_at=now,
                updated_at=now,
            )
        )
    slow = _spec(id="C-slow", email="slow@example.com")
    gone = _spec(email="gone@example.com")
    handles = [await start_order(mail_stack, spec) for spec in (slow, gone)]
    for handle in handles:
        await wait_status(handle, S.FULFILLING)
        await deliver(handle)
    # A refused email never holds an order back: both complete.
    finals = await asyncio.gather(*(h.result() for h in handles))
    assert [f.status.value for f in finals] == ["completed", "completed"]

    sent = await _outbox(mail_stack, finals[0].id, "delivered", "sent")
    assert sent.attempts == 3  # two 451s, then accepted
    assert sent.last_error is not None
    assert sent.last_error.startswith("451")
    assert sent.language == "en"
    failed = await _outbox(mail_stack, finals[1].id, "delivered", "failed")
    assert failed.attempts == 1  # 550 is permanent: not retried
    assert failed.last_error is not None
    assert "550" in failed.last_error
    got = [m for m in recorder.received if finals[0].id in str(m["Subject"])]
    assert len(got) == 1
    assert not [m for m in recorder.received if finals[1].id in str(m["Subject"])]


async def test_a_server_deferring_for_good_is_retried_to_the_end_then_recorded(
    mail_stack: Stack, smtp: tuple[Recorder, int]
) -> None:
    recorder, _ = smtp
    recorder.defer["ada@example.com"] = 99  # the server defers for good
    handle = await start_order(mail_stack, order_spec())
    await wait_status(handle, S.FULFILLING)
    await deliver(handle)
    done = await handle.result()
    assert done.status.value == "completed"
    failed = await _outbox(mail_stack, done.id, "delivered", "failed")
    assert failed.attempts == 3  # the first try and the schedule's two retries
    assert failed.last_error is not None
    assert failed.last_error.startswith("451")


async def test_orders_from_before_the_consumer_started_are_not_mailed(stack: Stack) -> None:
    """Turning email on (or seeding a demo history) sends nothing about earlier orders."""
    earlier = await start_order(stack, order_spec())
    await wait_status(earlier, S.FULFILLING)
    async with stack.sessions.begin() as session:
        await cursors.start_at_end(session, cursors.MAIL)
    await deliver(earlier)
    later = await start_order(stack, order_spec())
    await wait_status(later, S.FULFILLING)
    await deliver(later)
    for handle in (earlier, later):
        await handle.result()
    assert await stack.mailer.sent(earlier.id) == []
    assert [m.kind for m in await stack.mailer.sent(later.id)] == ["delivered"]


async def test_an_erased_customer_is_not_written_to(stack: Stack) -> None:
    handle = await start_order(stack, order_spec())
    await wait_status(handle, S.FULFILLING)
    await deliver(handle)
    done = await handle.result()
    async with stack.sessions.begin() as session:  # erasure shreds the customer's data key
        assert await stack.vault.shred(session, done.customer.id)
    [mail] = await stack.mailer.sent(done.id)
    assert (mail.kind, mail.status, mail.recipient) == ("delivered", "failed", "")
    assert mail.last_error == "the customer's personal data was erased"
