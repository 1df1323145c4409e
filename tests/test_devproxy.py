"""devproxy.py in front of two real HTTP servers: a stand-in API (/codec) and a stand-in UI.

Everything runs with uvicorn on the test's event loop: the proxy as ``make run`` configures it
(``devproxy.config``), the upstreams as tiny Starlette apps that echo what reached them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

import devproxy
from tests.http_servers import serve

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@dataclass
class Gates:
    """Events shared by the upstreams and the test, to prove that bodies stream."""

    first_chunk_read: asyncio.Event = field(default_factory=asyncio.Event)
    client_got_chunk: asyncio.Event = field(default_factory=asyncio.Event)


async def echo(request: Request, upstream: str) -> JSONResponse:
    body = await request.body()
    return JSONResponse(
        {
            "upstream": upstream,
            "method": request.method,
            "path": request.url.path,
            "raw_path": request.scope["raw_path"].decode(),
            "query": request.url.query,
            "host": request.headers.get("host"),
            "cookie": request.headers.get("cookie"),
            "headers": [name for name, _ in request.headers.items()],
            "forwarded_for": request.headers.get("x-forwarded-for"),
            "body": body.decode(errors="replace"),
        },
        headers={"X-Upstream": upstream},
    )


def fake_api(gates: Gates) -> Starlette:
    """Stands in for the API: a sign-in that sets cookies, an echo, streaming both ways."""

    async def sign_in(_: Request) -> Response:
        response = RedirectResponse("/codec/sign-in", status_code=303)
        response.set_cookie(
            "orderly_session", "sealed", path="/codec", httponly=True, samesite="strict"
        )
        response.set_cookie("second", "two", path="/codec")
        return response

    async def stream(_: Request) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first;"
            # The proxy must pass the first chunk on before the upstream has finished.
            await asyncio.wait_for(gates.client_got_chunk.wait(), timeout=10)
            yield b"second"

        return StreamingResponse(chunks(), media_type="text/plain")

    async def upload(request: Request) -> JSONResponse:
        digest, size = hashlib.sha256(), 0
        async for chunk in request.stream():
            if chunk and not gates.first_chunk_read.is_set():
                gates.first_chunk_read.set()
            digest.update(chunk)
            size += len(chunk)
        return JSONResponse({"size": size, "sha256": digest.hexdigest()})

    async def codec_echo(request: Request) -> JSONResponse:
        return await echo(request, "api")

    return Starlette(
        routes=[
            Route("/codec/sign-in", sign_in, methods=["POST"]),
            Route("/codec/stream", stream),
            Route("/codec/upload", upload, methods=["POST"]),
            Route("/codec", codec_echo, methods=METHODS),
            Route("/codec/{rest:path}", codec_echo, methods=METHODS),
        ]
    )


def fake_ui() -> Starlette:
    """Stands in for the dev server's UI: echoes any path, serves one gzipped page."""

    async def page(_: Request) -> Response:
        text = "<html>" + "Temporal UI " * 2000 + "</html>"
        return Response(
            gzip.compress(text.encode()),
            media_type="text/html",
            headers={"Content-Encoding": "gzip"},
        )

    async def ui_echo(request: Request) -> JSONResponse:
        return await echo(request, "ui")

    return Starlette(routes=[Route("/page", page), Route("/{rest:path}", ui_echo, methods=METHODS)])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def upstream(app: ASGIApp) -> uvicorn.Config:
    return uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")


@contextlib.asynccontextmanager
async def proxy(api: str, ui: str) -> AsyncIterator[str]:
    app = devproxy.DevProxy(api, ui)
    config = devproxy.config(app, "127.0.0.1", 0, log_level="warning", access_log=False)
    async with serve(config) as url:
        yield url


@dataclass
class Stack:
    url: str  # the proxy
    gates: Gates


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    gates = Gates()
    async with (
        serve(upstream(fake_api(gates))) as api,
        serve(upstream(fake_ui())) as ui,
        proxy(api, ui) as url,
    ):
        yield Stack(url, gates)


@pytest.mark.parametrize(
    ("path", "where"),
    [
        ("/codec", "api"),
        ("/codec/decode", "api"),
        ("/codec/a/b?x=1", "api"),
        ("/", "ui"),
        ("/codecs", "ui"),
        ("/namespaces/default/workflows", "ui"),
        ("/api/v1/namespaces/default/workflows?query=a%20b&x=1", "ui"),
    ],
)
async def test_routes_by_path(stack: Stack, path: str, where: str) -> None:
    async with httpx.AsyncClient(base_url=stack.url) as http:
        response = await http.get(path)
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["upstream"] == where
    assert response.headers["x-upstream"] == where
    target, _, query = path.partition("?")
    assert seen["raw_path"] == target
    assert seen["query"] == query


