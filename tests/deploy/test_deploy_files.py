"""The deployment files under deploy/: they parse, match their schemas (Compose Specification,
Kubernetes OpenAPI), agree with the hub's settings and broker topology, and commit no password.

Schemas come from dev dependencies that bundle them, so this runs offline:
- Compose Specification: the copy vendored by `check-jsonschema`
  (check_jsonschema/builtin_schemas/vendor/compose-spec.json, Apache-2.0, from
  github.com/compose-spec/compose-spec, schema/compose-spec.json);
- Kubernetes: `kubernetes-validate`, which bundles the API schemas per Kubernetes version.

The last test (marker `broker`) imports the RabbitMQ definitions into a scratch vhost on the
real broker and lets the hub declare its topology there, so argument mismatches show up."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib.resources
import json
import os
import re
import shutil
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import jsonschema
import kubernetes_validate
import pytest
import yaml

from connectors.keystore import KEK_ENV, PASSPHRASE_ENV
from hub.broker import topology
from hub.config import Settings
from schemas.tls import TLS12_CIPHERS

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose.yaml"
DEFINITIONS = DEPLOY / "rabbitmq" / "definitions.json"
RABBITMQ_CONF = DEPLOY / "rabbitmq" / "rabbitmq.conf"
RABBITMQ_TLS_CONF = DEPLOY / "rabbitmq" / "tls.conf"
RENDER = DEPLOY / "rabbitmq" / "render-definitions.sh"
DOCKERFILE = DEPLOY / "Dockerfile"

HUB_SERVICES = ("migrate", "api", "router")
HUB_USER = "inbeeld-hub"
K8S_VERSIONS = ("1.28.0", kubernetes_validate.utils.latest_version())
SETTINGS_VARS = {f"INBEELD_{name.upper()}" for name in Settings.model_fields}
PLACEHOLDER = re.compile(r"^(<[^<>]+>|\$\{[A-Z0-9_]+(:?[-?][^}]*)?\})$")


# -- helpers -----------------------------------------------------------------------------------


def deploy_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file())


def structured_files() -> list[Path]:
    return [p for p in deploy_files() if p.suffix in {".yaml", ".yml", ".json"}]


def load_all(path: Path) -> list[Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return [json.loads(text)]
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def definitions() -> dict[str, Any]:
    return json.loads(DEFINITIONS.read_text(encoding="utf-8"))


def k8s_docs() -> list[tuple[Path, dict[str, Any]]]:
    return [
        (p, d) for p in sorted(K8S.glob("*.yaml")) for d in load_all(p) if d.get("kind") != "Kustomization"
    ]


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    [obj] = [d for _, d in k8s_docs() if d["kind"] == kind and d["metadata"]["name"] == name]
    return obj


def configmap() -> dict[str, str]:
    return k8s_object("ConfigMap", "inbeeld-hub")["data"]


def secret_template() -> dict[str, str]:
    return k8s_object("Secret", "inbeeld-hub")["stringData"]


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (dotted key path, scalar value) in a parsed document."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk(v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{path}[{i}]")
    else:
        yield path, node


def policy(name: str) -> dict[str, Any]:
    [p] = [p for p in definitions()["policies"] if p["name"] == name]
    return p


def compose_env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in compose()["services"][service]["environment"].items()}


INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}")


def interpolated(value: str) -> str:
    """`value` with every compose interpolation replaced by the variable's name."""
    return INTERPOLATION.sub(lambda m: m.group(1), value)


def compose_secret_interpolation_names() -> set[str]:
    return {spec["environment"] for spec in compose()["secrets"].values()}


# -- every file parses ---------------------------------------------------------------------------


def test_deploy_tree_has_the_expected_files() -> None:
    for rel in (
        "Dockerfile",
        "Dockerfile.dockerignore",
        "compose.yaml",
        ".env.example",
        ".gitignore",
        "README.md",
        "rabbitmq/rabbitmq.conf",
        "rabbitmq/tls.conf",
        "rabbitmq/definitions.json",
        "rabbitmq/render-definitions.sh",
        "k8s/kustomization.yaml",
    ):
        assert (DEPLOY / rel).is_file(), rel


