"""Outgoing email: the outbox (sealed, one row per key), templates, and the transports that
send it (SMTP through aiosmtplib; a directory of ``.eml`` files; or none: recorded only).

Recipient and bodies are personal data: the outbox keeps them sealed under the order's
customer's data key (db.vault), so erasing the customer shreds them too.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import aiosmtplib
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import OutboxRow
from db.principals import principal_address
from db.session import SessionFactory
from db.upsert import insert_for
from db.vault import Vault
from domain.mail import KINDS, Language, MailStatus, language_of, redact

TEMPLATES = Path(__file__).parent / "mail_templates"
LINK_LABELS: dict[Language, tuple[str, str]] = {  # (customer's link, staff's link)
    "en": ("Track your order", "Open the order"),
    "zh-CN": ("查看订单进度", "打开订单"),
}
DOWNLOAD_LABEL: dict[Language, str] = {"en": "Download", "zh-CN": "下载"}


@dataclass(frozen=True)
class Message:
    """An email as the outbox holds it (opened): ``body`` is the plain-text part."""

    key: str
    order_id: str | None
    kind: str
    recipient: str  # comma-separated
    subject: str
    body: str
    html: str | None = None
    language: str = "en"
    status: str = MailStatus.SENT.value
    attempts: int = 0
    last_error: str | None = None

    @property
    def recipients(self) -> list[str]:
        return [r for r in self.recipient.split(",") if r]


class Renderer:
    """Subject, text and HTML of a kind of message in a language, from the Jinja2 templates
    (``<language>/<kind>.txt.j2``: the subject on its first line, then the text;
    ``<language>/<kind>.html.j2``). A missing value is an error, never an empty string."""

    def __init__(self, root: Path = TEMPLATES) -> None:
        loader = FileSystemLoader(root)
        self._text = Environment(loader=loader, undefined=StrictUndefined, autoescape=False)
        self._html = Environment(
            loader=loader,
            undefined=StrictUndefined,
            autoescape=select_autoescape(enabled_extensions=("html.j2",)),
        )

    def render(
        self, kind: str, language: Language, values: dict[str, Any], *, staff: bool = False
    ) -> tuple[str, str, str]:
        if kind not in KINDS and kind != "notice":
            raise ValueError(f"no template for {kind!r}")
        ctx = {"name": None, "link": None, **values, "language": language}
        ctx["link_label"] = LINK_LABELS[language][1 if staff else 0]
        if kind == "report_ready":
            ctx["link_label"] = DOWNLOAD_LABEL[language]
        text = self._text.get_template(f"{language}/{kind}.txt.j2").render(ctx)
        subject, _, body = text.partition("\n\n")
        ctx["subject"] = subject.strip()
        html = self._html.get_template(f"{language}/{kind}.html.j2").render(ctx)
        return ctx["subject"], body.strip() + "\n", html


class SendError(Exception):
    """A failed send; ``code``: the SMTP reply code (None: no connection, timeout, dropped)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


def build(message: Message, sender: str) -> EmailMessage:
    """The MIME message: text and HTML alternatives; a Message-ID derived from the outbox key,
    so a copy sent twice (a worker died before recording) is recognisable as one."""
    mime = EmailMessage()
    mime["From"] = sender
    mime["To"] = ", ".join(message.recipients)
    mime["Subject"] = message.subject
    mime["Date"] = format_datetime(datetime.now(UTC))
    digest = hashlib.sha256(message.key.encode()).hexdigest()[:32]
    mime["Message-ID"] = f"<{digest}@{sender.rpartition('@')[2].rstrip('>') or 'orderly'}>"
    mime["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    mime.set_content(message.body)
    if message.html:
        mime.add_alternative(message.html, subtype="html")
    mime["Content-Language"] = message.language  # after the content: set_content drops it
    return mime


class Transport(Protocol):
    name: str

    async def send(self, mime: EmailMessage) -> None: ...


class SmtpTransport:
    """SMTP (RFC 5321): ``tls`` = starttls (port 587), tls (implicit, port 465) or none."""

    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        tls: Literal["starttls", "tls", "none"] = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        ca_file: Path | None = None,
    ) -> None:
        self._host, self._port, self._tls, self._timeout = host, port, tls, timeout
        self._username, self._password = username, password
        self._context = ssl.create_default_context(cafile=ca_file) if tls != "none" else None

    async def send(self, mime: EmailMessage) -> None:
        try:
            await aiosmtplib.send(
                mime,
                hostname=self._host,
                port=self._port,
                use_tls=self._tls == "tls",
                start_tls=self._tls == "starttls",
                tls_context=self._context,
                username=self._username,
                password=self._password,
                timeout=self._timeout,
            )
        # Error texts are stored and logged: addresses in them are redacted.
        except aiosmtplib.SMTPRecipientsRefused as exc:  # every recipient refused
            first = exc.recipients[0] if exc.recipients else None
            code, why = (first.code, first.message) if first else (550, "recipients refused")
            raise SendError(redact(f"{code} {why}"), code) from None
        except aiosmtplib.SMTPResponseException as exc:  # a reply code: 4xx or 5xx
            raise SendError(redact(f"{exc.code} {exc.message}"), exc.code) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise SendError(redact(f"{type(exc).__name__}: {exc}")) from None


