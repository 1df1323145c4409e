"""``/docs`` (Swagger UI) and ``/redoc`` from assets the app serves itself.

FastAPI's own pages load Swagger UI and ReDoc from a CDN (and ReDoc Google fonts), so they are
blank on an air-gapped network. The pinned copies live in ``api/static/docs/`` (see
``api/static/VENDORED.md``) and are served at ``/static/docs``. Build the app with
``docs_url=None, redoc_url=None`` and call :func:`install_docs` before mounting any other
``/static`` directory, which would otherwise shadow this one.

The pages also carry a Content-Security-Policy that allows only this origin, so what the
bundles themselves would fetch stays home too: ReDoc's "API docs by Redocly" footer always asks
``cdn.redoc.ly`` for its logo (no option turns it off); the browser refuses that image and
ReDoc drops it. Their inline set-up script and styles need ``'unsafe-inline'``; nothing on these
pages comes from a caller.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from api.deps import public

STATIC_DIR = Path(__file__).parent / "static" / "docs"
STATIC_URL = "/static/docs"
DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def _local_only(response: HTMLResponse) -> HTMLResponse:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _root(request: Request) -> str:
    """The path prefix the app is served under (behind a proxy), as FastAPI's pages use it."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def install_docs(app: FastAPI) -> None:
    """Mount the vendored assets and add the ``/docs``, ``/docs/oauth2-redirect`` and
    ``/redoc`` pages, all open to callers without a key."""
    openapi_url = app.openapi_url
    if openapi_url is None:  # no schema, nothing to document
        return
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="docs-static")
    open_to_all = [Depends(public)]

    @app.get(DOCS_URL, include_in_schema=False, dependencies=open_to_all)
    async def swagger_ui(request: Request) -> HTMLResponse:
        """The interactive API docs."""
        root = _root(request)
        page = get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_URL}/favicon-32x32.png",
            oauth2_redirect_url=root + OAUTH2_REDIRECT_URL,
            init_oauth=app.swagger_ui_init_oauth,
            # validatorUrl: None, else Swagger UI fetches a badge from validator.swagger.io
            swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None},
        )
        return _local_only(page)

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False, dependencies=open_to_all)
    async def swagger_ui_oauth2_redirect() -> HTMLResponse:
        """Swagger UI's OAuth2 redirect page."""
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_URL, include_in_schema=False, dependencies=open_to_all)
    async def redoc(request: Request) -> HTMLResponse:
        """The API reference."""
        root = _root(request)
        page = get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC_URL}/favicon-32x32.png",
            with_google_fonts=False,
        )
        return _local_only(page)
