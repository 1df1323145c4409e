"""Sending one signed webhook delivery over HTTP, after checking where it would go.

The target's host is resolved before every attempt and refused when any of its addresses is
private, loopback or link-local (unless the setting allows them): a URL that was public when it
was registered cannot later reach the internal network. Redirects are not followed (a 3xx is a
final answer), so a receiver cannot bounce a delivery inward either.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from standardwebhooks.webhooks import Webhook

from domain.webhooks import TargetError, check_url, private_address

USER_AGENT = "Orderly-Webhooks/1"
MAX_ERROR = 300


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def signature_header(secrets_: list[str], msg_id: str, at: datetime, body: str) -> str:
    """``v1,<base64>`` per secret, space-separated (several while a secret rotates)."""
    return " ".join(Webhook(s).sign(msg_id, at, body) for s in secrets_)


class UnresolvedHost(TargetError):
    """The host did not resolve (maybe for now: a delivery retries)."""


async def check_target(url: str, *, allow_private: bool) -> None:
    """Raise :class:`TargetError` if ``url`` is malformed or (unless allowed) reaches a
    private, loopback or link-local address, or its host does not resolve."""
    scheme, host = check_url(url)
    if allow_private:
        return
    port = 443 if scheme == "https" else 80
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UnresolvedHost(f"host {host} does not resolve ({exc.strerror or exc})") from None
    for info in infos:
        why = private_address(str(info[4][0]))
        if why is not None:
            raise TargetError(
                f"host {host} is {why}; set ORDERLY_WEBHOOK_ALLOW_PRIVATE=true to allow it"
            )


@dataclass(frozen=True)
class Answer:
    """What the receiver did: its status (None: no answer), ``Retry-After``, the error when
    there was no answer, and how long it took."""

    status: int | None
    retry_after: str | None
    error: str | None
    latency_ms: int
    refused: bool = False  # the target may not be reached at all: final, never retried


class WebhookSender:
    def __init__(self, *, timeout: timedelta, allow_private: bool) -> None:
        self._timeout = timeout.total_seconds()
        self._allow_private = allow_private
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._timeout,
                follow_redirects=False,
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def send(self, url: str, headers: dict[str, str], body: str) -> Answer:
        """POST ``body`` once; never raises for what the receiver or the network did."""
        started = time.perf_counter()
        try:
            await check_target(url, allow_private=self._allow_private)
        except UnresolvedHost as exc:
            return Answer(None, None, str(exc), _ms(started))
        except TargetError as exc:
            return Answer(None, None, f"target refused: {exc}", 0, refused=True)
        try:
            response = await self._http().post(
                url,
                content=body.encode(),
                headers={
                    **headers,
                    "content-type": "application/json",
                    "user-agent": USER_AGENT,
                },
            )
        except httpx.TimeoutException:
            return Answer(None, None, f"no answer within {self._timeout:g} s", _ms(started))
        except httpx.HTTPError as exc:
            text = f"{type(exc).__name__}: {exc}"[:MAX_ERROR]
            return Answer(None, None, text, _ms(started))
        return Answer(response.status_code, response.headers.get("retry-after"), None, _ms(started))


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