@pytest.mark.parametrize("path", structured_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_and_json_file_parses(path: Path) -> None:
    docs = load_all(path)
    assert docs, f"{path} is empty"
    assert all(isinstance(d, dict) for d in docs)


# -- compose -----------------------------------------------------------------------------------


def compose_validator() -> jsonschema.protocols.Validator:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(vendor.joinpath("compose-spec.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_compose_file_matches_the_compose_specification() -> None:
    validator = compose_validator()
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(compose())]
    assert not errors, "\n".join(errors)


def test_the_compose_schema_is_strict_enough_to_catch_mistakes() -> None:
    validator = compose_validator()
    broken = compose()
    broken["services"]["api"]["depends_on"]["migrate"]["condition"] = "service_finished"
    broken["services"]["router"]["helthcheck"] = {"disable": True}
    assert len(list(validator.iter_errors(broken))) >= 2


def test_compose_services_and_start_order() -> None:
    doc = compose()
    services = doc["services"]
    assert set(services) == {"rabbitmq", "postgres", *HUB_SERVICES}
    assert re.fullmatch(r"rabbitmq:3\.1[23]-management", services["rabbitmq"]["image"])
    assert services["postgres"]["image"] == "postgres:16"

    for name in ("rabbitmq", "postgres"):
        hc = services[name]["healthcheck"]
        assert hc["test"][0] in {"CMD", "CMD-SHELL"} and not hc.get("disable")
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert any("/var/lib/postgresql/data" in v for v in services["postgres"]["volumes"])
    assert any("/var/lib/rabbitmq" in v for v in services["rabbitmq"]["volumes"])

    commands = {name: services[name]["command"] for name in HUB_SERVICES}
    assert commands == {"migrate": ["migrate"], "api": ["serve", "--no-router"], "router": ["router"]}
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "rabbitmq": {"condition": "service_healthy"},
    }
    for name in ("api", "router"):
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "rabbitmq": {"condition": "service_healthy"},
            "postgres": {"condition": "service_healthy"},
        }
    assert services["router"]["deploy"]["replicas"] == 2
    api_hc = services["api"]["healthcheck"]
    assert "/health" in " ".join(api_hc["test"]) and "8080" in " ".join(api_hc["test"])
    assert services["router"]["healthcheck"] == {"disable": True}  # no HTTP port in a router

    build = services["api"]["build"]
    assert (COMPOSE.parent / build["context"]).resolve() == ROOT
    assert (ROOT / build["dockerfile"]).resolve() == DOCKERFILE
    assert len({services[n]["image"] for n in HUB_SERVICES}) == 1
    for name in HUB_SERVICES:
        svc = services[name]
        assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in svc["security_opt"]


def test_compose_hub_services_are_configured_through_settings() -> None:
    env = compose_env("api")
    assert {"INBEELD_AMQP_URL", "INBEELD_DATABASE_URL", "INBEELD_RABBITMQ_API_URL", "INBEELD_VHOST"} <= set(
        env
    )
    assert env["INBEELD_API_HOST"] == "0.0.0.0" and env["INBEELD_API_PORT"] == "8080"
    for name in HUB_SERVICES:
        assert set(compose_env(name)) <= SETTINGS_VARS, name
        assert compose_env(name)["INBEELD_VHOST"] == env["INBEELD_VHOST"]

    amqp = urlsplit(interpolated(env["INBEELD_AMQP_URL"]))
    assert (amqp.scheme, amqp.hostname, amqp.port, amqp.username) == ("amqp", "rabbitmq", 5672, HUB_USER)
    assert amqp.path in {"", "/"}, "the vhost comes from INBEELD_VHOST, not the URL"
    db = urlsplit(interpolated(env["INBEELD_DATABASE_URL"]))
    assert (db.scheme, db.hostname, db.port, db.username) == (
        "postgresql+asyncpg",
        "postgres",
        5432,
        "inbeeld",
    )
    pg_env = compose()["services"]["postgres"]["environment"]
    assert db.path == "/" + pg_env["POSTGRES_DB"] and db.username == pg_env["POSTGRES_USER"]
    api = urlsplit(env["INBEELD_RABBITMQ_API_URL"])
    assert (api.hostname, api.port) == ("rabbitmq", management_port())


