"""The container and Kubernetes files under deploy/ and the Dockerfile: the
manifests validate against Kubernetes' schemas (kubernetes-validate, strict),
and what they name exists in the real binary: the probe paths answer, every
HEARTH_* variable they set is one `hearth serve --help` documents, and the
ports agree."""

import pathlib
import subprocess

import httpx
import kubernetes_validate
import pytest
import yaml

from conftest import ROOT, TARGET, _binary

MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
KUBERNETES = "1.37.0"


def _documents():
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path, doc


def _serve_help():
    hearth = _binary("HEARTH_BIN", TARGET / "debug" / "hearth")
    return subprocess.run([str(hearth), "serve", "--help"], check=True, capture_output=True, text=True).stdout


def test_manifests_validate_strictly():
    assert len(MANIFESTS) >= 3
    kinds = set()
    for path, doc in _documents():
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
        kinds.add(doc["kind"])
    assert {"Deployment", "Service", "PersistentVolumeClaim", "HorizontalPodAutoscaler"} <= kinds
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": {"replicas": "two"}},
            KUBERNETES,
            strict=True,
        )


def test_deployment_matches_the_binary(server):
    (deployment,) = [d for _, d in _documents() if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    documented = _serve_help()
    for name in env:
        assert name in documented, f"{name} is not a setting of hearth serve"
    port = container["ports"][0]["containerPort"]
    assert env["HEARTH_HOST"].endswith(f":{port}")
    # The probes answer 200 on a running server.
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        path = container[probe]["httpGet"]["path"]
        assert httpx.get(server.url + path).status_code == 200, path
    # The model volume is mounted read-only, and the pod outlives the drain.
    assert all(m["readOnly"] for m in container["volumeMounts"] if m["mountPath"] == env["HEARTH_MODELS"])
    drain = int(env["HEARTH_DRAIN_TIMEOUT"].rstrip("s"))
    assert pod["terminationGracePeriodSeconds"] > drain
    # Prometheus scrapes the path that serves metrics, and the autoscaler's
    # metric is one of them.
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    metrics = httpx.get(server.url + annotations["prometheus.io/path"])
    assert metrics.status_code == 200
    (hpa,) = [d for _, d in _documents() if d["kind"] == "HorizontalPodAutoscaler"]
    for metric in hpa["spec"]["metrics"]:
        assert f"# TYPE {metric['pods']['metric']['name']} " in metrics.text


def test_dockerfile_runs_hearth_serve_as_configured():
    text = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["/usr/local/bin/hearth"]' in text
    assert 'CMD ["serve"]' in text
    documented = _serve_help()
    for line in text.splitlines():
        for word in line.replace("\\", " ").split():
            if word.startswith("HEARTH_"):
                assert word.split("=")[0] in documented, word
    assert "EXPOSE 11434" in text
