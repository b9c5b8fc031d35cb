"""The deploy files, checked by the tools that would run them: the Compose file against the
Compose specification's JSON schema, the rendered Kustomize output against the Kubernetes
schemas, the nginx config by ``nginx -t`` with a real certificate, the image's entrypoint by
running it; plus the promises that no validator knows (only nginx is published, every
secret comes from a file, the HPAs ask for metrics the adapter serves, every container has
probes and resources)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from onebox.core.settings import Settings
from onebox.llm.catalog import load_catalog
from tests.nginx_edge import nginx_command, nginx_prefix

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_DIR = ROOT / "deploy" / "compose"
COMPOSE = COMPOSE_DIR / "compose.yaml"
K8S = ROOT / "deploy" / "k8s"
BIN = Path(sys.executable).parent


def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=120, check=False, **kwargs
    )
    assert result.returncode == 0, f"{args[0]} failed:\n{result.stdout}\n{result.stderr}"
    return result


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


# ---- Compose ----


def test_compose_file_matches_the_compose_specification() -> None:
    # check-jsonschema ships the compose-spec schema: no network needed.
    run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)])


def test_only_nginx_publishes_ports_and_the_rest_stays_on_the_internal_network() -> None:
    spec = compose()
    published = {name for name, service in spec["services"].items() if "ports" in service}
    assert published == {"nginx"}
    assert spec["networks"]["backend"]["internal"] is True
    for name, service in spec["services"].items():
        networks = service.get("networks", [])
        assert "edge" not in networks or name == "nginx", name
    for name in ("postgres", "redis", "qdrant", "prometheus", "grafana"):
        assert spec["services"][name]["networks"] == ["backend"], name


def test_startup_order_waits_for_health_and_the_migration() -> None:
    services = compose()["services"]
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert rule["condition"] in {"service_healthy", "service_completed_successfully"}
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} -> {dependency}"
    for name in ("app", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["nginx"]["depends_on"]["app"]["condition"] == "service_healthy"


def test_state_lives_in_named_volumes_and_secrets_in_files() -> None:
    spec = compose()
    named = set(spec["volumes"])
    for service_name in ("postgres", "redis", "qdrant", "prometheus", "grafana", "app"):
        mounts = spec["services"][service_name]["volumes"]
        assert any(str(mount).split(":")[0] in named for mount in mounts), service_name
    script = (COMPOSE_DIR / "make-secrets.sh").read_text(encoding="utf-8")
    for name, secret in spec["secrets"].items():
        assert secret["file"] == f"./secrets/{name}"
        assert name in script, f"make-secrets.sh does not create {name}"
    text = COMPOSE.read_text(encoding="utf-8")
    # No secret value in the file: every ONEBOX_*KEY/TOKEN/PASSWORD comes as *_FILE.
    assert not re.search(r"ONEBOX_\w*(KEY|TOKEN|PASSWORD):", text)


def test_onebox_trusts_exactly_the_nginx_address() -> None:
    spec = compose()
    address = spec["services"]["nginx"]["networks"]["backend"]["ipv4_address"]
    environment = spec["services"]["app"]["environment"]
    assert environment["ONEBOX_TRUSTED_PROXIES"] == f'["{address}"]'


def test_env_example_documents_every_variable_the_compose_file_reads() -> None:
    example = (COMPOSE_DIR / ".env.example").read_text(encoding="utf-8")
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, re.MULTILINE))
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", COMPOSE.read_text(encoding="utf-8")))
    # Image tags and the Let's Encrypt client version have sane defaults and live in docs.
    optional = {name for name in used if name.endswith("_TAG")}
    assert used - optional <= documented, sorted(used - optional - documented)


@pytest.mark.parametrize("engine", ["embedded", "llamacpp", "vllm", "ollama"])
def test_each_engine_profile_has_a_models_file_onebox_accepts(engine: str) -> None:
    catalog = load_catalog(Settings(models_file=COMPOSE_DIR / "engines" / f"{engine}.yaml"))
    assert catalog.models, engine
    services = compose()["services"]
    upstream = catalog.models[0].upstream_url
    if upstream is not None:
        host = upstream.split("//", 1)[1].split(":", 1)[0]
        assert host in services, f"{engine}: {host} is not a service"
        assert services[host]["profiles"], host


def test_make_secrets_writes_random_readable_files(tmp_path: Path) -> None:
    shutil.copytree(COMPOSE_DIR, tmp_path / "compose")
    run(["sh", str(tmp_path / "compose" / "make-secrets.sh")])
    secrets = tmp_path / "compose" / "secrets"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    first = (secrets / "secret_key").read_text(encoding="utf-8")
    assert len(first) >= 40
    assert (secrets / "api_token").read_text(encoding="utf-8") != first
    run(["sh", str(tmp_path / "compose" / "make-secrets.sh")])  # keeps what exists
    assert (secrets / "secret_key").read_text(encoding="utf-8") == first
    # Production settings (which refuse short or guessable secrets) accept what it wrote.
    settings = Settings(
        env="production",
        data_dir=tmp_path,
        secret_key=first,
        api_token=(secrets / "api_token").read_text(encoding="utf-8"),
    )
    assert settings.effective_secret_key() == first


# ---- the image ----


def test_dockerfile_is_multi_stage_slim_non_root_and_health_checked() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    stages = re.findall(r"^FROM \S+ AS (\w+)", text, re.MULTILINE)
    assert stages == ["builder", "runtime"]
    runtime = text.split("AS runtime", 1)[1]
    assert "build-essential" not in runtime
    assert "cmake" not in runtime
    assert "COPY --from=builder /opt/venv /opt/venv" in runtime
    user = re.findall(r"^USER (\S+)", runtime, re.MULTILINE)
    assert user
    assert not user[-1].startswith(("0", "root"))
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", runtime, re.MULTILINE)
    assert not re.search(r"^(ENV|ARG) .*(SECRET|TOKEN|PASSWORD)", text, re.MULTILINE)
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert {".git", ".venv", ".env", "data", "tests"} <= set(ignored)


def test_entrypoint_reads_secrets_from_files(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    stub = tmp_path / "bin" / "onebox"
    stub.write_text('#!/bin/sh\necho "args=$*"\nenv | grep ^ONEBOX_ | sort\n', encoding="utf-8")
    stub.chmod(0o755)
    (tmp_path / "key").write_text("s3cr3t-value\n", encoding="utf-8")
    (tmp_path / "pw").write_text("p@ss/w:rd\n", encoding="utf-8")
    environment = {
        "PATH": f"{tmp_path / 'bin'}:{BIN}:/usr/bin:/bin",
        "ONEBOX_SECRET_KEY_FILE": str(tmp_path / "key"),
        "ONEBOX_DATABASE_URL": "postgresql+asyncpg://onebox@postgres:5432/onebox",
        "ONEBOX_DATABASE_PASSWORD_FILE": str(tmp_path / "pw"),
        "ONEBOX_MODELS_FILE": "/etc/onebox/engines/vllm.yaml",
    }
    entrypoint = str(ROOT / "deploy" / "docker" / "entrypoint.sh")
    out = run(["sh", entrypoint, "serve", "--workers", "2"], env=environment).stdout
    assert "args=serve --workers 2" in out
    assert "ONEBOX_SECRET_KEY=s3cr3t-value\n" in out
    assert "ONEBOX_SECRET_KEY_FILE" not in out
    assert (
        "ONEBOX_DATABASE_URL=postgresql+asyncpg://onebox:p%40ss%2Fw%3Ard@postgres:5432/onebox\n"
        in out
    )
    assert "ONEBOX_MODELS_FILE=/etc/onebox/engines/vllm.yaml\n" in out
    missing = subprocess.run(
        ["sh", entrypoint, "serve"],
        env={**environment, "ONEBOX_API_TOKEN_FILE": str(tmp_path / "absent")},
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert missing.returncode != 0
    assert "ONEBOX_API_TOKEN_FILE" in missing.stderr


# ---- nginx ----


def test_nginx_config_passes_nginx_t(tmp_path: Path) -> None:
    nginx_prefix(tmp_path / "nginx", ["127.0.0.1:18001", "127.0.0.1:18002"])
    result = run(nginx_command(tmp_path / "nginx", "-t"))
    assert "test is successful" in result.stderr


def test_nginx_config_streams_unbuffered_and_limits_requests() -> None:
    text = (ROOT / "deploy" / "nginx" / "nginx.conf").read_text(encoding="utf-8")
    for directive in ("proxy_buffering off;", "proxy_read_timeout 3600s;", "limit_req_zone",
                      "client_max_body_size", "return 301 https://", "ssl_certificate ",
                      "proxy_set_header X-Forwarded-For $remote_addr;"):  # fmt: skip
        assert directive in text, directive
    # X-Accel-Buffering from the app is honoured: nginx would drop it only if told to.
    assert "proxy_ignore_headers" not in text


# ---- Kubernetes ----


def kustomize(path: Path, tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    rendered = run([str(BIN / "kubectl"), "kustomize", str(path)]).stdout
    output = tmp_path / f"{path.name}.yaml"
    output.write_text(rendered, encoding="utf-8")
    return output, [doc for doc in yaml.safe_load_all(rendered) if doc]


@pytest.mark.parametrize("target", ["base", "overlays/production"])
def test_kustomize_output_passes_the_kubernetes_schemas(target: str, tmp_path: Path) -> None:
    output, documents = kustomize(K8S / target, tmp_path)
    run([str(BIN / "kubernetes-validate"), "--strict", "--quiet", str(output)])
    kinds = sorted({doc["kind"] for doc in documents})
    for kind in ("ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Ingress", "Job",
                 "NetworkPolicy", "PodDisruptionBudget", "Secret", "Service"):  # fmt: skip
        assert kind in kinds, kind


def test_production_overlay_sets_endpoints_namespace_and_floors(tmp_path: Path) -> None:
    _, documents = kustomize(K8S / "overlays" / "production", tmp_path)
    by_name = {(doc["kind"], doc["metadata"]["name"]): doc for doc in documents}
    assert all(
        doc["metadata"].get("namespace") == "onebox"
        for doc in documents
        if doc["kind"] != "Namespace"
    )
    config = by_name["ConfigMap", "onebox-config"]["data"]
    assert "onebox-db.internal" in config["ONEBOX_DATABASE_URL"]
    assert "@" in config["ONEBOX_DATABASE_URL"]
    assert ":" not in config["ONEBOX_DATABASE_URL"].split("//")[1].split("@")[0]
    load_catalog_from_text(config["models.yaml"], tmp_path)
    assert by_name["HorizontalPodAutoscaler", "onebox-app"]["spec"]["minReplicas"] >= 2
    ingress = by_name["Ingress", "onebox"]["spec"]
    assert ingress["tls"][0]["hosts"] == [ingress["rules"][0]["host"]]


def load_catalog_from_text(text: str, tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_catalog(Settings(models_file=path)).models


def test_pods_have_probes_resources_and_migrations_first(tmp_path: Path) -> None:
    _, documents = kustomize(K8S / "base", tmp_path)
    deployments = {doc["metadata"]["name"]: doc for doc in documents if doc["kind"] == "Deployment"}
    app = deployments["onebox-app"]["spec"]["template"]["spec"]
    assert app["initContainers"][0]["args"] == ["db", "upgrade"]
    container = app["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    workloads = [doc for doc in documents if doc["kind"] in {"Deployment", "Job"}]
    for doc in workloads:
        spec = doc["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        for each in spec.get("initContainers", []) + spec["containers"]:
            assert {"requests", "limits"} <= set(each["resources"]), each["name"]
            assert each["securityContext"]["allowPrivilegeEscalation"] is False


def test_autoscalers_ask_for_metrics_the_adapter_serves(tmp_path: Path) -> None:
    _, documents = kustomize(K8S / "base", tmp_path)
    adapter = yaml.safe_load(
        (K8S / "prometheus-adapter" / "config.yaml").read_text(encoding="utf-8")
    )
    rules = yaml.safe_load(adapter["data"]["config.yaml"])
    served_pods = {rule["name"]["as"] for rule in rules["rules"]}
    served_external = {rule["name"]["as"] for rule in rules["externalRules"]}
    asked: dict[str, set[str]] = {"Pods": set(), "External": set()}
    for doc in documents:
        if doc["kind"] != "HorizontalPodAutoscaler":
            continue
        for metric in doc["spec"]["metrics"]:
            if metric["type"] in asked:
                asked[metric["type"]].add(metric[metric["type"].lower()]["metric"]["name"])
    assert asked["Pods"] == {"onebox_requests_running"}
    assert asked["Pods"] <= served_pods
    assert asked["External"]
    assert asked["External"] <= served_external
    # The series the adapter reads are ones Onebox exports.
    assert "onebox_requests_running" in rules["rules"][0]["seriesQuery"]
    assert "onebox_jobs{" in rules["externalRules"][0]["metricsQuery"]


def test_network_policies_admit_only_the_ingress_controller_to_the_app(tmp_path: Path) -> None:
    _, documents = kustomize(K8S / "base", tmp_path)
    policies = {
        doc["metadata"]["name"]: doc["spec"] for doc in documents if doc["kind"] == "NetworkPolicy"
    }
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    sources = [
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for rule in policies["onebox-app-ingress"]["ingress"] for peer in rule["from"]
    ]  # fmt: skip
    assert sources == ["ingress-nginx", "monitoring"]
    data_clients = policies["onebox-data-egress"]["podSelector"]["matchLabels"]
    labelled = {
        doc["metadata"]["name"]
        for doc in documents
        if doc["kind"] in {"Deployment", "Job"}
        and doc["spec"]["template"]["metadata"]["labels"].items() >= data_clients.items()
    }
    assert labelled == {"onebox-app", "onebox-worker", "onebox-migrate"}


# ---- backups ----


def test_backup_restores_into_a_new_database(tmp_path: Path) -> None:
    """docs/deploy.md's backup and restore commands, against the local PostgreSQL."""
    base = os.environ.get(
        "ONEBOX_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    if shutil.which("pg_dump") is None or shutil.which("psql") is None:
        pytest.skip("pg_dump/psql not installed")
    server = base.replace("postgresql+asyncpg://", "postgresql://").rsplit("/", 1)[0]
    suffix = f"{os.getpid()}_{tmp_path.name[-8:]}".replace("-", "_").lower()
    source, target = f"onebox_backup_src_{suffix}", f"onebox_backup_dst_{suffix}"

    def psql(database: str, sql: str) -> str:
        return run(
            ["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", f"{server}/{database}", "-c", sql]
        ).stdout

    try:
        psql("postgres", f"CREATE DATABASE {source}")
        psql("postgres", f"CREATE DATABASE {target}")
        psql(source, "CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL)")
        psql(source, "INSERT INTO notes SELECT i, 'note ' || i FROM generate_series(1, 500) i")
        dump = tmp_path / "onebox.dump"
        run(["sh", str(ROOT / "deploy/backup/pg-backup.sh"), f"{server}/{source}", str(dump)])
        run(["sh", str(ROOT / "deploy/backup/pg-restore.sh"), str(dump), f"{server}/{target}"])
        digest = "SELECT count(*), md5(string_agg(id || body, ',' ORDER BY id)) FROM notes"
        assert psql(target, digest) == psql(source, digest)
        assert psql(target, "SELECT count(*) FROM notes").strip() == "500"
    finally:
        psql("postgres", f"DROP DATABASE IF EXISTS {source}")
        psql("postgres", f"DROP DATABASE IF EXISTS {target}")
