"""One way to connect to Temporal, for the worker, the CLI and the web app alike: the
address and namespace, TLS (a server CA, a server name), mTLS (a client certificate and
key), a Temporal Cloud API key, and the data converter (pydantic, with the payload
encryption codec of `cobro.temporal_codec` when keys are set)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from cobro.errors import TemporalConfigError
from cobro.settings import Settings, get_settings
from cobro.temporal_codec import codec


async def connect(settings: Settings | None = None, runtime: Runtime | None = None) -> Client:
    """`runtime`: the SDK runtime (the worker's exports Prometheus metrics); default the
    process's default runtime."""
    settings = settings or get_settings()
    api_key = settings.temporal_api_key
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        api_key=api_key.get_secret_value() if api_key is not None else None,
        tls=tls_config(settings),
        data_converter=data_converter(settings),
        runtime=runtime,
    )


def data_converter(settings: Settings) -> DataConverter:
    """pydantic payloads; encrypted when keys are set, failure messages and stack traces
    too (they can quote an address)."""
    payload_codec = codec(settings)
    if payload_codec is None:
        return pydantic_data_converter
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=payload_codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def tls_config(settings: Settings) -> TLSConfig | bool:
    """The TLS settings for the SDK; False for a plain connection (the embedded server)."""
    files = (
        settings.temporal_tls_ca_file,
        settings.temporal_tls_cert_file,
        settings.temporal_tls_key_file,
    )
    wanted = settings.temporal_tls
    if wanted is None:
        wanted = any(files) or settings.temporal_api_key is not None
    if not wanted:
        return False
    cert, key = settings.temporal_tls_cert_file, settings.temporal_tls_key_file
    if (cert is None) != (key is None):
        given, missing = ("CERT", "KEY") if key is None else ("KEY", "CERT")
        raise TemporalConfigError(
            f"COBRO_TEMPORAL_TLS_{given}_FILE is set but COBRO_TEMPORAL_TLS_{missing}_FILE is "
            "not: mTLS needs the client certificate and its key"
        )
    return TLSConfig(
        server_root_ca_cert=_read("COBRO_TEMPORAL_TLS_CA_FILE", settings.temporal_tls_ca_file),
        domain=settings.temporal_tls_server_name or None,
        client_cert=_read("COBRO_TEMPORAL_TLS_CERT_FILE", cert),
        client_private_key=_read("COBRO_TEMPORAL_TLS_KEY_FILE", key),
    )


def _read(setting: str, path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TemporalConfigError(f"{setting}: cannot read {path}: {exc.strerror}") from None
    if b"-----BEGIN " not in data:
        raise TemporalConfigError(f"{setting}: {path} is not a PEM file")
    return data