async def test_keeps_encoded_paths_methods_and_bodies(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url) as http:
        response = await http.put("/api/v1/workflows/SO%2F1%3Fx", content=b"payload")
        codec = await http.post("/codec/decode", json={"payloads": []})
    seen = response.json()
    assert (seen["method"], seen["raw_path"], seen["body"]) == (
        "PUT",
        "/api/v1/workflows/SO%2F1%3Fx",
        "payload",
    )
    assert codec.json()["body"] == '{"payloads":[]}'


async def test_sign_in_cookie_round_trip(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url) as http:
        signed_in = await http.post("/codec/sign-in", data={"api_key": "k"})
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == "/codec/sign-in"  # not rewritten, not followed
        set_cookies = signed_in.headers.get_list("set-cookie")
        assert len(set_cookies) == 2, set_cookies  # every Set-Cookie comes back
        session = next(c for c in set_cookies if c.startswith("orderly_session="))
        for attribute in ("HttpOnly", "SameSite=strict", "Path=/codec"):
            assert attribute.lower() in session.lower(), session
        # The client's jar sends them back on /codec paths only, as a browser does.
        on_codec = (await http.get("/codec/decode")).json()
        on_ui = (await http.get("/namespaces/default")).json()
    assert on_codec["upstream"] == "api"
    assert sorted(on_codec["cookie"].split("; ")) == ["orderly_session=sealed", "second=two"]
    assert on_ui["cookie"] is None


async def test_keeps_the_browsers_host_and_drops_hop_by_hop_headers(stack: Stack) -> None:
    proxy_netloc = stack.url.removeprefix("http://")
    headers = {
        "Connection": "keep-alive, X-Private-Hop",
        "X-Private-Hop": "1",
        "Keep-Alive": "timeout=5",
        "X-Forwarded-For": "6.6.6.6",
        "X-End-To-End": "kept",
        "Origin": stack.url,
    }
    async with httpx.AsyncClient(base_url=stack.url) as http:
        seen = (await http.get("/codec/echo", headers=headers)).json()
        other = (await http.get("/", headers={"Host": "ui.example:8233"})).json()
    assert seen["host"] == proxy_netloc  # what the API's same-origin check sees
    assert other["host"] == "ui.example:8233"
    assert "x-end-to-end" in seen["headers"]
    assert "origin" in seen["headers"]
    for hop in ("x-private-hop", "keep-alive", "connection", "transfer-encoding"):
        assert hop not in seen["headers"], seen["headers"]
    assert seen["forwarded_for"] == "127.0.0.1"  # the proxy's own view, not the client's say


async def test_streams_the_response(stack: Stack) -> None:
    async with (
        httpx.AsyncClient(base_url=stack.url) as http,
        http.stream("GET", "/codec/stream") as response,
    ):
        assert response.status_code == 200
        chunks = response.aiter_bytes()
        first = await asyncio.wait_for(anext(chunks), timeout=10)
        assert first == b"first;"  # before the upstream has sent the rest
        stack.gates.client_got_chunk.set()
        rest = b"".join([chunk async for chunk in chunks])
    assert rest == b"second"


async def test_streams_the_request_body(stack: Stack) -> None:
    chunk = bytes(range(256)) * 1024  # 256 KiB
    digest = hashlib.sha256()

    async def body() -> AsyncIterator[bytes]:
        digest.update(chunk)
        yield chunk
        # The upstream must get the first chunk before the client has sent the rest.
        await asyncio.wait_for(stack.gates.first_chunk_read.wait(), timeout=10)
        for _ in range(11):
            digest.update(chunk)
            yield chunk

    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as http:
        response = await http.post("/codec/upload", content=body())
    assert response.status_code == 200, response.text
    assert response.json() == {"size": 12 * len(chunk), "sha256": digest.hexdigest()}


async def test_passes_compressed_bodies_through(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url) as http:
        response = await http.get("/page", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert int(response.headers["content-length"]) < len(response.content)  # still compressed
    assert response.text.count("Temporal UI") == 2000


@pytest.mark.parametrize(("path", "name"), [("/codec/decode", "API"), ("/", "Temporal UI")])
async def test_502_when_the_upstream_is_down(path: str, name: str) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    async with (
        serve(upstream(fake_ui())) as ui,
        serve(upstream(fake_api(Gates()))) as api,
        proxy(closed if name == "API" else api, closed if name != "API" else ui) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        response = await http.get(path)
        working = await http.get("/codec" if name != "API" else "/")
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert f"the {name} at {closed}" in text, text
    assert f"GET {path}" in text
    assert "Is it running?" in text
    assert working.status_code == 200  # the other upstream still answers
