"""The clustered deployment: deploy/compose.cluster.yaml (three RabbitMQ nodes, the hub, an
external managed PostgreSQL) and deploy/k8s/rabbitmq/ (the RabbitMQ Cluster Operator's
`RabbitmqCluster` and what goes with it).

The `RabbitmqCluster` is validated against the operator's own CRD, vendored with its licence
in tests/deploy/vendor/rabbitmq-cluster-operator/ (README there: source and commit). Like the
API server with strict field validation, unknown fields are errors here: the CRD's schema is
made closed (`additionalProperties: false`) wherever it lists properties and does not preserve
unknown fields."""

from __future__ import annotations

import copy
import functools
import os
import pwd
import re
import stat
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml

from hub.config import Settings
from tests.deploy.test_deploy_files import (
    DEPLOY,
    K8S,
    K8S_VERSIONS,
    PLACEHOLDER,
    SETTINGS_VARS,
    compose_env,
    compose_validator,
    configmap,
    interpolated,
    k8s_object,
    rabbitmq_conf,
    secret_template,
)

COMPOSE_CLUSTER = DEPLOY / "compose.cluster.yaml"
CLUSTER_CONF = DEPLOY / "rabbitmq" / "cluster.conf"
CLUSTER_ENTRYPOINT = DEPLOY / "rabbitmq" / "cluster-entrypoint.sh"
CLUSTER_ENV_EXAMPLE = DEPLOY / "cluster.env.example"
BROKER_K8S = K8S / "rabbitmq"
VENDOR = Path(__file__).resolve().parent / "vendor" / "rabbitmq-cluster-operator"
CRD = VENDOR / "rabbitmq.com_rabbitmqclusters.yaml"

NODES = ("rabbitmq-1", "rabbitmq-2", "rabbitmq-3")
HUB_SERVICES = ("migrate", "api", "router")
PINNED_IMAGE = re.compile(r"^[^:@\s]+(:\d+\.\d+\.\d+[\w.-]*|@sha256:[0-9a-f]{64})$")


# -- helpers -----------------------------------------------------------------------------------


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def cluster_compose() -> dict[str, Any]:
    return load(COMPOSE_CLUSTER)


def cluster_env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in cluster_compose()["services"][service]["environment"].items()}


def broker_docs() -> dict[str, dict[str, Any]]:
    """deploy/k8s/rabbitmq/*.yaml by file name (one document each), the kustomization aside."""
    return {p.name: load(p) for p in sorted(BROKER_K8S.glob("*.yaml")) if p.name != "kustomization.yaml"}


