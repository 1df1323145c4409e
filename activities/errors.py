"""Turn an external party's error into a Temporal failure the workflow can act on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio.exceptions import ApplicationError

from integrations.errors import IntegrationError


@asynccontextmanager
async def as_application_errors() -> AsyncIterator[None]:
    """Final errors become non-retryable ``ApplicationError``s typed by the error class."""
    try:
        yield
    except IntegrationError as exc:
        raise ApplicationError(
            str(exc), type=type(exc).__name__, non_retryable=not exc.transient
        ) from exc