def test_compose_secrets_come_from_the_env_file() -> None:
    doc = compose()
    env = compose_env("api")
    # Secret values are interpolated from deploy/.env, with a hard error when missing.
    for var in ("INBEELD_AMQP_URL", "INBEELD_DATABASE_URL"):
        [password] = re.findall(r"://[^:/]+:(.+)@", env[var])
        assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]+\}", password), var
    assert compose_secret_interpolation_names() == {"RABBITMQ_HUB_PASSWORD", "POSTGRES_PASSWORD"}
    pg = doc["services"]["postgres"]
    assert "POSTGRES_PASSWORD" not in pg["environment"]
    assert pg["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert pg["secrets"] == ["postgres_password"]
    rmq = doc["services"]["rabbitmq"]
    assert rmq["secrets"] == ["rabbitmq_hub_password"]
    assert rmq["environment"]["HUB_PASSWORD_FILE"] == "/run/secrets/rabbitmq_hub_password"

    example = env_example()
    assert compose_secret_interpolation_names() <= set(example)
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text(encoding="utf-8")))
    documented = set(example) | set(re.findall(r"^# ([A-Z0-9_]+)=", env_example_text(), re.M))
    assert used <= documented, used - documented
    gitignore = (DEPLOY / ".gitignore").read_text(encoding="utf-8").split()
    assert ".env" in gitignore


def test_compose_wires_the_rabbitmq_files() -> None:
    rmq = compose()["services"]["rabbitmq"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in rmq["volumes"] if v.startswith("./")}
    assert set(mounts) == {
        "./rabbitmq/rabbitmq.conf",
        "./rabbitmq/definitions.json",
        "./rabbitmq/render-definitions.sh",
    }
    assert all(v.endswith(":ro") for v in rmq["volumes"] if v.startswith("./"))
    assert mounts["./rabbitmq/rabbitmq.conf"].startswith("/etc/rabbitmq/conf.d/")
    # Read after the image's conf.d/10-defaults.conf, which lets guest log in remotely.
    assert Path(mounts["./rabbitmq/rabbitmq.conf"]).name > "10-defaults.conf"
    template = mounts["./rabbitmq/definitions.json"]
    script = mounts["./rabbitmq/render-definitions.sh"]
    assert rmq["entrypoint"] == ["sh", script]
    assert rmq["command"] == ["rabbitmq-server"]
    for rel in mounts:
        assert (DEPLOY / rel).is_file(), rel
    text = RENDER.read_text(encoding="utf-8")
    assert f"DEFINITIONS_TEMPLATE:-{template}" in text
    out = re.search(r"DEFINITIONS_OUT:-([^}]+)\}", text)
    assert out is not None
    assert rabbitmq_conf()["definitions.local.path"] == out.group(1)
    assert any(t.split(":")[0] == str(Path(out.group(1)).parent) for t in rmq["tmpfs"])


# -- .env.example ------------------------------------------------------------------------------


def env_example_text() -> str:
    return (DEPLOY / ".env.example").read_text(encoding="utf-8")


def env_example() -> dict[str, str]:
    pairs = {}
    for line in env_example_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def test_env_example_holds_placeholders_only() -> None:
    values = env_example()
    assert values
    for key, value in values.items():
        assert PLACEHOLDER.match(value), f"{key} must be a <placeholder>, not a value"


# -- Dockerfile --------------------------------------------------------------------------------