def rabbitmq_cluster() -> dict[str, Any]:
    return load(BROKER_K8S / "rabbitmqcluster.yaml")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (what kustomize does with a patch of a custom resource)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def closed(schema: Any) -> Any:
    """The schema with unknown fields refused wherever it names its properties."""
    if isinstance(schema, list):
        return [closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: closed(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_validator() -> jsonschema.protocols.Validator:
    crd = yaml.load(CRD.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    schema = closed(version["schema"]["openAPIV3Schema"])
    # OpenAPI 3.0 schemas are JSON Schema draft 4 in their keywords (boolean exclusiveMinimum).
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def crd_errors(doc: dict[str, Any]) -> list[str]:
    return [f"{e.json_path}: {e.message}" for e in crd_validator().iter_errors(doc)]


def additional_config(cluster: dict[str, Any]) -> dict[str, str]:
    conf = {}
    for line in cluster["spec"]["rabbitmq"]["additionalConfig"].splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, line
            conf[key.strip()] = value.strip()
    return conf


# -- the vendored CRD --------------------------------------------------------------------------


def test_the_vendored_crd_is_the_operators_with_its_licence() -> None:
    crd = load(CRD)
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == "rabbitmqclusters.rabbitmq.com"
    assert crd["spec"]["names"]["kind"] == "RabbitmqCluster"
    assert "v1beta1" in {v["name"] for v in crd["spec"]["versions"] if v["served"]}
    assert "Mozilla Public License Version 2.0" in (VENDOR / "LICENSE.txt").read_text(encoding="utf-8")
    readme = (VENDOR / "README.md").read_text(encoding="utf-8")
    assert "github.com/rabbitmq/cluster-operator" in readme
    assert re.search(r"\b[0-9a-f]{40}\b", readme), "the README names the commit"


def test_rabbitmqcluster_matches_the_operators_crd() -> None:
    cluster = rabbitmq_cluster()
    assert (cluster["apiVersion"], cluster["kind"]) == ("rabbitmq.com/v1beta1", "RabbitmqCluster")
    errors = crd_errors(cluster)
    assert not errors, "\n".join(errors)


def test_crd_validation_catches_mistakes() -> None:
    for path, value in (
        (("spec", "replicas"), "three"),  # wrong type
        (("spec", "replica"), 3),  # unknown field (typo)
        (("spec", "tls"), {"secretname": "rabbitmq-tls"}),  # unknown nested field
        (("spec", "service", "type"), 5672),
    ):
        broken = rabbitmq_cluster()
        node = broken
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        assert crd_errors(broken), path


def test_the_tls_patch_gives_a_valid_cluster_with_tls() -> None:
    patch = load(BROKER_K8S / "tls-patch.yaml")
    base = rabbitmq_cluster()
    assert (patch["kind"], patch["metadata"]["name"]) == (base["kind"], base["metadata"]["name"])
    assert patch["metadata"]["namespace"] == base["metadata"]["namespace"]
    assert "tls" not in base["spec"], "TLS is optional: off unless the patch is applied"
    patched = merge_patch(base, patch)
    errors = crd_errors(patched)
    assert not errors, "\n".join(errors)
    tls = patched["spec"]["tls"]
    assert tls["secretName"] and tls["caSecretName"]
    assert patched["spec"]["replicas"] == 3, "the patch keeps the rest"


# -- the RabbitmqCluster's settings ------------------------------------------------------------


def test_rabbitmqcluster_is_quorum_queue_friendly() -> None:
    cluster = rabbitmq_cluster()
    spec = cluster["spec"]
    assert spec["replicas"] == 3
    assert PINNED_IMAGE.match(spec["image"]), spec["image"]
    assert re.match(r"rabbitmq:3\.13\.", spec["image"]), "the version compose.cluster.yaml runs"
    resources = spec["resources"]
    assert resources["requests"]["memory"] == resources["limits"]["memory"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"])
    assert spec["persistence"]["storage"]
    conf = additional_config(cluster)
    assert conf["cluster_partition_handling"] == "pause_minority"
    assert conf["loopback_users.guest"] == "true"
    assert "disk_free_limit.absolute" in conf
    # The pre-stop hook may wait as long as the operator's default allows.
    assert spec["terminationGracePeriodSeconds"] >= 604800
    [term] = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    [expr] = term["labelSelector"]["matchExpressions"]
    assert (expr["key"], expr["operator"], expr["values"]) == (
        "app.kubernetes.io/name",
        "In",
        [cluster["metadata"]["name"]],
    )
    assert "secretBackend" not in spec and "default_pass" not in spec["rabbitmq"]["additionalConfig"]


def test_the_hub_reaches_the_operators_service() -> None:
    cluster = rabbitmq_cluster()
    name, namespace = cluster["metadata"]["name"], cluster["metadata"]["namespace"]
    service_host = f"{name}.{namespace}.svc"
    amqp = urlsplit(secret_template()["INBEELD_AMQP_URL"])
    assert "," not in secret_template()["INBEELD_AMQP_URL"], "one address: the operator's Service"
    assert (amqp.scheme, amqp.hostname, amqp.port) == ("amqp", service_host, 5672)
    api = urlsplit(configmap()["INBEELD_RABBITMQ_API_URL"])
    assert (api.hostname, api.port) == (service_host, 15672)

    egress = k8s_object("NetworkPolicy", "inbeeld-hub-egress")
    [rule] = [r for r in egress["spec"]["egress"] if any(p["port"] == 5672 for p in r["ports"])]
    [peer] = rule["to"]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": namespace}
    assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": name}
    assert {p["port"] for p in rule["ports"]} == {5672, 15672}

    pdb = broker_docs()["pdb.yaml"]
    assert pdb["metadata"]["namespace"] == namespace
    assert pdb["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": name}
    assert pdb["spec"]["maxUnavailable"] == 1
    [ns] = [d for d in broker_docs().values() if d["kind"] == "Namespace"]
    assert ns["metadata"]["name"] == namespace


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_the_brokers_standard_objects_match_the_kubernetes_schemas(version: str) -> None:
    standard = [d for d in broker_docs().values() if d["apiVersion"] != "rabbitmq.com/v1beta1"]
    assert {d["kind"] for d in standard} == {"Namespace", "PodDisruptionBudget"}
    for doc in standard:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}")


def test_the_brokers_kustomization() -> None:
    kust = load(BROKER_K8S / "kustomization.yaml")
    assert kust["namespace"] == rabbitmq_cluster()["metadata"]["namespace"]
    assert set(kust["resources"]) == set(broker_docs()) - {"tls-patch.yaml"}
    assert "tls-patch.yaml" in (BROKER_K8S / "kustomization.yaml").read_text(encoding="utf-8")


# -- every Kubernetes object: sanity -----------------------------------------------------------


def all_k8s_docs() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name in {"kustomization.yaml", "tls-patch.yaml"}:
            continue
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                out.append((str(path.relative_to(K8S)), doc))
    return out


def test_every_k8s_object_is_complete_and_keeps_secrets_out() -> None:
    docs = all_k8s_docs()
    assert len(docs) >= 13
    for where, doc in docs:
        assert doc.get("apiVersion") and doc.get("kind"), where
        meta = doc["metadata"]
        assert meta.get("name"), where
        if doc["kind"] != "Namespace":
            assert meta.get("namespace") in {"inbeeld", "inbeeld-broker"}, where
        assert meta.get("labels", {}).get("app.kubernetes.io/part-of") == "inbeeld", where
        if doc["kind"] == "Secret":
            # Only the template, with placeholders; real Secrets are created, not committed.
            assert where == "secret.template.yaml"
            for key, value in doc["stringData"].items():
                assert PLACEHOLDER.match(urlsplit(value).password or ""), key
            assert "data" not in doc


def test_every_workload_pins_its_image_sets_resources_and_takes_settings_by_reference() -> None:
    workloads = [
        (where, d) for where, d in all_k8s_docs() if d["kind"] in {"Deployment", "StatefulSet", "Job"}
    ]
    assert {d["metadata"]["name"] for _, d in workloads} == {
        "inbeeld-api",
        "inbeeld-router",
        "inbeeld-migrate",
    }
    for where, d in workloads:
        pod = d["spec"]["template"]["spec"]
        for c in pod["containers"]:
            assert PINNED_IMAGE.match(c["image"]), f"{where}: {c['image']}"
            assert not c["image"].endswith(":latest")
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][part]), where
            # Settings come from the ConfigMap and the Secret; no value inline.
            assert "env" not in c, where
            assert {next(iter(r)) for r in c["envFrom"]} == {"configMapRef", "secretRef"}, where
            if "ports" in c:  # serves HTTP: probed
                assert c["readinessProbe"]["httpGet"]["path"] == "/health", where
                assert c["livenessProbe"]["httpGet"]["path"] == "/health", where
    # The DSN of the (external) PostgreSQL is only in the Secret, not in the ConfigMap.
    assert "INBEELD_DATABASE_URL" in secret_template()
    assert not any("postgresql" in str(v) for v in configmap().values())


# -- compose.cluster.yaml ------------------------------------------------------------------------


def test_compose_cluster_matches_the_compose_specification() -> None:
    validator = compose_validator()
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(cluster_compose())]
    assert not errors, "\n".join(errors)


