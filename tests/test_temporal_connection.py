"""The Temporal trust boundary: mTLS and API key settings become ``Client.connect`` arguments."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.service import TLSConfig
from temporalio.testing import WorkflowEnvironment

from config import Settings
from tests.keys import TEST_KEYS
from workflows.client import TemporalConfigError, connect, connect_options

CERT = b"-----BEGIN CERTIFICATE-----\nY2VydA==\n-----END CERTIFICATE-----\n"
KEY = b"-----BEGIN PRIVATE KEY-----\na2V5\n-----END PRIVATE KEY-----\n"
CA = b"-----BEGIN CERTIFICATE-----\nY2E=\n-----END CERTIFICATE-----\n"


def settings(**values: object) -> Settings:
    return Settings.model_validate(
        {"encryption_keys": TEST_KEYS, "encryption_key_id": "test-1", **values}
    )


@pytest.fixture
def pems(tmp_path: Path) -> dict[str, Path]:
    files = {"cert": CERT, "key": KEY, "ca": CA}
    for name, data in files.items():
        (tmp_path / f"{name}.pem").write_bytes(data)
    return {name: tmp_path / f"{name}.pem" for name in files}


def test_nothing_set_is_plain_grpc() -> None:
    assert connect_options(settings(temporal_namespace="orders-ns")) == {
        "namespace": "orders-ns",
        "tls": False,
        "api_key": None,
    }


def test_mtls_with_a_private_ca_and_server_name(pems: dict[str, Path]) -> None:
    options = connect_options(
        settings(
            temporal_tls_client_cert=pems["cert"],
            temporal_tls_client_key=pems["key"],
            temporal_tls_server_ca=pems["ca"],
            temporal_tls_server_name="frontend.temporal.internal",
        )
    )
    assert options["tls"] == TLSConfig(
        server_root_ca_cert=CA,
        domain="frontend.temporal.internal",
        client_cert=CERT,
        client_private_key=KEY,
    )
    assert options["api_key"] is None


def test_server_ca_alone_is_server_tls(pems: dict[str, Path]) -> None:
    options = connect_options(settings(temporal_tls_server_ca=pems["ca"]))
    assert options["tls"] == TLSConfig(server_root_ca_cert=CA)


def test_cloud_api_key_turns_on_tls_with_the_system_roots() -> None:
    options = connect_options(settings(temporal_api_key="tcld-secret"))
    assert options == {"namespace": "default", "tls": True, "api_key": "tcld-secret"}
    assert connect_options(settings(temporal_tls=True))["tls"] is True
    assert connect_options(settings(temporal_api_key=""))["api_key"] is None


def test_cloud_api_key_with_mtls(pems: dict[str, Path]) -> None:
    options = connect_options(
        settings(
            temporal_api_key="tcld-secret",
            temporal_tls_client_cert=pems["cert"],
            temporal_tls_client_key=pems["key"],
        )
    )
    assert options["api_key"] == "tcld-secret"
    assert options["tls"] == TLSConfig(client_cert=CERT, client_private_key=KEY)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("cert", "ORDERLY_TEMPORAL_TLS_CLIENT_CERT is set without ORDERLY_TEMPORAL_TLS_CLIENT_KEY"),
        ("key", "ORDERLY_TEMPORAL_TLS_CLIENT_KEY is set without ORDERLY_TEMPORAL_TLS_CLIENT_CERT"),
    ],
)
def test_a_certificate_without_its_key_is_refused(
    pems: dict[str, Path], given: str, message: str
) -> None:
    with pytest.raises(TemporalConfigError, match=message):
        connect_options(settings(**{f"temporal_tls_client_{given}": pems[given]}))


def test_unreadable_or_non_pem_files_name_the_setting(
    tmp_path: Path, pems: dict[str, Path]
) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(
        TemporalConfigError, match=rf"ORDERLY_TEMPORAL_TLS_SERVER_CA={missing}: cannot read"
    ):
        connect_options(settings(temporal_tls_server_ca=missing))
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"not a certificate")
    with pytest.raises(TemporalConfigError, match=r"ORDERLY_TEMPORAL_TLS_CLIENT_CERT=.*not a PEM"):
        connect_options(
            settings(temporal_tls_client_cert=junk, temporal_tls_client_key=pems["key"])
        )


def test_tls_turned_off_while_tls_settings_or_an_api_key_are_set_is_refused(
    pems: dict[str, Path],
) -> None:
    with pytest.raises(TemporalConfigError, match="ORDERLY_TEMPORAL_TLS_SERVER_CA"):
        connect_options(settings(temporal_tls=False, temporal_tls_server_ca=pems["ca"]))
    with pytest.raises(TemporalConfigError, match=r"ORDERLY_TEMPORAL_API_KEY .*in clear"):
        connect_options(settings(temporal_tls=False, temporal_api_key="tcld-secret"))


def test_settings_come_from_the_environment_and_hide_the_api_key(
    monkeypatch: pytest.MonkeyPatch, pems: dict[str, Path]
) -> None:
    monkeypatch.setenv("ORDERLY_TEMPORAL_TLS_CLIENT_CERT", str(pems["cert"]))
    monkeypatch.setenv("ORDERLY_TEMPORAL_TLS_CLIENT_KEY", str(pems["key"]))
    monkeypatch.setenv("ORDERLY_TEMPORAL_TLS_SERVER_NAME", "temporal")
    monkeypatch.setenv("ORDERLY_TEMPORAL_API_KEY", "tcld-secret")
    loaded = settings()
    assert isinstance(loaded.temporal_api_key, SecretStr)
    assert "tcld-secret" not in repr(loaded)
    options = connect_options(loaded)
    assert options["tls"] == TLSConfig(domain="temporal", client_cert=CERT, client_private_key=KEY)


async def test_connect_uses_the_options(temporal_env: WorkflowEnvironment) -> None:
    target = temporal_env.client.service_client.config.target_host
    client = await connect(settings(temporal_target=target))
    assert await client.service_client.check_health()
    # TLS asked for: the plain dev server's answer is no TLS handshake, so connect fails.
    with pytest.raises(RuntimeError, match="connect"):
        await connect(settings(temporal_target=target, temporal_tls=True))
