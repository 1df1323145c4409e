"""API keys for admins: create, list, revoke, rotate (the CLI `orderly keys` does the same)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status
from pydantic import BaseModel, Field, model_validator

from api.deps import KeysDep, ServicesDep, allow
from api.routes.orders import ERRORS
from services.auth import Principal, Role, Scope
from services.keys import KeyInfo, KeySpec, NewKey

router = APIRouter(prefix="/keys", tags=["keys"], responses=ERRORS)
Admin = Annotated[Principal, Depends(allow(Role.ADMIN, scope=Scope.KEYS_ADMIN, own=False))]
KeyId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class CreateKeyRequest(KeySpec):
    expires_in: timedelta | None = Field(
        default=None, gt=timedelta(0), description="ISO 8601, e.g. P30D; or give `expires_at`."
    )

    @model_validator(mode="after")
    def _one_expiry(self) -> CreateKeyRequest:
        if self.expires_in is not None and self.expires_at is not None:
            raise ValueError("give expires_at or expires_in, not both")
        return self


class RotateRequest(BaseModel):
    overlap: timedelta | None = Field(
        default=None,
        ge=timedelta(0),
        description="How long the old key keeps working (ISO 8601); default from settings.",
    )


class KeyList(BaseModel):
    items: list[KeyInfo]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=NewKey)
async def create_key(body: CreateKeyRequest, principal: Admin, keys: KeysDep) -> NewKey:
    """Create a key; the answer holds the key itself, shown this once."""
    spec = KeySpec.model_validate(body.model_dump(exclude={"expires_in"}))
    if body.expires_in is not None:
        spec.expires_at = datetime.now(UTC) + body.expires_in
    return await keys.create(spec, by=principal)


@router.get("", response_model=KeyList)
async def list_keys(
    _: Admin,
    keys: KeysDep,
    principal: Annotated[str | None, Query(max_length=128)] = None,
    include_revoked: bool = True,
) -> KeyList:
    """Every key with its prefix, roles, scopes and status; never a secret."""
    found = await keys.list(principal=principal, include_revoked=include_revoked)
    return KeyList(items=list(found))


@router.post("/{key_id}/revoke", response_model=KeyInfo)
async def revoke_key(key_id: KeyId, _: Admin, keys: KeysDep) -> KeyInfo:
    """Revoke now: the next request with the key gets 401."""
    return await keys.revoke(key_id)


@router.post("/{key_id}/rotate", status_code=status.HTTP_201_CREATED, response_model=NewKey)
async def rotate_key(
    key_id: KeyId,
    principal: Admin,
    keys: KeysDep,
    services: ServicesDep,
    body: RotateRequest | None = None,
) -> NewKey:
    """A new key like this one (shown once); the old one works for the overlap, then expires."""
    overlap = body.overlap if body is not None else None
    if overlap is None:
        overlap = services.settings.key_rotation_overlap
    return await keys.rotate(key_id, overlap, by=principal)