def test_dockerfile() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    instructions = [line.split(None, 1) for line in re.sub(r"\\\n", " ", text).splitlines()]
    instructions = [i for i in instructions if i and not i[0].startswith("#")]
    words = [i[0].upper() for i in instructions]
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
    froms = [i[1].split()[0] for i in instructions if i[0].upper() == "FROM"]
    assert froms and all(
        f.replace("${PYTHON_IMAGE}", args["PYTHON_IMAGE"]) == "python:3.11-slim" for f in froms
    )

    [user] = [i[1].strip() for i in instructions if i[0].upper() == "USER"]
    assert user.split(":")[0] not in {"0", "root"}
    assert words.index("USER") > max(i for i, w in enumerate(words) if w == "RUN"), "USER after every RUN"
    [hc] = [i[1] for i in instructions if i[0].upper() == "HEALTHCHECK"]
    assert "/health" in hc and "INBEELD_API_PORT" in hc
    [entry] = [json.loads(i[1]) for i in instructions if i[0].upper() == "ENTRYPOINT"]
    [cmd] = [json.loads(i[1]) for i in instructions if i[0].upper() == "CMD"]
    assert entry == ["inbeeld"] and cmd == ["serve"]
    assert "[dev]" not in text and "pip install -e" not in text
    for var in re.findall(r"\b(INBEELD_[A-Z0-9_]+)=", text):
        assert var in SETTINGS_VARS

    # Everything COPY takes from the context exists, and the ignore file lets it through.
    sources = [
        s for i in instructions if i[0].upper() == "COPY" and "--from" not in i[1] for s in i[1].split()[:-1]
    ]
    assert sources
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for src in sources:
        assert (ROOT / src).exists(), src
        assert src.rstrip("/") in allowed, src
    packages = {p.split("*")[0] for p in ["hub*", "connectors*", "schemas*", "demo*", "bench*"]}
    assert packages <= {s.rstrip("/") for s in sources}


# -- RabbitMQ ------------------------------------------------------------------------------------


def rabbitmq_conf(path: Path = RABBITMQ_CONF) -> dict[str, str]:
    conf = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"not a `key = value` line: {line!r}"
            assert re.fullmatch(r"[a-z_][a-z0-9_.]*", key.strip()), key
            conf[key.strip()] = value.strip()
    return conf


def management_port() -> int:
    return int(rabbitmq_conf()["management.tcp.port"])


def test_rabbitmq_conf() -> None:
    conf = rabbitmq_conf()
    assert conf["loopback_users.guest"] == "true"
    assert conf["definitions.import_backend"] == "local_filesystem"
    assert conf["listeners.tcp.default"] == "5672"
    assert management_port() == 15672


def test_rabbitmq_tls_conf_is_mutual_tls_after_the_ncsc_guidelines() -> None:
    """deploy/rabbitmq/tls.conf (tests/connectors/test_tls.py runs a broker with it)."""
    conf = rabbitmq_conf(RABBITMQ_TLS_CONF)
    assert conf["listeners.tcp"] == "none" and conf["listeners.ssl.default"] == "5671"
    assert conf["ssl_options.verify"] == "verify_peer"
    assert conf["ssl_options.fail_if_no_peer_cert"] == "true"
    for key in ("cacertfile", "certfile", "keyfile"):
        assert conf[f"ssl_options.{key}"].startswith("/etc/rabbitmq/tls/"), key
    numbered = sorted(
        (int(k.rsplit(".", 1)[1]), v) for k, v in conf.items() if k.startswith("ssl_options.versions.")
    )
    assert [v for _, v in numbered] == ["tlsv1.3", "tlsv1.2"]
    ciphers = [
        v for _, v in sorted((int(k.rsplit(".", 1)[1]), v) for k, v in conf.items() if ".ciphers." in k)
    ]
    tls13 = [c for c in ciphers if c.startswith("TLS_")]
    assert set(tls13) == {"TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256"}
    # The same TLS 1.2 suites the hub and the connectors accept (schemas/tls.py).
    assert ciphers[len(tls13) :] == TLS12_CIPHERS.split(":")
    assert conf["auth_mechanisms.1"] == "PLAIN" and "auth_mechanisms.2" not in conf
    # Read after rabbitmq.conf (mounted as conf.d/90-inbeeld.conf), whose plain listener it closes.
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    assert "/etc/rabbitmq/conf.d/95-inbeeld-tls.conf" in readme


def test_definitions_vhost_user_and_permissions() -> None:
    d = definitions()
    [vhost] = d["vhosts"]
    assert vhost["name"] == compose_env("api")["INBEELD_VHOST"] == configmap()["INBEELD_VHOST"]
    [user] = d["users"]
    assert user["name"] == HUB_USER
    assert "administrator" in str(user["tags"])  # creates vhosts and tenant users via the API
    assert user["password_hash"] == "", "the committed definitions carry no password"
    assert user["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    assert d["permissions"] == [
        {"user": HUB_USER, "vhost": vhost["name"], "configure": ".*", "write": ".*", "read": ".*"}
    ]
    assert all(
        item["vhost"] == vhost["name"]
        for key in ("policies", "queues", "exchanges", "bindings")
        for item in d[key]
    )
    assert "guest" not in json.dumps(d)


