"""One JSON error shape for every failure, and the handlers that produce it."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.errors import Kind, ServiceError

log = logging.getLogger("orderly.api")
STATUS = {
    Kind.INVALID: 422,
    Kind.NOT_FOUND: 404,
    Kind.NOT_ALLOWED: 409,
    Kind.FORBIDDEN: 403,
    Kind.CONFLICT: 409,
    Kind.UNAVAILABLE: 503,
    Kind.FAILED: 502,
    Kind.TOO_LARGE: 413,
    Kind.UNSUPPORTED: 415,
}


class FieldProblem(BaseModel):
    field: str
    reason: str


class ErrorDetail(BaseModel):
    code: str
    message: str
    fields: list[FieldProblem] = []
    status: str | None = None
    allowed_actions: list[str] | None = None


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer has this shape."""

    error: ErrorDetail


class ApiError(Exception):
    def __init__(self, status_code: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status_code, self.code, self.message, self.extra = status_code, code, message, extra


def _response(status_code: int, detail: ErrorDetail, headers: dict[str, str] | None = None) -> Any:
    body = ErrorBody(error=detail).model_dump(exclude_none=True)
    return JSONResponse(status_code=status_code, content=body, headers=headers)


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    path = ""
    for part in parts:
        path += f"[{part}]" if part.isdigit() else (f".{part}" if path else part)
    return path or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Any:
        request.state.audit_reason = exc.message
        headers = exc.extra.pop("headers", None)
        return _response(
            exc.status_code, ErrorDetail(code=exc.code, message=exc.message, **exc.extra), headers
        )

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> Any:
        request.state.audit_reason = exc.message
        return _response(
            STATUS[exc.kind], ErrorDetail(code=exc.code, message=exc.message, **exc.extra)
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Any:
        fields = []
        for err in exc.errors():
            reason = str(err.get("msg", "invalid"))
            loc = err.get("loc", ())
            if err.get("type") == "json_invalid":
                where = f" at position {loc[1]}" if len(loc) > 1 else ""
                reason = f"malformed JSON{where}: {err.get('ctx', {}).get('error', 'cannot parse')}"
                loc = ("body",)
            fields.append(FieldProblem(field=_field_path(loc), reason=reason))
        message = "; ".join(f"{f.field}: {f.reason}" for f in fields[:5])
        request.state.audit_reason = message
        return _response(422, ErrorDetail(code="invalid_input", message=message, fields=fields))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Any:
        request.state.audit_reason = str(exc.detail)
        if exc.status_code == 400:  # a body FastAPI cannot decode (not UTF-8, too deep, ...)
            reason = f"cannot be parsed as JSON: {exc.detail}"
            request.state.audit_reason = f"body: {reason}"
            return _response(
                422,
                ErrorDetail(
                    code="invalid_input",
                    message=f"body: {reason}",
                    fields=[FieldProblem(field="body", reason=reason)],
                ),
            )
        code = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}
        return _response(
            exc.status_code,
            ErrorDetail(code=code.get(exc.status_code, "error"), message=str(exc.detail)),
            getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Any:
        log.exception("unhandled error", exc_info=exc)
        return _response(500, ErrorDetail(code="internal", message="internal error; it is logged"))
