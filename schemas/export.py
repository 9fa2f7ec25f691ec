"""Generate the published contract from the Python models.

    python -m schemas.export           write schemas/jsonschema/*.json and schemas/asyncapi.yaml
    python -m schemas.export --check   exit 1 listing every file that is stale (or orphaned)

Writes, per event type, `jsonschema/<short_type>.v<N>.json` (the payload's JSON Schema,
draft 2020-12, `$id` = the spec's `dataschema`), `jsonschema/cloudevent.json` (the envelope)
and `asyncapi.yaml` (AsyncAPI 3: the ingress exchange, the per-tenant inboxes, one message
per event type). Output is deterministic — sorted keys, no timestamps — so `--check` in CI
catches a model change without a regenerated contract. No I/O except in `write`/`main`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # types-PyYAML is not a dev dependency yet
from pydantic.json_schema import models_json_schema

from schemas.envelope import CONTENT_TYPE, SOURCE_RE, CloudEvent
from schemas.events import EVENTS, SCHEMA_BASE, EventSpec, Payload

__all__ = [
    "ASYNCAPI_VERSION",
    "CONTRACT_VERSION",
    "asyncapi_document",
    "envelope_schema",
    "main",
    "payload_schema",
    "render",
    "stale",
    "write",
]

ROOT = Path(__file__).resolve().parent
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ENVELOPE_ID = f"{SCHEMA_BASE}/cloudevent.json"
ASYNCAPI_VERSION = "3.1.0"
CONTRACT_VERSION = "1.0.0"
AMQP_BINDING_VERSION = "0.3.0"

# Required on the wire by CloudEvents 1.0 even where the Python model fills in a default.
_ENVELOPE_REQUIRED = ("id", "recipients", "source", "specversion", "type")

_PROTECTION_TEXT = {
    "none": "`data` is the payload as plain JSON.",
    "signed": (
        "`data` is a JWS (RFC 7515, alg Ed25519) by the sender whose payload is the JSON "
        "payload; no personal data, so it is signed, not encrypted."
    ),
    "sealed": (
        "`data` is a JWS (RFC 7515, alg Ed25519) by the sender whose payload is a JWE "
        "(RFC 7516, ECDH-ES+A256KW / A256GCM, one recipient entry per recipient key); the "
        "JWE's plaintext is the JSON payload. Only the recipients can read it; the hub "
        "verifies the signature without decrypting."
    ),
}


def _dump_json(doc: Any) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _dump_yaml(doc: Any) -> str:
    return str(yaml.safe_dump(doc, sort_keys=True, allow_unicode=True, default_flow_style=False, width=100))


def _ecma_pattern(pattern: str) -> str:
    """Python's named groups `(?P<x>` are not ECMA-262; plain groups are."""
    return re.sub(r"\(\?P<\w+>", "(", pattern)


def payload_schema(spec: EventSpec) -> dict[str, Any]:
    """The JSON Schema of one event type's (decrypted) payload."""
    schema = spec.model.model_json_schema(mode="validation")
    doc = (spec.model.__doc__ or "").strip()
    description = (
        f"Payload of `{spec.type}` (version {spec.version}). Protection: {spec.protection}. "
        + _PROTECTION_TEXT[spec.protection]
    )
    if doc:
        description = f"{doc}\n\n{description}"
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": spec.dataschema,
        **schema,
        "description": description,
    }


def _envelope_body() -> dict[str, Any]:
    schema = CloudEvent.model_json_schema(mode="validation")
    props = schema["properties"]
    props["source"]["pattern"] = _ecma_pattern(SOURCE_RE.pattern)
    props["data"] = {"description": "The payload: plain JSON or a JOSE object, as the event type says."}
    schema["required"] = sorted(set(schema.get("required", [])) | set(_ENVELOPE_REQUIRED))
    schema["description"] = (
        "A CloudEvents 1.0 event in structured JSON mode (`application/cloudevents+json`), "
        "NL GOV profile. Context attributes never carry personal data. Extensions: "
        "`recipients`, `correlationid`, `traceparent`, and the CloudEvents sequence "
        "extension as the NL GOV profile includes it: `sequence` (stamped by the hub per "
        "recipient, a zero-padded decimal string so that string order is numeric order) with "
        "`sequencetype` `Integer`."
    )
    return schema


def envelope_schema() -> dict[str, Any]:
    return {"$schema": JSON_SCHEMA_DIALECT, "$id": ENVELOPE_ID, **_envelope_body()}


# --- AsyncAPI -----------------------------------------------------------------------------


