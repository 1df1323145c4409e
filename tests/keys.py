"""Test-only encryption keys (never used outside tests): the saved replay histories are
encrypted under them, so they must stay fixed and committed."""

from __future__ import annotations

from security.codec import data_converter
from security.keyring import KeyRing

TEST_KEYS = {
    "test-1": "6HJ/fH/YOl2bsbgTqwB6uF6aDP4pq/OBAnhjQRrVx5E=",
    "test-2": "KFyXuLwEzRiVYc3NZYMFjaTsyso9E9E0JaoZvBJpoXc=",
}
TEST_RING = KeyRing("test-1", TEST_KEYS)
ROTATED_RING = KeyRing("test-2", TEST_KEYS)  # after rotation: test-2 current, test-1 kept
TEST_CONVERTER = data_converter(TEST_RING)
