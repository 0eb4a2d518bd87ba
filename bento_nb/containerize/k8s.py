"""Kubernetes manifests for a containerized bundle: Deployment, Service, autoscaler.

    docs = render_manifests("IrisClassifier:latest", image="registry.example.com/iris:1")
    paths = write_manifests("IrisClassifier:latest", "registry.example.com/iris:1", "k8s/")
    # kubectl apply -f k8s/

The Deployment runs the image of ``bento-nb containerize`` as uid 1000 (non-root, no
privilege escalation, all capabilities dropped, read-only root filesystem with ``/tmp`` an
emptyDir), probes ``/readyz`` (readiness) and ``/healthz`` (startup, liveness), and requests
memory in proportion to the bundle's size. The Service is a ClusterIP on ``port``; the
HorizontalPodAutoscaler (``autoscaling/v2``) scales on CPU between ``replicas`` and
``max(10, 2 * replicas)`` pods. Scale out with pods, not ``--workers``: one server process
per pod keeps the autoscaler's CPU signal honest.
"""

from __future__ import annotations

import math
import os
import re
import sys
from pathlib import Path

import yaml

from .. import templates
from ..errors import UsageError
from ..store import Bundle, find_bundle
from .reference import validate_image

_MI = 1024 * 1024
FILES = ("deployment.yaml", "service.yaml", "hpa.yaml")


def k8s_name(bundle_name: str) -> str:
    """A DNS-1035 label (what a Service name must be) from a bundle name."""
    name = re.sub(r"[^a-z0-9-]+", "-", bundle_name.lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name)
    if not name or not name[0].isalpha():
        name = f"bento-{name}".rstrip("-")
    return name[:63].rstrip("-")


def _label_value(text: str) -> str:
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63]
    return value.strip("_.-")


def memory_request_mi(bundle: Bundle) -> int:
    """256 MiB for the interpreter and libraries plus twice the bundle (the model loaded
    and headroom for batches), rounded up to 64 MiB."""
    needed = 256 + 2 * bundle.size / _MI
    return int(math.ceil(needed / 64) * 64)


def render_manifests(tag: str | os.PathLike | Bundle, image: str, replicas: int = 2,
                     port: int = templates.DEFAULT_PORT) -> list[dict]:
    """The Deployment, Service and HorizontalPodAutoscaler of a bundle, as dicts."""
    validate_image(image, allow_digest=True)
    if not isinstance(replicas, int) or replicas < 1:
        raise UsageError(f"--replicas must be at least 1, not {replicas}")
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise UsageError(f"--port must be between 1 and 65535, not {port}")
    bundle = find_bundle(tag)
    name = k8s_name(bundle.name)
    labels = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/version": _label_value(bundle.version),
        "app.kubernetes.io/managed-by": "bento-nb",
    }
    selector = {k: labels[k] for k in ("app.kubernetes.io/name", "app.kubernetes.io/instance")}
    annotations = {"bento-nb/tag": bundle.tag}
    memory = memory_request_mi(bundle)
    args = [] if port == templates.DEFAULT_PORT else ["--port", str(port)]

    def probe(path: str, period: int, failures: int) -> dict:
        return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period,
                "timeoutSeconds": 3, "failureThreshold": failures}

    container = {
        "name": "server",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        **({"args": args} if args else {}),
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": [
            {"name": "BENTO_NB_HOME", "value": "/tmp/bento_nb"},
            {"name": "JUPYTER_RUNTIME_DIR", "value": "/tmp/jupyter-runtime"},
        ],
        "startupProbe": probe("/healthz", 2, 60),     # up to two minutes to load a model
        "readinessProbe": probe("/readyz", 5, 2),
        "livenessProbe": probe("/healthz", 10, 3),
        # Endpoints are removed asynchronously after SIGTERM: keep answering a few seconds
        # so requests routed meanwhile are served, then drain (the server's own stop()).
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}},
        "resources": {
            "requests": {"cpu": "250m", "memory": f"{memory}Mi"},
            "limits": {"cpu": "1", "memory": f"{memory * 2}Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {**annotations, "prometheus.io/scrape": "true",
                                    "prometheus.io/port": str(port),
                                    "prometheus.io/path": "/metrics"},
                },
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                                        "runAsGroup": 1000,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "terminationGracePeriodSeconds": 30,
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    autoscaler = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": replicas,
            "maxReplicas": max(10, 2 * replicas),
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
        },
    }
    return [deployment, service, autoscaler]


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data) -> bool:  # shared label dicts are written out in full
        return True


def render_yaml(docs: list[dict]) -> str:
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def write_manifests(tag: str | os.PathLike | Bundle, image: str,
                    out_dir: str | os.PathLike, replicas: int = 2,
                    port: int = templates.DEFAULT_PORT) -> list[Path]:
    """Write ``deployment.yaml``, ``service.yaml`` and ``hpa.yaml`` into ``out_dir``
    (created if needed) and return their paths; ``kubectl apply -f out_dir`` applies them."""
    docs = render_manifests(tag, image, replicas=replicas, port=port)
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create the output folder {out}: {e.strerror}") from None
    paths = []
    for filename, doc in zip(FILES, docs):
        path = out / filename
        path.write_text(f"# Generated by bento-nb k8s for {doc['metadata']['annotations']['bento-nb/tag']}\n"
                        + render_yaml([doc]),
                        encoding="utf-8")
        paths.append(path)
    return paths


def run_cli(tag: str, image: str, replicas: int = 2, port: int = templates.DEFAULT_PORT,
            output: str | None = None) -> int:
    """``bento-nb k8s``: YAML on stdout, or files in ``-o DIR``."""
    if output is None:
        sys.stdout.write(render_yaml(render_manifests(tag, image, replicas=replicas, port=port)))
        return 0
    paths = write_manifests(tag, image, output, replicas=replicas, port=port)
    for path in paths:
        print(f"wrote {path}")
    print(f"apply with:  kubectl apply -f {Path(output)}")
    return 0
