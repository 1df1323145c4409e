"""Who is calling: bearer API keys map to a principal with roles (see :mod:`services.auth`)."""

from services.auth import KEY_PREFIX, KeyCache, Principal, Role, create_api_key, hash_key

__all__ = ["KEY_PREFIX", "KeyCache", "Principal", "Role", "create_api_key", "hash_key"]
