"""What the municipality's system hands the connector to send.

Internal to the connector (behind `inbeeld-connector`), not SDK: see `connectors.__all__`.

Both sources take the same JSON document:

    {"type": "nl.leerplicht.ping", "recipients": ["GM0599"], "data": {...},
     "subject": "optional", "correlationid": "optional", "id": "optional event id"}

and validate it completely (document, event type, payload, envelope) before anything is sent;
an error names exactly one field (`data.pupil.bsn`, `recipients.0`) and why, never the value.

* `folder` — `*.json` files dropped in a folder (write them atomically: a temp name starting
  with `.` or ending in `.tmp`/`.part` is ignored, then rename). A sent file moves to `sent/`;
  a bad one to `failed/` beside `<name>.error.txt`. A sent file the hub then refuses (its
  `hub.rejected` reaches the runtime, `FolderSource.refused`) moves on from `sent/` to
  `failed/`, its `.error.txt` naming the hub's reason (files sent since the runtime started;
  the last 10,000). While the broker is unreachable files stay where they are. A file's
  event id is derived from its name, content and mtime unless it gives one, so a restart
  between publishing and moving it re-sends a duplicate the recipient drops, not a second
  event.
* `http` — `POST /events` on a local port answers 202 `{"id": ...}`, 422
  `{"field", "error"}` or 503 (broker unreachable: try again); optional bearer token.
  The body may also be a JSON array of such documents (a batch: at most `MAX_BATCH_EVENTS`
  = 500 of them, at most 4 MiB; a single document stays at most 1 MiB). Every element is
  validated before anything is sent; a bad one refuses the whole batch with 422 naming its
  index first (`{"field": "3.data.pupil.bsn", "error": "3.data.pupil.bsn: ..."}`), an empty
  or too long array names `(body)`. A good batch is published with its broker confirms
  outstanding together (events of the same `subject` one after the other, in the array's
  order) and answers 202 `{"ids": [...]}` in the array's order. A 503 means part of the batch
  may have been sent: post it again with the same `id`s, and what arrives twice is a
  duplicate the hub and the recipient drop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import Generator
from pathlib import Path
from typing import Annotated, Any

import structlog
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connectors.client import Connector, ConnectorError
from connectors.config import FolderSourceConfig, HttpSourceConfig
from schemas import nesting
from schemas.envelope import CloudEvent, Recipient, describe_validation_error, error_field
from schemas.errors import ContractError, EnvelopeInvalid, SchemaInvalid, TooLarge
from schemas.events import spec_for
from schemas.validation import validate_payload

__all__ = ["FolderSource", "HttpSource", "OutgoingDocument", "prepare"]

log = structlog.get_logger("inbeeld.connector.sources")

_SOURCE_NS = uuid.UUID("3e0d6a5c-52f4-4f5e-8a3b-7c1d9e2f4a10")
MAX_FILE_BYTES = 1_048_576
MAX_BATCH_EVENTS = 500  # events in one `POST /events` array
MAX_BATCH_BYTES = 4 * MAX_FILE_BYTES  # the body of such an array
_REMEMBERED = 10_000  # sent files whose event id a folder source remembers for a refusal
_ID = r"^[A-Za-z0-9._:-]+$"


class OutgoingDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Annotated[str, Field(max_length=100)]
    recipients: Annotated[list[Recipient], Field(min_length=1, max_length=500)]
    data: Any = Field(...)
    subject: Annotated[str | None, Field(max_length=100, pattern=_ID)] = None
    correlationid: Annotated[str | None, Field(max_length=64, pattern=_ID)] = None
    id: Annotated[str | None, Field(min_length=1, max_length=64, pattern=_ID)] = None


def prepare(connector: Connector, doc: Any, *, default_id: str | None = None) -> CloudEvent:
    """Validate an outgoing document and build its (unsealed) event; `ContractError` naming
    the field if anything is wrong."""
    try:
        out = OutgoingDocument.model_validate(doc)
    except ValidationError as exc:
        raise SchemaInvalid(
            describe_validation_error(exc, limit=1, root="document"), field=error_field(exc) or "document"
        ) from None
    spec = spec_for(out.type)
    if spec.hub_only:
        raise SchemaInvalid(f"type: only the hub sends {out.type}", field="type")
    try:
        payload = validate_payload(out.type, out.data)
    except SchemaInvalid as exc:
        field = f"data.{exc.field}" if exc.field and exc.field != "data" else "data"
        why = exc.message.split(f"{exc.field}: ", 1)[-1] if exc.field else exc.message
        raise SchemaInvalid(f"{field}: {why}", field=field) from None
    if spec.protection != "none" and connector.sealer is None:
        raise SchemaInvalid(
            f"type: {out.type} must be {spec.protection}; configure [keystore] and [hub] to send it",
            field="type",
        )
    data = payload.model_dump(mode="json", exclude_none=True)
    try:
        event = connector.event(
            out.type,
            data,
            out.recipients,
            subject=out.subject,
            correlationid=out.correlationid,
            extra={"id": out.id or default_id} if (out.id or default_id) else None,
        )
    except ValidationError as exc:
        raise EnvelopeInvalid(
            describe_validation_error(exc, limit=1, root="envelope"), field=error_field(exc)
        ) from None
    if len(event.to_bytes()) > MAX_FILE_BYTES:
        raise TooLarge("the event exceeds 1 MiB", field="data")
    return event


class FolderSource:
    def __init__(self, config: FolderSourceConfig, connector: Connector) -> None:
        self.config = config
        self.connector = connector
        self.path = config.path
        self.sent_dir = self.path / "sent"
        self.failed_dir = self.path / "failed"
        self.sent = 0
        self.failed = 0
        # event id -> the file in sent/, for a refusal the hub sends back (newest last)
        self._sent_files: OrderedDict[str, Path] = OrderedDict()

    async def run(self) -> None:
        for d in (self.path, self.sent_dir, self.failed_dir):
            d.mkdir(parents=True, exist_ok=True)
        while True:
            await self.scan()
            await asyncio.sleep(self.config.poll_seconds)

    def _candidates(self) -> list[Path]:
        files = [
            p
            for p in self.path.iterdir()
            if (p.is_file() or p.is_symlink()) and p.suffix == ".json" and not p.name.startswith(".")
        ]
        return sorted(files, key=lambda p: (p.lstat().st_mtime_ns, p.name))

    async def scan(self) -> int:
        """Send every file now in the folder. Returns how many were sent."""
        sent = 0
        for path in self._candidates():
            try:
                if await self.process(path):
                    sent += 1
            except ConnectorError as exc:
                log.warning("source.broker_unavailable", file=path.name, error=exc.message)
                return sent  # leave it (and the rest) for the next scan
        return sent

    async def process(self, path: Path) -> bool:
        if path.is_symlink():  # never follow one out of the folder (or to nothing)
            self._fail(path, SchemaInvalid("(file): a symbolic link; put the file here", field="(file)"))
            return False
        try:
            raw = path.read_bytes()
            stat = path.stat()
        except FileNotFoundError:
            return False
        except OSError as exc:  # unreadable: say so instead of failing every scan
            self._fail(path, SchemaInvalid(f"(file): cannot be read ({exc.strerror})", field="(file)"))
            return False
        try:
            if len(raw) > MAX_FILE_BYTES:
                raise TooLarge("the file exceeds 1 MiB", field="(file)")
            try:
                doc = nesting.loads(raw, what="(file): the JSON", field="(file)")  # or TooDeep
            except ValueError as exc:  # UnicodeDecodeError included
                where = ""
                if isinstance(exc, json.JSONDecodeError):
                    where = f" at line {exc.lineno} column {exc.colno}"
                raise SchemaInvalid(f"(file): not valid JSON{where}", field="(file)") from None
            digest = hashlib.sha256(raw).hexdigest()
            default_id = str(
                uuid.uuid5(_SOURCE_NS, f"{self.connector.tenant}|{path.name}|{digest}|{stat.st_mtime_ns}")
            )
            event = prepare(self.connector, doc, default_id=default_id)
        except ContractError as exc:
            self._fail(path, exc)
            return False
        await self.connector.publish(event)
        self._sent_files[event.id] = _move(path, self.sent_dir)
        while len(self._sent_files) > _REMEMBERED:
            self._sent_files.popitem(last=False)
        self.sent += 1
        log.info("source.sent", file=path.name, event_id=event.id, type=event.type)
        return True

    def _fail(self, path: Path, exc: ContractError) -> None:
        target = _move(path, self.failed_dir)
        text = (
            f"file: {path.name}\n"
            f"field: {exc.field or '(file)'}\n"
            f"error: {exc.message}\n"
            "nothing was sent; fix the file and drop it in the folder again.\n"
        )
        (target.parent / (target.name + ".error.txt")).write_text(text, encoding="utf-8")
        self.failed += 1
        log.warning("source.failed", file=path.name, field=exc.field, reason=exc.reason)

    def refused(self, event_id: str, reason: str, message: str, field: str | None = None) -> Path | None:
        """The hub refused the event `event_id`: if a file of this folder sent it, move it from
        `sent/` to `failed/` beside an `.error.txt` with the hub's reason. The moved file, or
        None if no file here sent it."""
        sent = self._sent_files.pop(event_id, None)
        if sent is None or not sent.exists():
            return None
        target = _move(sent, self.failed_dir)
        text = (
            f"file: {sent.name}\n"
            f"event: {event_id}\n"
            f"field: {field or '(none)'}\n"
            f"error: refused by the hub: {reason}: {message}\n"
            "the hub routed nothing; fix the file and drop it in the folder again.\n"
        )
        (target.parent / (target.name + ".error.txt")).write_text(text, encoding="utf-8")
        self.failed += 1
        log.warning("source.refused", file=sent.name, event_id=event_id, reason=reason, field=field)
        return target


def _read_body(body: bytes) -> Any:
    """The POSTed JSON: one document (at most 1 MiB) or an array of them (at most 4 MiB)."""
    batch = body.lstrip()[:1] == b"["
    if len(body) > (MAX_BATCH_BYTES if batch else MAX_FILE_BYTES):
        limit = "4 MiB (an array of events)" if batch else "1 MiB"
        raise TooLarge(f"the body exceeds {limit}", field="(body)")
    try:
        return nesting.loads(body, what="(body): the JSON", field="(body)")  # or TooDeep
    except ValueError:  # UnicodeDecodeError included
        raise SchemaInvalid("(body): not valid JSON", field="(body)") from None


def _at_index(exc: ContractError, index: int) -> ContractError:
    """The same refusal, its field and message prefixed with the element's index."""
    field = f"{index}.{exc.field}" if exc.field else str(index)
    message = exc.message
    if exc.field and message.startswith(f"{exc.field}:"):
        message = message[len(exc.field) + 1 :]
    else:
        message = " " + message
    return type(exc)(f"{field}:{message}", field=field)


