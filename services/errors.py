"""Why a use case refused or failed, in terms every client (API, console, CLI) can map."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    INVALID = "invalid_input"  # the input is wrong: name the field
    NOT_FOUND = "not_found"
    NOT_ALLOWED = "command_not_allowed"  # not in the order's current status
    FORBIDDEN = "forbidden"  # this caller may never do it
    CONFLICT = "conflict"  # e.g. an idempotency key reused with another body
    UNAVAILABLE = "unavailable"  # the engine or the database is down: retry later
    FAILED = "command_failed"  # the order could not process the command
    TOO_LARGE = "too_large"  # an upload over its limit
    UNSUPPORTED = "unsupported_media_type"  # an upload of a kind we do not read


class ServiceError(Exception):
    def __init__(self, kind: Kind, message: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.kind, self.message, self.extra = kind, message, extra
        self.code = code or kind.value


def invalid(field: str, reason: str) -> ServiceError:
    return ServiceError(
        Kind.INVALID, f"{field}: {reason}", fields=[{"field": field, "reason": reason}]
    )


def not_found(what: str) -> ServiceError:
    return ServiceError(Kind.NOT_FOUND, f"{what} not found")


def unavailable(exc: Exception | str) -> ServiceError:
    return ServiceError(Kind.UNAVAILABLE, f"order engine unavailable, retry later: {exc}")


def not_allowed(message: str, status: str | None, allowed: list[str]) -> ServiceError:
    return ServiceError(Kind.NOT_ALLOWED, message, status=status, allowed_actions=allowed)