def test_compose_cluster_services_and_start_order() -> None:
    services = cluster_compose()["services"]
    assert set(services) == {*NODES, *HUB_SERVICES}, "no database container: PostgreSQL is external"
    assert not any("postgres" in str(s.get("image", "")) for s in services.values())
    commands = {name: services[name]["command"] for name in HUB_SERVICES}
    assert commands == {"migrate": ["migrate"], "api": ["serve", "--no-router"], "router": ["router"]}
    healthy = {node: {"condition": "service_healthy"} for node in NODES}
    assert services["migrate"]["depends_on"] == healthy
    for name in ("api", "router"):
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            **healthy,
        }
    assert services["router"]["deploy"]["replicas"] == 2
    assert services["router"]["healthcheck"] == {"disable": True}
    assert "/health" in " ".join(services["api"]["healthcheck"]["test"])
    for name in HUB_SERVICES:
        svc = services[name]
        assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in svc["security_opt"]


def test_compose_cluster_nodes_form_one_cluster() -> None:
    doc = cluster_compose()
    services = doc["services"]
    conf = rabbitmq_conf(CLUSTER_CONF)
    assert conf["cluster_formation.peer_discovery_backend"] == "classic_config"
    listed = {v for k, v in conf.items() if k.startswith("cluster_formation.classic_config.nodes.")}
    assert listed == {f"rabbit@{services[n]['hostname']}" for n in NODES}
    assert {services[n]["hostname"] for n in NODES} == set(NODES)
    assert conf["cluster_partition_handling"] == "pause_minority"

    data_volumes = []
    for name in NODES:
        node = services[name]
        assert PINNED_IMAGE.match(node["image"]) and re.match(
            r"rabbitmq:3\.13\.\d+-management$", node["image"]
        )
        assert node["entrypoint"] == ["sh", "/usr/local/bin/cluster-entrypoint.sh"]
        assert node["command"] == ["rabbitmq-server"]
        hc = node["healthcheck"]
        assert hc["test"][0] == "CMD" and not hc.get("disable")
        assert node["ulimits"]["nofile"]["soft"] >= 65536
        # The same shared cookie for every node, from a secret, never an environment value.
        assert set(node["secrets"]) == {"erlang_cookie", "rabbitmq_hub_password"}
        assert node["environment"]["ERLANG_COOKIE_FILE"] == "/run/secrets/erlang_cookie"
        assert not any("COOKIE" in k and k != "ERLANG_COOKIE_FILE" for k in node["environment"])
        mounts = dict(
            v.rsplit(":", 2)[:2] if v.startswith("./") else v.split(":", 1) for v in node["volumes"]
        )
        [data] = [src for src, dst in mounts.items() if dst == "/var/lib/rabbitmq"]
        data_volumes.append(data)
        files = {src: dst for src, dst in mounts.items() if src.startswith("./")}
        assert all(v.endswith(":ro") for v in node["volumes"] if v.startswith("./"))
        for src in files:
            assert (DEPLOY / src).is_file(), src
        # conf.d is read in name order: ours after the image's 10-defaults.conf, the cluster's
        # after the common rabbitmq.conf.
        conf_d = {
            Path(files[src]).name: src for src in files if files[src].startswith("/etc/rabbitmq/conf.d/")
        }
        assert sorted(conf_d) == ["90-inbeeld.conf", "92-inbeeld-cluster.conf"]
        assert conf_d["92-inbeeld-cluster.conf"] == "./rabbitmq/cluster.conf"
        assert files["./rabbitmq/cluster-entrypoint.sh"] == "/usr/local/bin/cluster-entrypoint.sh"
        assert files["./rabbitmq/render-definitions.sh"] == "/usr/local/bin/render-definitions.sh"
    assert len(set(data_volumes)) == 3, "each node its own data volume"
    assert set(data_volumes) == set(doc["volumes"])
    assert doc["secrets"]["erlang_cookie"] == {"environment": "RABBITMQ_ERLANG_COOKIE"}
    assert doc["secrets"]["rabbitmq_hub_password"] == {"environment": "RABBITMQ_HUB_PASSWORD"}