def _move(path: Path, directory: Path) -> Path:
    target = directory / path.name
    if target.exists():
        target = directory / f"{path.stem}.{int(time.time() * 1000)}{path.suffix}"
    os.replace(path, target)
    return target


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The runtime owns the process's signals; uvicorn must not take them over.
        yield


class HttpSource:
    def __init__(self, config: HttpSourceConfig, connector: Connector, token: str | None) -> None:
        self.config = config
        self.connector = connector
        self.token = token
        self.app = self._app()
        self.server = _QuietServer(
            uvicorn.Config(self.app, host=config.host, port=config.port, log_level="warning", lifespan="off")
        )

    @property
    def port(self) -> int | None:
        for server in self.server.servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return None

    def _app(self) -> FastAPI:
        app = FastAPI(title="Inbeeld connector source", docs_url=None, redoc_url=None)

        @app.get("/health")
        async def health() -> dict[str, Any]:
            return {"ok": True, "broker": self.connector.connected}

        @app.post("/events", status_code=202)
        async def post_event(request: Request) -> JSONResponse:
            if self.token is not None:
                given = request.headers.get("authorization", "")
                if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                    return JSONResponse({"error": "unauthorised"}, status_code=401)
            body = await request.body()
            try:
                doc = _read_body(body)
                if isinstance(doc, list):
                    events = self._prepare_batch(doc)
                else:
                    events = [prepare(self.connector, doc)]
            except ContractError as exc:
                return JSONResponse({"field": exc.field, "error": exc.message}, status_code=422)
            try:
                if isinstance(doc, list):
                    sent = await self.connector.publish_many(events)
                    return JSONResponse({"ids": [e.id for e in sent]}, status_code=202)
                await self.connector.publish(events[0])
            except ConnectorError as exc:
                return JSONResponse({"error": exc.message}, status_code=503)
            return JSONResponse({"id": events[0].id}, status_code=202)

        return app

    def _prepare_batch(self, docs: list[Any]) -> list[CloudEvent]:
        """Every element validated before anything is sent; the first bad one is named by
        its index (`3.data.pupil.bsn`)."""
        if not docs:
            raise SchemaInvalid("(body): an empty array; send at least one event", field="(body)")
        if len(docs) > MAX_BATCH_EVENTS:
            raise TooLarge(
                f"(body): {len(docs)} events; a batch holds at most {MAX_BATCH_EVENTS}", field="(body)"
            )
        events = []
        for i, doc in enumerate(docs):
            try:
                events.append(prepare(self.connector, doc))
            except ContractError as exc:
                raise _at_index(exc, i) from None
        return events

    async def run(self) -> None:
        await self.server.serve()

    def stop(self) -> None:
        self.server.should_exit = True