class FileTransport:
    """One ``.eml`` file per message in ``directory`` (make run: open them in any mail client)."""

    name = "file"

    def __init__(self, directory: Path) -> None:
        self._dir = directory

    async def send(self, mime: EmailMessage) -> None:
        await asyncio.to_thread(self._write, mime)

    def _write(self, mime: EmailMessage) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        name = f"{stamp}-{str(mime['Message-ID']).strip('<>').split('@')[0][:12]}.eml"
        tmp = self._dir / f".{name}.tmp"
        tmp.write_bytes(mime.as_bytes())
        os.replace(tmp, self._dir / name)  # whole files only


class NoTransport:
    """Recorded in the outbox only (tests, or a deployment that sends no email)."""

    name = "outbox"

    async def send(self, mime: EmailMessage) -> None:  # noqa: ARG002
        return None


class MailOutbox:
    """The outbox table: add a message (once per key), read an order's messages."""

    def __init__(self, sessions: SessionFactory, vault: Vault) -> None:
        self._sessions = sessions
        self._vault = vault

    async def add_many(
        self, messages: Sequence[Message], owner: str, *, now: datetime | None = None
    ) -> None:
        """Queue the messages in one transaction (see :meth:`queue`)."""
        async with self._sessions.begin() as session:
            await self.queue(session, messages, owner, now=now)

    async def queue(
        self,
        session: AsyncSession,
        messages: Sequence[Message],
        owner: str,
        *,
        now: datetime | None = None,
    ) -> None:
        """Queue the messages (pending; failed ones recorded as they are), each once per key,
        in the caller's transaction. ``owner``: whose data key seals them (the order's
        customer; ``principal:<name>`` for a message to staff about no order)."""
        now = now or datetime.now(UTC)
        seal = self._vault.seal_text
        for message in messages:
            failed = message.status == MailStatus.FAILED.value
            stmt = insert_for(session, OutboxRow).values(
                key=message.key,
                order_id=message.order_id,
                kind=message.kind,
                owner=owner,
                recipient=await seal(session, owner, message.recipient),
                language=message.language,
                subject=message.subject[:300],
                body=await seal(session, owner, message.body),
                html=await seal(session, owner, message.html) if message.html else None,
                status=message.status,
                attempts=0,
                next_attempt_at=None if failed else now,
                last_error=message.last_error,
                created_at=now,
            )
            await session.execute(stmt.on_conflict_do_nothing(index_elements=["key"]))

    async def queue_for_principal(
        self,
        session: AsyncSession,
        renderer: Renderer,
        *,
        principal: str,
        kind: str,
        key: str,
        values: dict[str, Any],
    ) -> None:
        """Queue a staff email about no order to a principal (a console user's or API key's
        address, in their language), in the caller's transaction; recorded failed when the
        principal has no address."""
        found = await principal_address(session, principal)
        address, tag = found or ("", "en")
        language = language_of(tag)
        subject, text, html = renderer.render(kind, language, values, staff=True)
        message = Message(
            key=key,
            order_id=None,
            kind=kind,
            recipient=address,
            subject=subject,
            body=text,
            html=html,
            language=language,
            status=(MailStatus.PENDING if address else MailStatus.FAILED).value,
            last_error=None if address else f"{principal} has no email address",
        )
        await self.queue(session, [message], owner=f"principal:{principal}")

    async def opened(self, rows: list[OutboxRow]) -> list[Message]:
        async with self._sessions() as session:
            tos = await self._vault.open_texts(
                session, [(r.owner, r.recipient) for r in rows], "email"
            )
            bodies = await self._vault.open_texts(session, [(r.owner, r.body) for r in rows])
            htmls = await self._vault.open_texts(session, [(r.owner, r.html or "") for r in rows])
        return [
            Message(
                key=r.key,
                order_id=r.order_id,
                kind=r.kind,
                recipient=to,
                subject=r.subject,
                body=body,
                html=html or None,
                language=r.language,
                status=r.status,
                attempts=r.attempts,
                last_error=r.last_error,
            )
            for r, to, body, html in zip(rows, tos, bodies, htmls, strict=True)
        ]

    async def opened_by_key(self, keys: Sequence[str]) -> list[Message]:
        async with self._sessions() as session:
            rows = list(await session.scalars(select(OutboxRow).where(OutboxRow.key.in_(keys))))
        return await self.opened(rows)

    async def sent(self, order_id: str) -> list[Message]:
        """Every message of an order (whatever its status), oldest first, opened (erased ones
        as placeholders)."""
        async with self._sessions() as session:
            rows = list(
                await session.scalars(
                    select(OutboxRow)
                    .where(OutboxRow.order_id == order_id)
                    .order_by(OutboxRow.created_at, OutboxRow.key)
                )
            )
        return await self.opened(rows)
