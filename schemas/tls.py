"""TLS for Inbeeld's links, as Dutch government links use it: AMQPS to the hub's broker and
HTTPS to the hub's API, with a CA bundle (e.g. the PKIoverheid roots) and, for mutual TLS, a
client certificate and key (e.g. a PKIoverheid services certificate).

Shared by the hub and the connectors; the one policy for both (after the NCSC's
"ICT-beveiligingsrichtlijnen voor Transport Layer Security (TLS)", v2.1): TLS 1.2 at least,
1.3 preferred, only the cipher suites the guidelines rate "good", the peer's certificate
verified against the CA bundle and, for a client, its host name checked.

A file that is missing, unreadable or not what it should be raises `TlsError` whose message
names the setting, the file and the problem; `handshake_failure` turns a failed connection
into one sentence naming the host and port (or None when TLS was not the problem).
"""

from __future__ import annotations

import datetime as dt
import ssl
import weakref
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from schemas.errors import InbeeldError

__all__ = [
    "TLS12_CIPHERS",
    "TlsError",
    "TlsFiles",
    "client_context",
    "handshake_failure",
    "presents_certificate",
    "server_context",
]

# TLS 1.2 suites the NCSC guidelines (v2.1, table 4) rate "good": ECDHE key exchange, AEAD.
# TLS 1.3's suites (AES-GCM, ChaCha20-Poly1305) are all "good" and need no list.
TLS12_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "ECDHE-RSA-AES128-GCM-SHA256",
    )
)


class TlsError(InbeeldError):
    """A CA bundle, certificate or key that cannot be used."""

    reason = "tls_error"


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of one end of a link; `names` are the settings that named them, for messages
    (`tls.cert_file`, `INBEELD_AMQP_TLS_CERT_FILE`, ...)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    key_password: str | None = None
    names: tuple[str, str, str] = ("ca_file", "cert_file", "key_file")

    def describe(self) -> str:
        """What the files hold, in one line (for `check` and start-up logs); `TlsError` if unusable."""
        parts = []
        if self.ca_file is not None:
            cas = _certificates(self.ca_file, self.names[0])
            parts.append(f"CA bundle {self.ca_file} ({len(cas)} certificate{'s' if len(cas) != 1 else ''})")
        else:
            parts.append("the system's CA certificates")
        if self.cert_file is not None:
            cert = _certificate_and_key(self)
            until = cert.not_valid_after_utc.date().isoformat()
            parts.append(f"client certificate {cert.subject.rfc4514_string()}, valid until {until}")
        else:
            parts.append("no client certificate")
        return "; ".join(parts)


