"""``Server-Timing: app;dur=<ms>`` on console answers: the server's time until the answer's
headers (for a page, its whole rendering), readable in the browser's network panel and by
bench/console.py."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFIXES = ("/console", "/track")


class ServerTiming:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith(PREFIXES):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                took = (time.perf_counter() - started) * 1000
                headers = list(message.get("headers", []))
                headers.append((b"server-timing", f"app;dur={took:.1f}".encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, timed)
