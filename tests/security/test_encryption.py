"""Payload encryption: the key ring, the codec, raw histories without PII, key rotation."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHistory
from temporalio.converter import DataConverter

from config import Settings, load_keyring
from domain.status import OrderStatus as S
from security.codec import ENCODING, KEY_ID, EncryptionCodec, UndecodablePayload, data_converter
from security.keyring import (
    DecryptError,
    KeyConfigError,
    KeyRing,
    UnknownKeyError,
    new_key,
    read_key_file,
)
from tests.conftest import Stack
from tests.factories import order_spec
from tests.helpers import deliver, start_order, wait_status
from tests.keys import ROTATED_RING, TEST_KEYS, TEST_RING
from worker import build_worker
from workflows.contracts import ApproveInput
from workflows.order import OrderWorkflow
from workflows.recorder import MAIL_FROM_EVENT_LOG

MARKER_FIELDS = {
    "seq",
    "attempt",
    "activity_id",
    "activity_type",
    "complete_time",
    "backoff",
    "original_schedule_time",
    "activation_index",
    "id",  # a patch marker (workflow.patched): its id and whether it is deprecated
    "deprecated",
}
PII = (b"Ada Lovelace", b"ada@example.com", b"Analytical Row", b"N1 9GU", b"tok_visa")


def test_ring_encrypts_under_current_and_decrypts_with_any_key() -> None:
    kid, blob = TEST_RING.encrypt(b"secret")
    assert kid == "test-1"
    assert b"secret" not in blob
    assert ROTATED_RING.decrypt(kid, blob) == b"secret"
    assert TEST_RING.encrypt(b"secret")[1] != blob  # a fresh nonce every time


def test_ring_refuses_unknown_key_and_tampered_data() -> None:
    only_two = KeyRing("test-2", {"test-2": TEST_KEYS["test-2"]})
    kid, blob = TEST_RING.encrypt(b"x")
    with pytest.raises(UnknownKeyError, match="'test-1'"):
        only_two.decrypt(kid, blob)
    with pytest.raises(DecryptError, match="failed authentication"):
        TEST_RING.decrypt(kid, blob[:-1] + bytes([blob[-1] ^ 1]))


@pytest.mark.parametrize(
    ("keys", "current", "message"),
    [
        ({"k": "bm90IGEga2V5"}, "k", "has 9 bytes; AES-256 needs 32"),
        ({"k": "***"}, "k", "not valid base64"),
        ({"k": new_key()}, "other", "current encryption key id 'other' is not among"),
        ({"bad id!": new_key()}, "bad id!", "use 1-64 characters"),
    ],
)
def test_bad_keys_are_refused_with_the_reason(
    keys: dict[str, str], current: str, message: str
) -> None:
    with pytest.raises(KeyConfigError, match=message):
        KeyRing(current, keys)


def test_production_without_keys_refuses_to_start() -> None:
    with pytest.raises(KeyConfigError, match="production needs ORDERLY_ENCRYPTION_KEYS"):
        load_keyring(Settings(environment="production"))


def test_development_generates_a_private_key_file_once(tmp_path: Path) -> None:
    path = tmp_path / "var" / "keys.json"
    first = load_keyring(Settings(encryption_keys_file=None, environment="development"))
    assert first.current  # the checkout's own dev key (var/ is git-ignored)
    from security.keyring import create_dev_key_file

    create_dev_key_file(path)
    content = path.read_text()
    create_dev_key_file(path)  # never overwritten: old data must stay readable
    assert path.read_text() == content
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ring = read_key_file(path)
    assert ring.key_ids == [ring.current]
    assert load_keyring(Settings(encryption_keys_file=path)).current == ring.current


def test_key_file_with_several_keys_names_the_current_one(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": TEST_KEYS}))
    with pytest.raises(KeyConfigError, match="current encryption key id ''"):
        read_key_file(path)
    path.write_text(json.dumps({"current": "test-2", "keys": TEST_KEYS}))
    assert read_key_file(path).current == "test-2"
    with pytest.raises(KeyConfigError, match="says current is test-2"):
        load_keyring(Settings(encryption_keys_file=path, encryption_key_id="test-1"))


async def test_codec_round_trip_and_clear_errors() -> None:
    codec = EncryptionCodec(TEST_RING)
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'{"name": "Ada Lovelace"}')
    [sealed] = await codec.encode([plain])
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[KEY_ID] == b"test-1"
    assert b"Ada" not in sealed.SerializeToString()
    assert await EncryptionCodec(ROTATED_RING).decode([sealed]) == [plain]
    # Not encrypted (Temporal's own payloads): passes through untouched.
    assert await codec.decode([plain]) == [plain]
    stranger = Payload(metadata={"encoding": ENCODING, KEY_ID: b"gone-7"}, data=b"x" * 40)
    with pytest.raises(UndecodablePayload, match="'gone-7'"):
        await codec.decode([stranger])
    with pytest.raises(UndecodablePayload, match="without an encryption-key-id"):
        await codec.decode([Payload(metadata={"encoding": ENCODING}, data=b"x" * 40)])


def _payloads(history: WorkflowHistory) -> list[Payload]:
    """Every payload anywhere in the history's events (inputs, results, markers, failures)."""
    found: list[Payload] = []

    def walk(msg: object) -> None:
        if isinstance(msg, Payload):
            found.append(msg)
            return
        for field, value in msg.ListFields():  # type: ignore[attr-defined]
            if field.type != field.TYPE_MESSAGE:
                continue
            items = (
                value.values()
                if field.message_type.GetOptions().map_entry
                else ([value] if hasattr(value, "ListFields") else value)
            )
            for item in items:
                walk(item)

    for event in history.events:
        walk(event)
    return found