def test_definitions_topology_matches_hub_topology() -> None:
    d = definitions()
    exchanges = {e["name"]: e for e in d["exchanges"]}
    assert {n: e["type"] for n, e in exchanges.items()} == {
        topology.INGRESS: "topic",
        topology.DELIVERY: "direct",
        topology.DLX: "fanout",
    }
    for e in exchanges.values():
        assert (e["durable"], e["auto_delete"], e["internal"], e["arguments"]) == (True, False, False, {})

    limit = int(compose_env("router")["INBEELD_DELIVERY_LIMIT"])
    queues = {q["name"]: q for q in d["queues"]}
    assert set(queues) == {topology.ROUTER_QUEUE, topology.DEAD}
    # Exactly what declare_core declares, or the hub's redeclaration fails (PRECONDITION_FAILED).
    assert queues[topology.ROUTER_QUEUE]["arguments"] == topology._quorum_args(limit)
    assert queues[topology.DEAD]["arguments"] == {"x-queue-type": "quorum"}
    for q in queues.values():
        assert (q["durable"], q["auto_delete"]) == (True, False)

    bindings = {
        (b["source"], b["destination"], b["destination_type"], b["routing_key"]) for b in d["bindings"]
    }
    assert bindings == {
        (topology.INGRESS, topology.ROUTER_QUEUE, "queue", "#"),
        (topology.DLX, topology.DEAD, "queue", ""),
    }


def test_policies_match_queue_arguments_and_settings() -> None:
    for where, env in {"compose": compose_env("router"), "k8s": configmap()}.items():
        limit = int(env["INBEELD_DELIVERY_LIMIT"])
        max_length = int(env["INBEELD_INBOX_MAX_LENGTH"])
        assert limit == Settings.model_fields["delivery_limit"].default, where
        assert max_length == Settings.model_fields["inbox_max_length"].default, where

        router_args = topology._quorum_args(limit)
        inbox_args = topology._quorum_args(limit, max_length)
        as_policy = {
            "x-delivery-limit": "delivery-limit",
            "x-dead-letter-exchange": "dead-letter-exchange",
            "x-max-length": "max-length",
            "x-overflow": "overflow",
        }
        expected_router = {as_policy[k]: v for k, v in router_args.items() if k in as_policy}
        expected_inbox = {as_policy[k]: v for k, v in inbox_args.items() if k in as_policy}
        assert policy("inbeeld-router")["definition"] == expected_router, where
        assert policy("inbeeld-inbox")["definition"] == expected_inbox, where
    assert policy("inbeeld-inbox")["definition"]["overflow"] == "reject-publish"

    inboxes = [topology.new_inbox_name("GM0518"), topology.new_inbox_name("x")]
    names = [topology.ROUTER_QUEUE, topology.DEAD, *inboxes]
    matches = {p["name"]: [n for n in names if re.search(p["pattern"], n)] for p in definitions()["policies"]}
    assert matches == {
        "inbeeld-router": [topology.ROUTER_QUEUE],
        "inbeeld-inbox": inboxes,
    }
    for p in definitions()["policies"]:
        assert p["apply-to"] == "queues"
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    assert re.search(r"<!--(?:(?!-->).)*win over these policies", readme, re.S), "precedence comment"


