"""The uvicorn configuration `inbeeld serve` runs the API with: plain HTTP behind the data
centre's TLS-terminating reverse proxy (the usual set-up), or HTTPS itself, optionally asking
clients for a certificate (mutual TLS) when `INBEELD_API_TLS_*` are set (docs/tls.md)."""

from __future__ import annotations

import ssl

import uvicorn
from fastapi import FastAPI

from hub.config import Settings
from schemas.tls import TLS12_CIPHERS

__all__ = ["server_config"]

_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def server_config(
    app: FastAPI, settings: Settings, *, host: str | None = None, port: int | None = None
) -> uvicorn.Config:
    """uvicorn's `Config` for `app`; `TlsError` naming the variable and file when a TLS file
    cannot be used (checked here, before uvicorn reads them)."""
    tls = settings.api_ssl_context() is not None  # validates the files, with our messages
    options: dict[str, object] = {}
    if tls:
        # uvicorn's context is PROTOCOL_TLS_SERVER: TLS 1.2 at least on Python 3.10+.
        options = {
            "ssl_certfile": str(settings.api_tls_cert_file),
            "ssl_keyfile": str(settings.api_tls_key_file),
            "ssl_keyfile_password": settings.api_tls_key_password,
            "ssl_cert_reqs": _CERT_REQS[settings.api_tls_client_cert],
            "ssl_ca_certs": str(settings.api_tls_client_ca_file) if settings.api_tls_client_ca_file else None,
            "ssl_ciphers": TLS12_CIPHERS,
        }
    return uvicorn.Config(
        app,
        host=host or settings.api_host,
        port=settings.api_port if port is None else port,
        log_config=None,
        **options,  # type: ignore[arg-type]
    )
