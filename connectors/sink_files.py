"""The folder sink's files, encrypted at rest under the keystore's at-rest secret, so that
`inbeeld-connector shred` makes them unreadable like the register (DESIGN section 6).

Internal to the connector (behind `inbeeld-connector`), not SDK: see `connectors.__all__`.

A file `<event id>.json.enc` holds one JSON object, version 1:

    {"format": "inbeeld-sink-file-1",
     "wrapped_key": "ik1.<at-rest secret id>.<...>",     (connectors.at_rest)
     "ciphertext": "<base64url of the at-rest blob>"}

The plaintext is the delivery body every sink receives (`connectors.sinks.delivery_body`).
The blob's aad is the file's name without `.enc`, so a file renamed to another event's name
does not open. Its data key is never re-wrapped when the register is shredded: what the
folder sink wrote before a shredding is gone with the secret it was wrapped under. Read a
file back with `inbeeld-connector sink show FILE`.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path

from connectors.at_rest import AtRestSecrets, decrypt_at_rest, encrypt_at_rest, unwrap_data_key, wrap_data_key
from schemas.errors import CryptoError, InbeeldError

__all__ = ["FORMAT", "SUFFIX", "SinkFileError", "file_name", "open_sink_file", "seal_sink_file"]

FORMAT = "inbeeld-sink-file-1"
SUFFIX = ".json.enc"
MAX_FILE_BYTES = 64 * 1024 * 1024


class SinkFileError(InbeeldError):
    """A file is not a sink file, or cannot be decrypted (its key was shredded, or it was altered)."""

    reason = "sink_file_error"


def file_name(event_id: str) -> str:
    return event_id.replace(":", "_").replace("/", "_") + SUFFIX


def _aad(name: str) -> bytes:
    return name.removesuffix(".enc").encode()


def seal_sink_file(keystore: AtRestSecrets, name: str, body: bytes) -> bytes:
    """The bytes of sink file `name` holding `body`, under a fresh data key."""
    data_key, wrapped = wrap_data_key(keystore)
    blob = encrypt_at_rest(data_key, body, _aad(name))
    doc = {"format": FORMAT, "wrapped_key": wrapped, "ciphertext": base64.urlsafe_b64encode(blob).decode()}
    return json.dumps(doc).encode()


def open_sink_file(keystore: AtRestSecrets, path: Path) -> bytes:
    """The delivery body in sink file `path`; `SinkFileError` saying why it cannot be read."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise SinkFileError(f"{path.name} is larger than any sink file")
        doc = json.loads(path.read_bytes())
    except OSError as exc:
        raise SinkFileError(f"cannot read {path} ({exc.strerror})") from None
    except (ValueError, RecursionError):
        raise SinkFileError(f"{path.name} is not a sink file (not JSON)") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SinkFileError(f"{path.name} is not a sink file (format {FORMAT} expected)")
    wrapped, ciphertext = doc.get("wrapped_key"), doc.get("ciphertext")
    if not isinstance(wrapped, str) or not isinstance(ciphertext, str):
        raise SinkFileError(f"{path.name} is not a sink file (wrapped_key and ciphertext expected)")
    try:
        blob = base64.urlsafe_b64decode(ciphertext.encode())
    except (ValueError, binascii.Error):
        raise SinkFileError(f"{path.name} is not a sink file (ciphertext is not base64url)") from None
    try:
        data_key = unwrap_data_key(keystore, wrapped)
    except CryptoError:
        raise SinkFileError(
            f"{path.name} cannot be decrypted: the key it was written under is gone (shredded) "
            "or belongs to another keystore"
        ) from None
    try:
        return decrypt_at_rest(data_key, blob, _aad(path.name))
    except CryptoError:
        raise SinkFileError(f"{path.name} cannot be decrypted: it was altered or renamed") from None