def rabbitmq_password_hash_ok(encoded: str, password: str) -> bool:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt[4] ++ sha256(salt ++ password))."""
    raw = base64.b64decode(encoded)
    return len(raw) == 36 and raw[4:] == hashlib.sha256(raw[:4] + password.encode()).digest()


def render(tmp_path: Path, password: str | None) -> subprocess.CompletedProcess[str]:
    if shutil.which("sh") is None or shutil.which("openssl") is None:
        pytest.skip("needs sh and openssl")
    secret = tmp_path / "hub-password"
    if password is not None:
        secret.write_text(password + "\n", encoding="utf-8")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HUB_PASSWORD_FILE": str(secret),
        "DEFINITIONS_TEMPLATE": str(DEFINITIONS),
        "DEFINITIONS_OUT": str(tmp_path / "out" / "definitions.json"),
    }
    return subprocess.run(["sh", str(RENDER)], env=env, capture_output=True, text=True, timeout=30)


def test_render_definitions_puts_only_a_salted_hash_in_a_private_copy(tmp_path: Path) -> None:
    password = "f3a9c0d1e2b4a5968778695a4b3c2d1e"
    result = render(tmp_path, password)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out" / "definitions.json"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    text = out.read_text(encoding="utf-8")
    assert password not in text
    rendered = json.loads(text)
    [user] = rendered["users"]
    assert rabbitmq_password_hash_ok(user["password_hash"], password)
    user["password_hash"] = ""
    assert rendered == definitions(), "only the hash differs"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["definitions.json"]


def test_render_definitions_refuses_without_a_password(tmp_path: Path) -> None:
    result = render(tmp_path, None)
    assert result.returncode != 0 and "RABBITMQ_HUB_PASSWORD" in result.stderr
    assert not (tmp_path / "out" / "definitions.json").exists()


# -- Kubernetes --------------------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_k8s_manifests_match_the_kubernetes_schemas(version: str) -> None:
    docs = k8s_docs()
    assert len(docs) >= 10
    for path, doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.name} {doc['kind']}/{doc['metadata']['name']}: {exc.message}")


def test_kubernetes_validation_catches_mistakes() -> None:
    doc = k8s_object("Deployment", "inbeeld-router")
    doc["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)


def test_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    listed = set(kust["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk - {"secret.template.yaml"}
    images = {d["spec"]["template"]["spec"]["containers"][0]["image"].split(":")[0] for _, d in workloads()}
    assert {i["name"] for i in kust["images"]} == images


def test_kustomize_builds_when_kubectl_is_installed() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    result = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    built = [d for d in yaml.safe_load_all(result.stdout) if d]
    listed = [d for _, d in k8s_docs() if d["kind"] != "Secret"]
    assert sorted((d["kind"], d["metadata"]["name"]) for d in built) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in listed
    )


def workloads() -> list[tuple[str, dict[str, Any]]]:
    return [(d["metadata"]["name"], d) for _, d in k8s_docs() if d["kind"] in {"Deployment", "Job"}]


def test_k8s_objects_live_in_the_inbeeld_namespace() -> None:
    for _, doc in k8s_docs():
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == "inbeeld"
        else:
            assert doc["metadata"]["namespace"] == "inbeeld", doc["metadata"]["name"]


def test_k8s_workloads() -> None:
    found = {name: d for name, d in workloads()}
    assert set(found) == {"inbeeld-api", "inbeeld-router", "inbeeld-migrate"}
    args = {name: d["spec"]["template"]["spec"]["containers"][0]["args"] for name, d in found.items()}
    assert args == {
        "inbeeld-api": ["serve", "--no-router"],
        "inbeeld-router": ["router"],
        "inbeeld-migrate": ["migrate"],
    }
    assert found["inbeeld-router"]["spec"]["replicas"] == 2
    assert found["inbeeld-migrate"]["spec"]["template"]["spec"]["restartPolicy"] == "Never"

    for name, d in found.items():
        pod = d["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["automountServiceAccountToken"] is False, name
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["runAsNonRoot"] is True, name
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], name
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][part]), name
            refs = {next(iter(r)): next(iter(r.values()))["name"] for r in c["envFrom"]}
            assert refs == {"configMapRef": "inbeeld-hub", "secretRef": "inbeeld-hub"}, name
            assert {m["mountPath"] for m in c["volumeMounts"]} == {"/tmp"}
        if d["kind"] == "Deployment":
            selector = d["spec"]["selector"]["matchLabels"]
            assert selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()

    api = found["inbeeld-api"]["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in api["ports"]}
    assert ports == {"http": int(configmap()["INBEELD_API_PORT"])}
    for probe in ("readinessProbe", "livenessProbe"):
        assert api[probe]["httpGet"]["path"] == "/health"
        assert api[probe]["httpGet"]["port"] in {"http", ports["http"]}


def pods_selected(selector: dict[str, str]) -> set[str]:
    return {
        name
        for name, d in workloads()
        if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
    }


def test_k8s_service_pdbs_and_network_policies_select_the_right_pods() -> None:
    service = k8s_object("Service", "inbeeld-api")
    assert pods_selected(service["spec"]["selector"]) == {"inbeeld-api"}
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    router_pdb = k8s_object("PodDisruptionBudget", "inbeeld-router")
    assert pods_selected(router_pdb["spec"]["selector"]["matchLabels"]) == {"inbeeld-router"}
    assert router_pdb["spec"]["minAvailable"] == 1

    egress = k8s_object("NetworkPolicy", "inbeeld-hub-egress")
    assert egress["spec"]["policyTypes"] == ["Egress"]
    assert pods_selected(egress["spec"]["podSelector"]["matchLabels"]) == {
        "inbeeld-api",
        "inbeeld-router",
        "inbeeld-migrate",
    }
    ports = {(p["protocol"], p["port"]) for rule in egress["spec"]["egress"] for p in rule["ports"]}
    amqp = urlsplit(secret_template()["INBEELD_AMQP_URL"]).port
    pg = urlsplit(secret_template()["INBEELD_DATABASE_URL"]).port
    mgmt = urlsplit(configmap()["INBEELD_RABBITMQ_API_URL"]).port
    assert ports == {("UDP", 53), ("TCP", 53), ("TCP", amqp), ("TCP", mgmt), ("TCP", pg)}
    for rule in egress["spec"]["egress"]:
        assert rule["to"] and all("ipBlock" not in peer for peer in rule["to"])

    deny = k8s_object("NetworkPolicy", "inbeeld-hub-ingress")
    assert deny["spec"]["ingress"] == [] and deny["spec"]["policyTypes"] == ["Ingress"]
    api_in = k8s_object("NetworkPolicy", "inbeeld-api-ingress")
    assert pods_selected(api_in["spec"]["podSelector"]["matchLabels"]) == {"inbeeld-api"}
    assert [p["port"] for r in api_in["spec"]["ingress"] for p in r["ports"]] == [8080]


def test_k8s_settings_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    values = configmap() | secret_template()
    assert set(values) <= SETTINGS_VARS
    assert not set(configmap()) & set(secret_template())
    assert {"INBEELD_AMQP_URL", "INBEELD_DATABASE_URL"} == set(secret_template())
    for key in [k for k in os.environ if k.startswith("INBEELD_")]:
        monkeypatch.delenv(key)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.api_host == "0.0.0.0" and settings.api_port == 8080
    assert settings.vhost == definitions()["vhosts"][0]["name"]
    assert settings.api_credentials[0] == HUB_USER
    assert urlsplit(settings.database_url).scheme == "postgresql+asyncpg"
    # The compose settings load too (with the interpolations stood in for).
    for key in [k for k in os.environ if k.startswith("INBEELD_")]:
        monkeypatch.delenv(key)
    for key, value in compose_env("api").items():
        monkeypatch.setenv(key, interpolated(value))
    assert Settings().api_credentials[0] == HUB_USER


# -- consistency and secrets across all files ---------------------------------------------------


def test_every_inbeeld_variable_is_a_settings_field() -> None:
    connector_vars = {KEK_ENV, PASSPHRASE_ENV}  # named in the README's back-up advice only
    for path in deploy_files():
        used = set(re.findall(r"\bINBEELD_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(encoding="utf-8")))
        allowed = SETTINGS_VARS | (connector_vars if path.name == "README.md" else set())
        assert used <= allowed, f"{path.relative_to(DEPLOY)}: {sorted(used - allowed)}"


PASSWORD_KEY = re.compile(r"pass(word)?|passwd|secret|token", re.I)
URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://([^/\s:@]+):([^@\s]+)@")


def acceptable_secret_value(value: Any) -> bool:
    text = str(value)
    return (
        text == ""
        or bool(PLACEHOLDER.match(text))
        or text.startswith("/run/secrets/")
        or bool(re.fullmatch(r"[A-Z0-9_]+", text))  # names a variable, e.g. `environment: VAR`
    )


def test_no_password_is_committed() -> None:
    # Structured files: values under password-like keys are empty, placeholders or references.
    for path in structured_files():
        for doc in load_all(path):
            for key, value in walk(doc):
                leaf = re.sub(r"\[\d+\]$", "", key.rsplit(".", 1)[-1])
                if leaf == "secrets":  # a service's list of compose secret names
                    continue
                if leaf.lower().endswith("secretname"):  # names a Kubernetes Secret (k8s/rabbitmq/)
                    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", str(value)), f"{path.name}: {key}"
                    continue
                if PASSWORD_KEY.search(leaf) and not isinstance(value, bool | int | float | type(None)):
                    assert acceptable_secret_value(value), f"{path.name}: {key} = {value!r}"
    # Every file: a password inside a URL is a placeholder or an interpolation.
    for path in deploy_files():
        text = path.read_text(encoding="utf-8")
        for match in URL_WITH_PASSWORD.finditer(text):
            password = match.group(2)
            ok = PLACEHOLDER.match(password) or re.fullmatch(r"\$[A-Z0-9_]+", password)
            assert ok, f"{path.relative_to(DEPLOY)}: {match.group(0)!r}"
        assert "guest:guest" not in text, path
    # The placeholders really are placeholders in the k8s Secret template.
    for key, value in secret_template().items():
        assert PLACEHOLDER.match(urlsplit(value).password or ""), key


# -- against the real broker --------------------------------------------------------------------


@pytest.mark.broker
@pytest.mark.slow
async def test_definitions_import_into_rabbitmq_and_agree_with_the_hub(tmp_path: Path) -> None:
    """Import the topology and policies into a scratch vhost, then let the hub declare its
    topology there: any difference in queue arguments fails with PRECONDITION_FAILED."""
    import aio_pika

    settings = Settings(vhost=f"inbeeld-deploytest-{uuid.uuid4().hex[:8]}")
    vhost = settings.vhost
    inbox = topology.new_inbox_name("GM0518")
    d = definitions()
    scoped = {key: d[key] for key in ("policies", "exchanges", "queues", "bindings")}
    for items in scoped.values():
        for item in items:
            item["vhost"] = vhost
    test_user = f"{vhost}.hub-hash-check"
    quoted = quote(vhost, safe="")

    async with httpx.AsyncClient(
        base_url=settings.rabbitmq_api_url, auth=settings.api_credentials, timeout=20
    ) as api:
        (await api.put(f"/api/vhosts/{quoted}")).raise_for_status()
        try:
            resp = await api.post(f"/api/definitions/{quoted}", json=scoped)
            assert resp.status_code in {200, 201, 204}, resp.text

            conn = await aio_pika.connect(settings.amqp_url_for())
            try:
                channel = await conn.channel()
                await topology.declare_core(channel, settings.delivery_limit)
                await topology.declare_inbox(
                    channel, inbox, "GM0518", settings.delivery_limit, settings.inbox_max_length
                )
            finally:
                await conn.close()

            policies = (await api.get(f"/api/policies/{quoted}")).json()
            assert {p["name"] for p in policies} == {"inbeeld-router", "inbeeld-inbox"}
            for name, expected in (
                (topology.ROUTER_QUEUE, "inbeeld-router"),
                (inbox, "inbeeld-inbox"),
            ):
                for _ in range(100):  # shown with the next statistics emission (every 5 s)
                    queue = (await api.get(f"/api/queues/{quoted}/{name}")).json()
                    if queue.get("policy") == expected:
                        break
                    await asyncio.sleep(0.25)
                assert queue.get("policy") == expected, queue
                assert queue["effective_policy_definition"] == policy(expected)["definition"]

            # A password hash made like render-definitions.sh's authenticates.
            result = render(tmp_path, "c0ffee" * 5)
            assert result.returncode == 0, result.stderr
            rendered = json.loads((tmp_path / "out" / "definitions.json").read_text(encoding="utf-8"))
            hashed = rendered["users"][0]["password_hash"]
            resp = await api.put(
                f"/api/users/{test_user}",
                json={
                    "password_hash": hashed,
                    "hashing_algorithm": "rabbit_password_hashing_sha256",
                    "tags": "management",
                },
            )
            resp.raise_for_status()
            who = await api.get("/api/whoami", auth=(test_user, "c0ffee" * 5))
            assert who.status_code == 200 and who.json()["name"] == test_user
            wrong = await api.get("/api/whoami", auth=(test_user, "not-it"))
            assert wrong.status_code == 401
        finally:
            await api.delete(f"/api/users/{test_user}")
            await api.delete(f"/api/vhosts/{quoted}")