def _jose_schema() -> dict[str, Any]:
    b64url = {"type": "string", "pattern": "^[A-Za-z0-9_-]+$", "maxLength": 1_500_000}
    signature = {
        "type": "object",
        "additionalProperties": False,
        "required": ["protected", "signature"],
        "properties": {"protected": b64url, "signature": b64url},
    }
    return {
        "title": "JOSE object (wire format v1)",
        "description": (
            "A JWS (RFC 7515) by the sender, General JSON Serialization, exactly one "
            "signature, alg Ed25519 (RFC 9864), `kid` = RFC 7638 thumbprint. Its protected "
            "header carries `inb` (wire version) and `ce` (the envelope's id, type, source, "
            "recipients, and its subject and correlationid when it has them), both critical. "
            "Signed events: the payload is the UTF-8 JSON payload (`cty` json). Sealed events: "
            "the payload is a JWE (RFC 7516, General JSON Serialization, ECDH-ES+A256KW / "
            "A256GCM, one recipient entry per recipient key, `cty` jose+json) whose plaintext "
            "is the JSON payload. Also read: the Flattened JSON Serialization of the JWS and of "
            "a one-recipient JWE, and a one-recipient JWE with `epk` in its protected header. "
            "See `schemas.sealed`."
        ),
        "oneOf": [
            {
                "title": "General JSON Serialization",
                "type": "object",
                "additionalProperties": False,
                "required": ["payload", "signatures"],
                "properties": {
                    "payload": b64url,
                    "signatures": {"type": "array", "minItems": 1, "maxItems": 1, "items": signature},
                },
            },
            {
                "title": "Flattened JSON Serialization",
                "type": "object",
                "additionalProperties": False,
                "required": ["payload", "protected", "signature"],
                "properties": {"payload": b64url, "protected": b64url, "signature": b64url},
            },
        ],
    }


def _component_schemas() -> tuple[dict[str, Any], dict[str, str]]:
    """All payload models and the envelope as AsyncAPI components; model name -> ref."""
    models: list[type[Payload] | type[CloudEvent]] = [CloudEvent]
    models += [spec.model for spec in EVENTS.values()]
    refs, defs = models_json_schema(
        [(m, "validation") for m in models], ref_template="#/components/schemas/{model}"
    )
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    names = {m.__name__: refs[(m, "validation")]["$ref"] for m in models}
    schemas["CloudEvent"] = _envelope_body()
    schemas["JoseObject"] = _jose_schema()
    return schemas, names


def _message(spec: EventSpec, refs: dict[str, str]) -> dict[str, Any]:
    payload_ref = refs[spec.model.__name__]
    if spec.protection == "none":
        data: dict[str, Any] = {"$ref": payload_ref}
    else:
        data = {
            "allOf": [{"$ref": "#/components/schemas/JoseObject"}],
            "description": f"{_PROTECTION_TEXT[spec.protection]} Payload schema: "
            f"{spec.dataschema} (components/schemas/{spec.model.__name__}).",
        }
    doc = (spec.model.__doc__ or "").strip().splitlines()
    sender = "the hub" if spec.hub_only else "a tenant"
    return {
        "name": spec.type,
        "title": spec.short_type,
        "summary": doc[0] if doc else f"The `{spec.short_type}` event.",
        "description": (
            f"Sent by {sender}. Protection: {spec.protection}. {_PROTECTION_TEXT[spec.protection]}"
        ),
        "contentType": CONTENT_TYPE,
        "correlationId": {"location": "$message.payload#/correlationid"},
        "externalDocs": {"url": spec.dataschema, "description": "payload JSON Schema"},
        "payload": {
            "allOf": [
                {"$ref": "#/components/schemas/CloudEvent"},
                {
                    "type": "object",
                    "required": ["data"],
                    "properties": {
                        "type": {"const": spec.type},
                        "dataschema": {"const": spec.dataschema},
                        "data": data,
                    },
                },
            ]
        },
        "bindings": {
            "amqp": {
                "messageType": spec.type,
                "bindingVersion": AMQP_BINDING_VERSION,
            }
        },
    }