async def test_raw_history_holds_no_customer_data_and_decodes(stack: Stack) -> None:
    handle = await start_order(stack)
    await wait_status(handle, S.FULFILLING)
    await deliver(handle)
    await wait_status(handle, S.COMPLETED)
    history = await handle.fetch_history()  # as the server stores it: not decoded
    raw = b"".join(e.SerializeToString() for e in history.events)
    for secret in PII:
        assert secret not in raw, secret
    payloads = _payloads(history)
    sealed = [p for p in payloads if p.metadata["encoding"] == ENCODING]
    assert len(sealed) > 10
    # The rest is the SDK core's own marker bookkeeping (local activities, patches; never
    # codec'd): no data.
    for p in payloads:
        if p.metadata.get("type") == b"KeywordList":  # TemporalChangeVersion: the patch ids
            assert set(json.loads(p.data)) <= {MAIL_FROM_EVENT_LOG}, p
        elif p.metadata["encoding"] != ENCODING:
            assert set(json.loads(p.data)) <= MARKER_FIELDS, p
    decoded = b"".join(
        p.SerializeToString() for p in await EncryptionCodec(TEST_RING).decode(payloads)
    )
    for secret in PII[:4]:
        assert secret in decoded, secret  # the data is there, for those holding the key


async def test_key_rotation_mid_life_both_keys_decode(bare_stack: Stack) -> None:
    stack = bare_stack
    spec = order_spec(lines=[{"sku": "WIDGET-1", "quantity": 100, "unit_price": "60.00"}])
    async with build_worker(stack.client, stack.settings, stack.sessions):
        handle = await start_order(stack, spec)  # under test-1
        await wait_status(handle, S.AWAITING_APPROVAL)
    # Rotation: every process restarts with test-2 current and test-1 kept for decryption.
    rotated = Client(
        stack.client.service_client,
        namespace=stack.client.namespace,
        data_converter=data_converter(ROTATED_RING),
    )
    async with build_worker(rotated, stack.settings, stack.sessions):
        later = rotated.get_workflow_handle_for(OrderWorkflow.run, handle.id)
        await later.execute_update(
            OrderWorkflow.approve, ApproveInput(actor="lead-1", actor_levels=[1])
        )
        await wait_status(later, S.FULFILLING)
        await deliver(later)
        final = await wait_status(later, S.COMPLETED)
    assert final.customer.name == "Ada Lovelace"
    history = await later.fetch_history()
    payloads = [p for p in _payloads(history) if p.metadata["encoding"] == ENCODING]
    used = {p.metadata[KEY_ID].decode() for p in payloads}
    assert used == {"test-1", "test-2"}
    assert len(await EncryptionCodec(ROTATED_RING).decode(payloads)) == len(payloads)
    without_old = KeyRing("test-2", {"test-2": TEST_KEYS["test-2"]})
    with pytest.raises(UndecodablePayload, match="'test-1'"):
        await EncryptionCodec(without_old).decode(payloads)
    # The history replays (and decodes) with the rotated ring.
    from temporalio.worker import Replayer

    from worker import WORKFLOWS, workflow_runner

    replayer = Replayer(
        workflows=WORKFLOWS,
        data_converter=data_converter(ROTATED_RING),
        workflow_runner=workflow_runner(strict=True),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


async def test_a_client_without_the_codec_cannot_read_orders(stack: Stack) -> None:
    handle = await start_order(stack)
    await wait_status(handle, S.FULFILLING)
    blind = Client(  # raw: no codec on purpose
        stack.client.service_client,
        namespace=stack.client.namespace,
        data_converter=DataConverter.default,
    )
    with pytest.raises(Exception, match=r"binary/encrypted|[Ee]ncod"):
        await blind.get_workflow_handle(handle.id).query("state")


def test_worker_and_api_refuse_to_start_in_production_without_keys(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from api.app import create_app

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLY_")}
    env["ORDERLY_ENVIRONMENT"] = "production"
    done = subprocess.run(
        [sys.executable, str(root / "worker.py")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "worker: no encryption keys: production needs ORDERLY_ENCRYPTION_KEYS" in done.stderr
    with pytest.raises(KeyConfigError, match="production needs"):
        create_app(Settings(environment="production"))