def test_compose_cluster_hub_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    env = cluster_env("api")
    for name in HUB_SERVICES:
        assert set(cluster_env(name)) <= SETTINGS_VARS, name
    urls = interpolated(env["INBEELD_AMQP_URL"]).split(",")
    assert len(urls) == 3
    for url, node in zip(urls, NODES, strict=True):
        parts = urlsplit(url)
        assert (parts.scheme, parts.hostname, parts.port, parts.username) == (
            "amqp",
            node,
            5672,
            "inbeeld-hub",
        )
        assert parts.path in {"", "/"}
    for password in re.findall(r"://[^:/]+:(.+?)@", env["INBEELD_AMQP_URL"]):
        assert re.fullmatch(r"\$\{RABBITMQ_HUB_PASSWORD:\?[^}]+\}", password)
    # The whole DSN of the managed PostgreSQL comes from cluster.env.
    assert re.fullmatch(r"\$\{INBEELD_DATABASE_URL:\?[^}]+\}", env["INBEELD_DATABASE_URL"])
    # Every node's management API, in the nodes' order (any one answers for the cluster).
    apis = [urlsplit(u) for u in env["INBEELD_RABBITMQ_API_URL"].split(",")]
    assert [(a.scheme, a.hostname, a.port) for a in apis] == [("http", n, 15672) for n in NODES]
    # Everything else as in the single-host compose.yaml.
    single = compose_env("api")
    same = set(single) - {"INBEELD_AMQP_URL", "INBEELD_DATABASE_URL", "INBEELD_RABBITMQ_API_URL"}
    assert {k: env[k] for k in same} == {k: single[k] for k in same}

    for key in [k for k in os.environ if k.startswith("INBEELD_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, interpolated(value))
    monkeypatch.setenv("INBEELD_DATABASE_URL", "postgresql+asyncpg://inbeeld:pw@db.example.org:5432/inbeeld")
    settings = Settings()
    assert settings.api_credentials[0] == "inbeeld-hub"


def test_compose_cluster_env_example() -> None:
    text = CLUSTER_ENV_EXAMPLE.read_text(encoding="utf-8")
    values = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    assert {"RABBITMQ_HUB_PASSWORD", "RABBITMQ_ERLANG_COOKIE", "INBEELD_DATABASE_URL"} <= set(values)
    for key, value in values.items():
        assert PLACEHOLDER.match(value), f"{key} must be a <placeholder>"
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE_CLUSTER.read_text(encoding="utf-8")))
    documented = set(values) | set(re.findall(r"^# ([A-Z0-9_]+)=", text, re.M))
    assert used <= documented, used - documented
    assert "cluster.env" in (DEPLOY / ".gitignore").read_text(encoding="utf-8").split()


