"""Dev-only reverse proxy: the Temporal UI and the codec server on one origin (``make run``).

Listens where the browser opens the Temporal UI; sends ``/codec`` and ``/codec/*`` to the API
and everything else to the dev server's own UI on an internal port. Being the same origin as
the UI, the codec gets the ``/codec/sign-in`` cookie from the UI's default ``credentials:
same-origin`` fetches: no per-browser "include credentials" setting. Requests and responses
stream through unchanged except for hop-by-hop headers; the browser's ``Host`` is kept, so the
API sees (and its same-origin checks compare against) this proxy's origin. Not for production.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx
import uvicorn
from starlette.types import Message, Receive, Scope, Send

CODEC_PREFIX = "/codec"
# RFC 9110 7.6.1 (plus the legacy Proxy-Connection); also whatever Connection names.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Connecting must be quick; a response may take as long as it takes (long polls).
TIMEOUT = httpx.Timeout(connect=5.0, read=None, write=60.0, pool=None)

log = logging.getLogger("devproxy")


def _hop_by_hop(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    named = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == b"connection"
        for token in value.split(b",")
    }
    return HOP_BY_HOP | named


def end_to_end(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` (lower-cased names, duplicates and order kept) without hop-by-hop ones."""
    pairs = [(name.lower(), value) for name, value in headers]
    drop = _hop_by_hop(pairs)
    return [(name, value) for name, value in pairs if name not in drop]


def is_codec(path: str) -> bool:
    return path == CODEC_PREFIX or path.startswith(CODEC_PREFIX + "/")


class DevProxy:
    """ASGI app: ``/codec`` and ``/codec/*`` to ``api``, every other path to ``ui``."""

    def __init__(self, api: str, ui: str, *, timeout: httpx.Timeout = TIMEOUT) -> None:
        self.api = httpx.URL(api)
        self.ui = httpx.URL(ui)
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # No env proxies, no redirects followed, no cookie jar: all that is the browser's.
            self._client = httpx.AsyncClient(
                timeout=self._timeout,
                trust_env=False,
                follow_redirects=False,
                cookies=httpx.Cookies(CookieJar(DefaultCookiePolicy(allowed_domains=[]))),
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._forward(scope, receive, send)
        else:  # websockets: the UI uses none
            raise RuntimeError(f"devproxy does not handle {scope['type']!r}")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _target(self, scope: Scope) -> tuple[str, httpx.URL]:
        path: str = scope["path"]
        name, base = ("API", self.api) if is_codec(path) else ("Temporal UI", self.ui)
        raw_path: bytes = scope.get("raw_path") or path.encode()
        query: bytes = scope.get("query_string", b"")
        return name, base.copy_with(raw_path=raw_path + (b"?" + query if query else b""))

    def _request_headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        headers = [
            (name, value)
            for name, value in end_to_end(scope["headers"])
            if name not in (b"x-forwarded-for", b"x-forwarded-proto", b"expect")
        ]
        client = scope.get("client")
        if client:
            headers.append((b"x-forwarded-for", client[0].encode()))
        headers.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
        return headers  # Host and Cookie stay as the browser sent them

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        name, url = self._target(scope)
        headers = self._request_headers(scope)
        has_body = any(n in (b"content-length", b"transfer-encoding") for n, _ in scope["headers"])
        # A bare Request: none of the client's default headers (Accept-Encoding, User-Agent).
        request = httpx.Request(
            scope["method"],
            url,
            headers=headers,
            content=_body(receive) if has_body else None,
        )
        try:
            response = await self._http().send(request, stream=True)
        except httpx.TransportError as exc:
            why = str(exc) or type(exc).__name__
            status = 504 if isinstance(exc, httpx.TimeoutException) else 502
            log.warning("%s %s -> %s: %s", scope["method"], url, name, why)
            await _plain(
                send,
                status,
                f"devproxy: the {name} at {url.scheme}://{url.netloc.decode()} did not answer "
                f"{scope['method']} {scope['path']}: {why}. Is it running? (see var/*.log)",
            )
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": end_to_end(response.headers.raw),  # every Set-Cookie
                }
            )
            async for chunk in response.aiter_raw():  # still compressed, if it was
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except httpx.TransportError as exc:  # too late for a 502: cut the response short
            log.warning("%s %s -> %s broke off: %s", scope["method"], url, name, exc)
        finally:
            await response.aclose()


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    """The request body as it arrives."""
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise httpx.ReadError("the browser went away while sending the body")
        chunk: bytes = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def _plain(send: Send, status: int, text: str) -> None:
    body = (text + "\n").encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="where to listen")
    parser.add_argument("--port", type=int, default=8233, help="the UI port browsers open")
    parser.add_argument("--api", default="http://127.0.0.1:8000", help="the API (for /codec)")
    parser.add_argument("--ui", default="http://127.0.0.1:8234", help="the dev server's own UI")
    parser.add_argument("--log-level", default="warning")
    return parser.parse_args()


def config(app: DevProxy, host: str, port: int, **options: Any) -> uvicorn.Config:
    """Uvicorn settings that leave the upstreams' headers alone."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        proxy_headers=False,  # the scope is the browser's connection, X-Forwarded-* is ours
        server_header=False,  # Server and Date come from the upstream
        date_header=False,
        ws="none",
        **options,
    )


def main() -> None:
    args = _args()
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    app = DevProxy(args.api, args.ui)
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config(app, args.host, args.port, log_level=args.log_level)).run()


if __name__ == "__main__":
    main()
