"""The Helm chart (helm/reelfarm): lint, render, validate every manifest, check its promises.

Core kinds are validated with kubernetes-validate (--strict), the RayCluster against KubeRay's
CRD schema (tests/helm/schemas/kuberay, vendored). Needs the helm binary (.ci/install-helm
puts it in .venv/bin); without it the tests are skipped, saying so.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "reelfarm"
EXAMPLES = ["gpu-cluster.yaml", "external-services.yaml", "dev-mode.yaml"]
VARIANTS = ["default", *EXAMPLES]
KUBERAY_CRD = Path(__file__).parent / "schemas" / "kuberay" / "ray.io_rayclusters.yaml"
# Kinds that are not core Kubernetes: validated against their CRD here, or explicitly not.
CRD_KINDS = {"RayCluster", "ServiceMonitor"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|KEY", re.IGNORECASE)
URL_WITH_CREDENTIALS = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@\s]*:[^/@\s]*@", re.IGNORECASE)


def _helm() -> str | None:
    local = Path(sys.executable).parent / "helm"
    return str(local) if local.exists() else shutil.which("helm")


HELM = _helm()
pytestmark = pytest.mark.skipif(HELM is None, reason="helm binary not found: run `bash .ci/install-helm`")


def _values_args(variant: str) -> list[str]:
    return [] if variant == "default" else ["-f", str(CHART / "examples" / variant)]


def _run_helm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([HELM, *args], check=False, capture_output=True, text=True, timeout=60)


@functools.cache
def render(variant: str) -> tuple[dict, ...]:
    result = _run_helm("template", "rf", str(CHART), "--namespace", "reelfarm", *_values_args(variant))
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(docs, *kinds: str) -> list[dict]:
    return [d for d in docs if d["kind"] in kinds]


def pod_specs(docs) -> list[tuple[str, dict]]:
    """(where, pod spec) of every pod the release makes, RayCluster groups included."""
    specs = []
    for d in of_kind(docs, "Deployment", "StatefulSet", "Job"):
        specs.append((f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"]))
    for d in of_kind(docs, "RayCluster"):
        specs.append((f"RayCluster/{d['metadata']['name']}/head", d["spec"]["headGroupSpec"]["template"]["spec"]))
        for group in d["spec"]["workerGroupSpecs"]:
            specs.append((f"RayCluster/{d['metadata']['name']}/{group['groupName']}", group["template"]["spec"]))
    return specs


@functools.cache
def kuberay_validator() -> jsonschema.Draft7Validator:
    """The ray.io/v1 openAPIV3Schema of the vendored CRD (a ~1 MB file: C YAML loader, built once)."""
    crd = yaml.load(KUBERAY_CRD.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return jsonschema.Draft7Validator(v1["schema"]["openAPIV3Schema"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_helm_lint_strict(variant):
    result = _run_helm("lint", "--strict", str(CHART), *_values_args(variant))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("variant", VARIANTS)
def test_core_manifests_pass_kubernetes_validate_strict(variant, tmp_path):
    docs = [d for d in render(variant) if d["kind"] not in CRD_KINDS]
    assert {"Deployment", "Service", "ConfigMap", "Job"} <= {d["kind"] for d in docs}
    paths = []
    for i, doc in enumerate(docs):
        path = tmp_path / f"{i:02d}-{doc['kind']}.yaml"
        path.write_text(yaml.safe_dump(doc))
        paths.append(str(path))
    cli = Path(sys.executable).parent / "kubernetes-validate"
    result = subprocess.run([str(cli), "--strict", "--quiet", *paths], check=False, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("variant", VARIANTS)
def test_raycluster_matches_kuberay_crd(variant):
    (cluster,) = of_kind(render(variant), "RayCluster")
    assert cluster["apiVersion"] == "ray.io/v1"
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in kuberay_validator().iter_errors(cluster)]
    assert not errors, errors
    # The schema is strict enough to catch a mistake, not a rubber stamp.
    broken = yaml.safe_load(yaml.safe_dump(cluster))
    broken["spec"]["workerGroupSpecs"][0]["minReplicas"] = "one"
    del broken["spec"]["headGroupSpec"]["template"]
    assert len(list(kuberay_validator().iter_errors(broken))) == 2


def test_servicemonitor_is_not_schema_validated_but_targets_the_metrics_ports():
    # No prometheus-operator CRD is vendored: the ServiceMonitor is checked by hand only.
    docs = render("gpu-cluster.yaml")
    (monitor,) = of_kind(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    ports = {e["port"] for e in monitor["spec"]["endpoints"]}
    services = of_kind(docs, "Service")
    named = {p["name"] for s in services if s["metadata"]["labels"]["app.kubernetes.io/component"] in
             ("api", "scheduler") for p in s["spec"]["ports"]}
    assert ports == {"http", "metrics"} and ports <= named
    (dashboard,) = [c for c in of_kind(docs, "ConfigMap") if c["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert "reelfarm.json" in dashboard["data"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_deployment_container_has_probes(variant):
    deployments = of_kind(render(variant), "Deployment")
    assert deployments
    for d in deployments:
        for c in d["spec"]["template"]["spec"]["containers"]:
            assert c.get("livenessProbe") and c.get("readinessProbe"), f"{d['metadata']['name']}/{c['name']}"
    api = next(d for d in deployments if d["metadata"]["name"].endswith("-api"))
    api_container = api["spec"]["template"]["spec"]["containers"][0]
    assert api_container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert api_container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    scheduler = next(d for d in deployments if d["metadata"]["name"].endswith("-scheduler"))
    probe = scheduler["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
    assert probe["grpc"]["port"] == 50051


def test_gpu_group_requests_gpus_and_video_capabilities():
    (cluster,) = of_kind(render("gpu-cluster.yaml"), "RayCluster")
    groups = {g["groupName"]: g for g in cluster["spec"]["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"}
    gpu = groups["gpu"]["template"]["spec"]
    container = gpu["containers"][0]
    assert int(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert "video" in env["NVIDIA_DRIVER_CAPABILITIES"].split(",")
    assert any(t.get("key") == "nvidia.com/gpu" for t in gpu["tolerations"])
    assert gpu["nodeSelector"]
    assert container["image"].endswith("-gpu")
    assert "nvidia.com/gpu" not in groups["cpu"]["template"]["spec"]["containers"][0]["resources"].get("limits", {})
    # Both groups declare their render slots and run the render node after joining Ray.
    for name, group in groups.items():
        assert re.fullmatch(r'"\{\\"render_slot\\": \d+\}"', group["rayStartParams"]["resources"]), name
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        args = " ".join(group["template"]["spec"]["containers"][0]["args"])
        assert "KUBERAY_GEN_RAY_START_CMD" in args and "reelfarm node" in args
    assert cluster["spec"]["enableInTreeAutoscaling"] is True
    assert cluster["spec"]["authOptions"]["mode"] == "token"
    head_env = {e["name"]: e for e in cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["env"]}
    assert head_env["RAY_AUTH_MODE"]["value"] == "token"
    assert "secretKeyRef" in head_env["RAY_AUTH_TOKEN"]["valueFrom"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_no_secret_values_in_configmaps(variant):
    configmaps = [c for c in of_kind(render(variant), "ConfigMap") if "grafana_dashboard" not in c["metadata"]["labels"]]
    assert configmaps
    for cm in configmaps:
        for key, value in cm.get("data", {}).items():
            assert not SECRET_NAME.search(key), f"{cm['metadata']['name']}: {key}"
            assert not URL_WITH_CREDENTIALS.match(value), f"{cm['metadata']['name']}: {key}"
    # The same holds for inline env of every container (the migrations hook's settings included).
    for where, spec in pod_specs(render(variant)):
        for c in spec["containers"]:
            for e in c.get("env", []):
                if "value" in e and SECRET_NAME.search(e["name"]):
                    assert e["name"] == "RAY_AUTH_MODE", f"{where}: {e['name']} inline"


def test_secret_like_setting_in_config_env_is_refused():
    result = _run_helm("template", "rf", str(CHART), "--set", "config.env.REELFARM_SECRET_KEY=hunter2")
    assert result.returncode != 0 and "REELFARM_SECRET_KEY" in result.stderr


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_image_is_pinned_to_a_tag(variant):
    images = []
    for where, spec in pod_specs(render(variant)):
        images += [(where, c["image"]) for c in spec.get("initContainers", []) + spec["containers"]]
    assert images
    for where, image in images:
        name, _, tag = image.rpartition(":")
        assert name and "/" not in tag and tag and tag != "latest", f"{where}: {image}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_pod_runs_non_root_on_a_read_only_root(variant):
    docs = render(variant)
    for where, spec in pod_specs(docs):
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001, f"{where}/{c['name']}"
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            assert "/tmp" in mounts or "/data" in mounts, f"{where}/{c['name']}: no writable scratch"
    for cluster in of_kind(docs, "RayCluster"):
        if cluster["spec"]["enableInTreeAutoscaling"]:
            assert cluster["spec"]["autoscalerOptions"]["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize("variant", VARIANTS)
def test_migrations_run_as_a_hook_before_new_pods(variant):
    (job,) = [j for j in of_kind(render(variant), "Job") if j["metadata"]["name"].endswith("-migrate")]
    hooks = set(job["metadata"]["annotations"]["helm.sh/hook"].split(","))
    # The in-cluster dev database exists only once installed: its first migration is post-install.
    assert hooks == ({"post-install", "pre-upgrade"} if variant == "dev-mode.yaml" else {"pre-install", "pre-upgrade"})
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]


def test_migrate_command_brings_a_database_to_head(tmp_path):
    """The hook's `reelfarm migrate` (here on SQLite): exits 0 with the schema at Alembic head."""
    import sqlite3

    db = tmp_path / "reelfarm.db"
    result = subprocess.run([str(Path(sys.executable).parent / "reelfarm"), "migrate", "--database-url",
                             f"sqlite:///{db}", "--data-dir", str(tmp_path)],
                            check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    (version,) = sqlite3.connect(db).execute("select version_num from alembic_version").fetchone()
    assert version


@pytest.mark.parametrize("variant", VARIANTS)
def test_one_scheduler_recreated_and_api_rolling(variant):
    deployments = {d["metadata"]["name"]: d for d in of_kind(render(variant), "Deployment")}
    scheduler = deployments["rf-reelfarm-scheduler"]["spec"]
    assert scheduler["strategy"] == {"type": "Recreate"} and scheduler["replicas"] == 1
    api = deployments["rf-reelfarm-api"]["spec"]
    assert api["strategy"]["type"] == "RollingUpdate"


def test_values_schema_rejects_wrong_types_and_unpinned_images():
    for bad in ("api.replicas=abc", "image.tag=latest", "scheduler.replicas=2", "config.storageUrl=file:///data"):
        result = _run_helm("template", "rf", str(CHART), "--set", bad)
        assert result.returncode != 0, bad
        assert "schema" in result.stderr, (bad, result.stderr)
    result = _run_helm("template", "rf", str(CHART), "--set", "unknownValue=1")
    assert result.returncode != 0 and "unknownValue" in result.stderr


def test_secrets_come_from_the_existing_secret_by_default():
    docs = render("default")
    assert not of_kind(docs, "Secret")
    api = next(d for d in of_kind(docs, "Deployment") if d["metadata"]["name"] == "rf-reelfarm-api")
    env = {e["name"]: e for e in api["spec"]["template"]["spec"]["containers"][0]["env"]}
    for name in ("REELFARM_DATABASE_URL", "REELFARM_SECRET_KEY", "RAY_AUTH_TOKEN"):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "reelfarm-secrets" and not ref.get("optional"), name
    assert env["REELFARM_REDIS_URL"]["valueFrom"]["secretKeyRef"]["optional"] is True


def test_dev_mode_runs_its_services_with_a_generated_secret():
    docs = render("dev-mode.yaml")
    names = {d["metadata"]["name"] for d in docs}
    assert {"rf-reelfarm-dev-postgresql", "rf-reelfarm-dev-redis", "rf-reelfarm-dev-s3"} <= names
    (secret,) = of_kind(docs, "Secret")
    data = secret["stringData"]
    assert data["database-url"].startswith("postgresql+psycopg://reelfarm:")
    assert data["database-url"].endswith("@rf-reelfarm-dev-postgresql:5432/reelfarm")
    assert len(data["secret-key"]) >= 32 and len(data["auth_token"]) >= 32
    assert "pre-install" in secret["metadata"]["annotations"]["helm.sh/hook"]
    # devMode with an existing Secret cannot work: refused.
    result = _run_helm("template", "rf", str(CHART), "-f", str(CHART / "examples" / "dev-mode.yaml"),
                       "--set", "secrets.existingSecret=mine")
    assert result.returncode != 0 and "devMode" in result.stderr