# -- cluster-entrypoint.sh -----------------------------------------------------------------------


def run_entrypoint(tmp_path: Path, cookie: str | None) -> subprocess.CompletedProcess[str]:
    secret = tmp_path / "erlang_cookie"
    if cookie is not None:
        secret.write_text(cookie, encoding="utf-8")
    nxt = tmp_path / "next.sh"
    nxt.write_text('echo "next: $*"\n', encoding="utf-8")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "ERLANG_COOKIE_FILE": str(secret),
        "ERLANG_COOKIE_TARGET": str(tmp_path / "home" / ".erlang.cookie"),
        "NEXT_ENTRYPOINT": str(nxt),
    }
    return subprocess.run(
        ["sh", str(CLUSTER_ENTRYPOINT), "rabbitmq-server"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_cluster_entrypoint_installs_the_cookie_privately_then_hands_over(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("rabbitmq")
        except KeyError:
            pytest.skip("as root the script chowns the cookie to the rabbitmq user, absent here")
    result = run_entrypoint(tmp_path, "3f1c0ffee5eed\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "next: rabbitmq-server"
    target = tmp_path / "home" / ".erlang.cookie"
    assert target.read_text(encoding="utf-8") == "3f1c0ffee5eed"
    assert stat.S_IMODE(target.stat().st_mode) == 0o400
    assert [p.name for p in target.parent.iterdir()] == [".erlang.cookie"]
    # Run again (a restart): the read-only file is replaced.
    (tmp_path / "erlang_cookie").write_text("b0b0b0b0\n", encoding="utf-8")
    again = run_entrypoint(tmp_path, None)
    assert again.returncode == 0, again.stderr
    assert target.read_text(encoding="utf-8") == "b0b0b0b0"


def test_cluster_entrypoint_refuses_without_a_cookie(tmp_path: Path) -> None:
    result = run_entrypoint(tmp_path, None)
    assert result.returncode != 0 and "RABBITMQ_ERLANG_COOKIE" in result.stderr
    assert "next:" not in result.stdout
    assert not (tmp_path / "home" / ".erlang.cookie").exists()


def test_the_readme_describes_the_cluster_files() -> None:
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    for name in ("compose.cluster.yaml", "cluster.env.example", "rabbitmq/cluster.conf", "k8s/rabbitmq/"):
        assert name in readme, name