def _read(path: Path, name: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise TlsError(f"{name}: {path} does not exist", field=name) from None
    except IsADirectoryError:
        raise TlsError(f"{name}: {path} is a directory, not a PEM file", field=name) from None
    except OSError as exc:
        raise TlsError(f"{name}: cannot read {path} ({exc.strerror})", field=name) from None


def _certificates(path: Path, name: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(_read(path, name))
    except ValueError:
        certs = []
    if not certs:
        raise TlsError(f"{name}: {path} holds no PEM certificate", field=name)
    return certs


def _certificate_and_key(files: TlsFiles) -> x509.Certificate:
    """The leaf certificate of `cert_file`, checked to be valid now and to match `key_file`."""
    _, cert_name, key_name = files.names
    assert files.cert_file is not None
    if files.key_file is None:
        raise TlsError(f"{key_name}: a certificate needs its key file too", field=key_name)
    cert = _certificates(files.cert_file, cert_name)[0]
    now = dt.datetime.now(dt.UTC)
    if cert.not_valid_after_utc < now:
        raise TlsError(
            f"{cert_name}: the certificate in {files.cert_file} expired on "
            f"{cert.not_valid_after_utc.date().isoformat()}",
            field=cert_name,
        )
    if cert.not_valid_before_utc > now:
        raise TlsError(
            f"{cert_name}: the certificate in {files.cert_file} is not valid before "
            f"{cert.not_valid_before_utc.isoformat()}",
            field=cert_name,
        )
    data = _read(files.key_file, key_name)
    password = files.key_password.encode() if files.key_password is not None else None
    try:
        key = serialization.load_pem_private_key(data, password)
    except TypeError:  # encrypted without a passphrase given, or a passphrase for a plain key
        hint = "it is encrypted and no passphrase is set" if password is None else "it is not encrypted"
        raise TlsError(f"{key_name}: cannot load {files.key_file}: {hint}", field=key_name) from None
    except ValueError:
        why = "wrong passphrase, or not a PEM private key" if password else "not a PEM private key"
        raise TlsError(f"{key_name}: cannot load {files.key_file} ({why})", field=key_name) from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if key.public_key().public_bytes(der, public) != cert.public_key().public_bytes(der, public):
        raise TlsError(
            f"{key_name}: {files.key_file} is not the key of the certificate in {files.cert_file}",
            field=key_name,
        )
    return cert


_WITH_CERTIFICATE: weakref.WeakSet[ssl.SSLContext] = weakref.WeakSet()


def presents_certificate(ctx: ssl.SSLContext | None) -> bool:
    """Whether `ctx` (made here) presents a certificate of ours."""
    return ctx is not None and ctx in _WITH_CERTIFICATE


def _load(ctx: ssl.SSLContext, files: TlsFiles) -> None:
    ca_name = files.names[0]
    if files.ca_file is not None:
        _certificates(files.ca_file, ca_name)
        ctx.load_verify_locations(cafile=str(files.ca_file))
    if files.cert_file is not None:
        _certificate_and_key(files)
        assert files.key_file is not None
        ctx.load_cert_chain(str(files.cert_file), str(files.key_file), password=files.key_password)
        _WITH_CERTIFICATE.add(ctx)


def client_context(files: TlsFiles) -> ssl.SSLContext:
    """A client's context: the peer verified against `ca_file` (the system's CAs without one),
    its host name checked, TLS 1.2 or 1.3, and our certificate presented when one is given."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if files.ca_file is not None:  # only the given CAs, not the system's as well
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.set_ciphers(TLS12_CIPHERS)
    _load(ctx, files)
    return ctx


def server_context(files: TlsFiles, *, client_certs: str = "none") -> ssl.SSLContext:
    """A server's context presenting `cert_file`; `client_certs` "optional" or "required"
    verifies a client's certificate against `ca_file`."""
    if files.cert_file is None:
        raise TlsError(f"{files.names[1]}: a TLS server needs a certificate", field=files.names[1])
    if client_certs != "none" and files.ca_file is None:
        raise TlsError(
            f"{files.names[0]}: checking client certificates needs the CA bundle that issued them",
            field=files.names[0],
        )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.verify_mode = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL}.get(
        client_certs, ssl.CERT_REQUIRED
    )
    _load(ctx, files)
    return ctx


# OpenSSL alert names a server sends when it refuses (or wanted) our certificate.
_CLIENT_CERT_ALERTS = (
    "CERTIFICATE_REQUIRED",
    "HANDSHAKE_FAILURE",
    "BAD_CERTIFICATE",
    "UNKNOWN_CA",
    "CERTIFICATE_UNKNOWN",
    "CERTIFICATE_EXPIRED",
    "CERTIFICATE_REVOKED",
    "ACCESS_DENIED",
)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        todo.extend((e.__cause__, e.__context__))
        todo.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))
    return seen


def handshake_failure(
    exc: BaseException,
    where: str,
    *,
    client_cert: bool,
    settings: tuple[str, str] = ("ca_file", "cert_file"),
) -> str | None:
    """Why a TLS connection to `where` ("the hub's broker at host:port") failed, in one
    sentence, or None when nothing in `exc` points at TLS. `client_cert`: did we offer one;
    `settings`: the names of our CA bundle and certificate settings, for the advice."""
    ca_setting, cert_setting = settings
    chain = _chain(exc)
    for e in chain:
        if isinstance(e, ssl.SSLCertVerificationError):
            return (
                f"{where} presented a certificate we do not trust ({e.verify_message}): "
                f"check the CA bundle ({ca_setting}) and the host name in the URL"
            )
    ours = (
        "our client certificate"
        if client_cert
        else f"a client certificate, and none is configured ({cert_setting})"
    )
    # A peer that closed the connection on us is not an alert it sent: see below.
    closed = (
        ConnectionResetError,
        BrokenPipeError,
        ssl.SSLEOFError,
        ssl.SSLZeroReturnError,
        ssl.SSLWantReadError,
    )
    for e in chain:
        if isinstance(e, ssl.SSLError) and not isinstance(e, closed):
            reason = str(e.reason or "")
            if any(alert in reason for alert in _CLIENT_CERT_ALERTS):
                verb = "refused" if client_cert else "asks for"
                return f"{where} {verb} {ours} (TLS alert {reason.lower()})"
            return f"TLS with {where} failed ({reason.lower() or e.strerror})"
    for e in chain:
        # TLS 1.3: the client's handshake is over before the server checks our certificate; a
        # server that refuses it then closes the connection at once.
        if isinstance(e, closed):
            if client_cert:
                return (
                    f"{where} closed the TLS connection at once: it probably refused our client "
                    "certificate (is it issued by a CA the server trusts?)"
                )
            return f"{where} closed the TLS connection at once: it probably asks for {ours}"
    return None