def asyncapi_document() -> dict[str, Any]:
    schemas, refs = _component_schemas()
    specs = sorted(EVENTS.values(), key=lambda s: s.short_type)
    messages = {s.short_type: _message(s, refs) for s in specs}
    sendable = [s.short_type for s in specs if not s.hub_only]
    every = [s.short_type for s in specs]
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:inbeeld:hub",
        "info": {
            "title": "Inbeeld exchange hub — tenant interface",
            "version": CONTRACT_VERSION,
            "description": (
                "What a tenant's connector (a municipality, regional bureau or association) "
                "sends to and receives from the Inbeeld hub over RabbitMQ: shared letter "
                "templates, pupil transfers and neighbour notices. Every message is a "
                "CloudEvents 1.0 event in structured JSON mode; personal data is end-to-end "
                "encrypted (JOSE) and never appears in context attributes."
            ),
            "license": {"name": "EUPL-1.2", "url": "https://eupl.eu/1.2/en/"},
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "hub": {
                "host": "{host}",
                "protocol": "amqps",
                "description": "The deployment's RabbitMQ; one vhost per deployment.",
                "variables": {
                    "host": {
                        "default": "localhost:5671",
                        "description": "Broker host and port.",
                    }
                },
                "security": [{"$ref": "#/components/securitySchemes/tenantUser"}],
            }
        },
        "channels": {
            "ingress": {
                "address": "inbeeld.ingress",
                "title": "Ingress",
                "description": (
                    "Topic exchange every tenant publishes to, with `user_id` set to its "
                    "broker username (the broker rejects a spoofed one). The hub router "
                    "consumes everything (binding `#`); the routing key is informational."
                ),
                "messages": {k: {"$ref": f"#/components/messages/{k}"} for k in sendable},
                "bindings": {
                    "amqp": {
                        "is": "routingKey",
                        "exchange": {
                            "name": "inbeeld.ingress",
                            "type": "topic",
                            "durable": True,
                            "autoDelete": False,
                        },
                        "bindingVersion": AMQP_BINDING_VERSION,
                    }
                },
            },
            "inbox": {
                "address": "inbeeld.inbox.{tenant}.{key}",
                "title": "Tenant inbox",
                "description": (
                    "Quorum queue per tenant, fed by the hub through the direct exchange "
                    "`inbeeld.delivery` (routing key: the tenant code). Only that tenant may "
                    "read it, and its name ends in a random key so no other tenant can even "
                    "probe it. One consumer is active at a time (`x-single-active-consumer`): "
                    "a second connector instance waits as a standby. The hub stamps a "
                    "per-recipient `sequence` (a 20-digit zero-padded string, `sequencetype` "
                    "Integer) so a connector can detect gaps; consumers "
                    "drop duplicates by `source` + `id`."
                ),
                "parameters": {
                    "tenant": {
                        "description": "The tenant code: a CBS code (GM0518) or a name.",
                        "examples": ["GM0518", "GM0599", "ingrado"],
                    },
                    "key": {
                        "description": (
                            "128 random bits, URL-safe base64, chosen by the hub at provisioning; "
                            "printed by `inbeeld tenant provision` and returned to the tenant by "
                            "`GET /tenants/me` (`inbox`)."
                        ),
                        "examples": ["q3Yx0cJ6y9mG0bQ1aW8tZw"],
                    },
                },
                "messages": {k: {"$ref": f"#/components/messages/{k}"} for k in every},
                "bindings": {
                    "amqp": {
                        "is": "queue",
                        "queue": {
                            "name": "inbeeld.inbox.{tenant}.{key}",
                            "durable": True,
                            "exclusive": False,
                            "autoDelete": False,
                        },
                        "bindingVersion": AMQP_BINDING_VERSION,
                    }
                },
            },
        },
        "operations": {
            "publishEvent": {
                "action": "send",
                "channel": {"$ref": "#/channels/ingress"},
                "title": "Publish an event",
                "summary": "A tenant sends an event to the hub (persistent, with confirms).",
                "messages": [{"$ref": f"#/channels/ingress/messages/{k}"} for k in sendable],
                "bindings": {"amqp": {"deliveryMode": 2, "bindingVersion": AMQP_BINDING_VERSION}},
            },
            "receiveEvents": {
                "action": "receive",
                "channel": {"$ref": "#/channels/inbox"},
                "title": "Receive events",
                "summary": "A tenant consumes its inbox and acks after processing.",
                "messages": [{"$ref": f"#/channels/inbox/messages/{k}"} for k in every],
                "bindings": {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING_VERSION}},
            },
        },
        "components": {
            "messages": messages,
            "schemas": schemas,
            "securitySchemes": {
                "tenantUser": {
                    "type": "userPassword",
                    "description": (
                        "One broker user per tenant, provisioned by the hub: write the "
                        "ingress, read its own inbox, configure nothing."
                    ),
                }
            },
        },
    }


# --- files --------------------------------------------------------------------------------


def render() -> dict[str, str]:
    """Every generated file: path relative to `schemas/` -> its exact text."""
    files = {f"jsonschema/{s.schema_file}": _dump_json(payload_schema(s)) for s in EVENTS.values()}
    files["jsonschema/cloudevent.json"] = _dump_json(envelope_schema())
    files["asyncapi.yaml"] = _dump_yaml(asyncapi_document())
    return dict(sorted(files.items()))


def _orphans(root: Path, files: dict[str, str]) -> list[str]:
    on_disk = {f"jsonschema/{p.name}" for p in (root / "jsonschema").glob("*.json")}
    return sorted(on_disk - files.keys())


def stale(root: Path = ROOT) -> list[str]:
    """Generated files that are missing or differ on disk, and orphaned schema files."""
    files = render()
    out = [
        rel
        for rel, text in files.items()
        if not (root / rel).is_file() or (root / rel).read_text(encoding="utf-8") != text
    ]
    return out + [f"{rel} (not generated; remove it)" for rel in _orphans(root, files)]


def write(root: Path = ROOT) -> list[str]:
    """Write what changed, remove orphaned schema files; returns the paths touched."""
    files = render()
    touched = []
    for rel, text in files.items():
        path = root / rel
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            touched.append(rel)
    for rel in _orphans(root, files):
        (root / rel).unlink()
        touched.append(rel)
    return touched


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m schemas.export", description=__doc__)
    parser.add_argument("--check", action="store_true", help="report stale files, write none")
    args = parser.parse_args(argv)
    if args.check:
        bad = stale()
        for rel in bad:
            print(f"stale: schemas/{rel}", file=sys.stderr)
        if bad:
            print("run `python -m schemas.export` and commit the result", file=sys.stderr)
        return 1 if bad else 0
    for rel in write():
        print(f"wrote schemas/{rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
