"""`bento-nb k8s`: manifests that the Kubernetes schemas accept."""

from __future__ import annotations

import subprocess
import sys

import kubernetes_validate
import pytest
import yaml

from bento_nb.containerize.k8s import k8s_name, render_manifests, write_manifests
from bento_nb.errors import InvalidName, UsageError

CURRENT = kubernetes_validate.latest_version()  # the newest schemas the package ships


def _by_kind(docs):
    return {d["kind"]: d for d in docs}


@pytest.mark.parametrize("version", [CURRENT, "1.30"])
def test_cli_manifests_validate_strictly(iris_bundle, tmp_path, version):
    out = tmp_path / "k8s"
    proc = subprocess.run([sys.executable, "-m", "bento_nb", "k8s", iris_bundle.tag,
                           "--image", "registry.example.com/iris:1", "--replicas", "3",
                           "-o", str(out)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    files = sorted(p.name for p in out.iterdir())
    assert files == ["deployment.yaml", "hpa.yaml", "service.yaml"]
    kinds = set()
    for path in out.iterdir():
        doc = yaml.safe_load(path.read_text())
        kubernetes_validate.validate(doc, version, strict=True)  # raises on any schema error
        kinds.add((doc["apiVersion"], doc["kind"]))
    assert kinds == {("apps/v1", "Deployment"), ("v1", "Service"),
                     ("autoscaling/v2", "HorizontalPodAutoscaler")}


def test_stdout_yaml_is_three_documents(iris_bundle):
    proc = subprocess.run([sys.executable, "-m", "bento_nb", "k8s", iris_bundle.tag,
                           "--image", "iris:1"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    docs = list(yaml.safe_load_all(proc.stdout))
    assert [d["kind"] for d in docs] == ["Deployment", "Service", "HorizontalPodAutoscaler"]
    for doc in docs:
        kubernetes_validate.validate(doc, CURRENT, strict=True)


def test_deployment_probes_resources_and_security(iris_bundle):
    docs = _by_kind(render_manifests(iris_bundle.tag, "iris:1", replicas=2))
    deployment, service, hpa = docs["Deployment"], docs["Service"], docs["HorizontalPodAutoscaler"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "iris:1" and "args" not in container
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["ports"][0]["containerPort"] == 5000
    # keep serving while the endpoint is removed, and leave time for the 10 s drain after
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert 0 < pause and pause + 10 < pod["terminationGracePeriodSeconds"]
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert deployment["spec"]["replicas"] == 2
    # the Service and the autoscaler point at this Deployment's pods
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert all(labels[k] == v for k, v in service["spec"]["selector"].items())
    assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] == 2 <= hpa["spec"]["maxReplicas"]


def test_port_is_passed_to_the_server(iris_bundle):
    docs = _by_kind(render_manifests(iris_bundle.tag, "iris:1", port=8080))
    (container,) = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["--port", "8080"]  # appended to the image's ENTRYPOINT
    assert container["ports"][0]["containerPort"] == 8080
    assert docs["Service"]["spec"]["ports"][0]["port"] == 8080


def test_memory_grows_with_the_model(tmp_path):
    import numpy as np

    import bento_nb

    small = bento_nb.pack(lambda x: x, name="Small")
    big = bento_nb.pack(np.zeros(64 * 1024 * 1024 // 8), name="Big", apis=["sum"])

    def memory(bundle):
        (c,) = _by_kind(render_manifests(bundle.tag, "m:1"))["Deployment"]["spec"]["template"]["spec"]["containers"]
        return int(c["resources"]["requests"]["memory"].removesuffix("Mi"))

    assert memory(big) >= memory(small) + 128


@pytest.mark.parametrize("name, expected", [
    ("IrisClassifier", "irisclassifier"), ("my_model.v2", "my-model-v2"),
    ("9lives", "bento-9lives"), ("a" * 63 + "", "a" * 63),
])
def test_names_are_dns_labels(name, expected):
    assert k8s_name(name) == expected


def test_bad_arguments_are_one_line_errors(iris_bundle, tmp_path):
    with pytest.raises(UsageError):
        render_manifests(iris_bundle.tag, "iris:1", replicas=0)
    with pytest.raises(UsageError):
        render_manifests(iris_bundle.tag, "iris:1", port=70000)
    with pytest.raises(InvalidName):
        write_manifests(iris_bundle.tag, "Iris:1", tmp_path / "k8s")
    assert not (tmp_path / "k8s").exists()
    proc = subprocess.run([sys.executable, "-m", "bento_nb", "k8s", iris_bundle.tag,
                           "--image", "iris:1", "--replicas", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == UsageError.exit_code
    assert len(proc.stderr.strip().splitlines()) == 1
