"""Kubernetes manifests for a containerized bundle: Deployment, Service, autoscaler, or
one KServe InferenceService.

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

With KServe installed, :func:`render_inferenceservice` writes one
``serving.kserve.io/v1beta1`` ``InferenceService`` instead: the same image as a custom
predictor container (``kserve-container``, protocol v2), the same probes, resources and
restrictions, scaled by KServe, and rolled out as a canary with ``canary_image`` and
``canary_percent``::

    isvc = render_inferenceservice("IrisClassifier:2", "registry.example.com/iris:1",
                                   canary_image="registry.example.com/iris:2", canary_percent=10)

KServe's canary is a traffic split between two Knative revisions of one predictor: the
manifest puts the new image on the predictor with ``canaryTrafficPercent: N``; KServe gives
the new revision N % and the last revision that took 100 % (the one running the old image)
the rest. Promoting is applying it with 100 (then the plain manifest, which has the same
pod template and so starts no new revision); rolling back is 0 (the old image's plain
manifest works too, but makes a new revision, and until it is ready Knative routes all the
traffic to the latest ready one: the canary). That needs KServe's Serverless (Knative)
mode, the default here;
``mode="raw"`` (RawDeployment: a Deployment and an HPA, no Knative) scales on CPU only and
has no canary.
"""

from __future__ import annotations

import copy
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
KSERVE_FILE = "inferenceservice.yaml"
# --kserve-mode -> the serving.kserve.io/deploymentMode annotation, in the spelling that
# every KServe release reads (0.16 and later normalize it to Knative / Standard).
KSERVE_MODES = {"serverless": "Serverless", "raw": "RawDeployment"}
SCALE_METRICS = ("concurrency", "rps", "cpu")
# KServe names the Knative revisions <name>-predictor-00001: they must stay DNS labels.
_KSERVE_NAME_MAX = 63 - len("-predictor-00001")
# Ports of Knative's queue-proxy sidecar and autoscaler: a serving container cannot use them.
_KNATIVE_RESERVED_PORTS = (8008, 8012, 8013, 8022, 9090, 9091)
# Knative's HPA autoscaler class: what scales a Serverless predictor on CPU.
_KNATIVE_HPA_CLASS = "hpa.autoscaling.knative.dev"


def k8s_name(bundle_name: str, max_length: int = 63) -> str:
    """A DNS-1035 label (what a Service name must be) from a bundle name."""
    name = re.sub(r"[^a-z0-9-]+", "-", bundle_name.lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name)
    if not name or not name[0].isalpha():
        name = f"bento-{name}".rstrip("-")
    return name[:max_length].rstrip("-")


def _label_value(text: str) -> str:
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63]
    return value.strip("_.-")


def memory_request_mi(bundle: Bundle) -> int:
    """256 MiB for the interpreter and libraries plus twice the bundle (the model loaded
    and headroom for batches), rounded up to 64 MiB."""
    needed = 256 + 2 * bundle.size / _MI
    return int(math.ceil(needed / 64) * 64)


def _check_port(port: int) -> None:
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise UsageError(f"--port must be between 1 and 65535, not {port}")


def _identity(bundle: Bundle, name: str) -> tuple[dict, dict]:
    """The labels and annotations every object of a bundle carries."""
    labels = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/version": _label_value(bundle.version),
        "app.kubernetes.io/managed-by": "bento-nb",
    }
    return labels, {"bento-nb/tag": bundle.tag}


def _scrape_annotations(port: int) -> dict:
    return {"prometheus.io/scrape": "true", "prometheus.io/port": str(port),
            "prometheus.io/path": "/metrics"}


# Endpoints are removed asynchronously after SIGTERM: keep answering a few seconds so
# requests routed meanwhile are served, then drain (the server's own stop()).
_PRE_STOP = {"preStop": {"exec": {"command": ["sleep", "5"]}}}
_RUN_AS = {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000}
_SECCOMP = {"seccompProfile": {"type": "RuntimeDefault"}}


def _server_container(image: str, bundle: Bundle, port: int, *, name: str, port_name: str,
                      probe_port: int | str, pre_stop: bool, env: tuple = (),
                      run_as: bool = False) -> dict:
    """The container running ``bento-nb serve`` from the image: args, env, probes,
    resources and the restricted security context (``/tmp`` must be mounted writable).
    ``run_as`` puts the non-root user in the container's context (else the pod's)."""
    memory = memory_request_mi(bundle)
    args = [] if port == templates.DEFAULT_PORT else ["--port", str(port)]

    def probe(path: str, period: int, failures: int) -> dict:
        return {"httpGet": {"path": path, "port": probe_port}, "periodSeconds": period,
                "timeoutSeconds": 3, "failureThreshold": failures}

    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        **({"args": args} if args else {}),
        "ports": [{"name": port_name, "containerPort": port, "protocol": "TCP"}],
        "env": [
            {"name": "BENTO_NB_HOME", "value": "/tmp/bento_nb"},
            {"name": "JUPYTER_RUNTIME_DIR", "value": "/tmp/jupyter-runtime"},
            *env,
        ],
        "startupProbe": probe("/healthz", 2, 60),     # up to two minutes to load a model
        "readinessProbe": probe("/readyz", 5, 2),
        "livenessProbe": probe("/healthz", 10, 3),
        **({"lifecycle": _PRE_STOP} if pre_stop else {}),
        "resources": {
            "requests": {"cpu": "250m", "memory": f"{memory}Mi"},
            "limits": {"cpu": "1", "memory": f"{memory * 2}Mi"},
        },
        "securityContext": {
            **(_RUN_AS if run_as else {}),
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            **(_SECCOMP if run_as else {}),
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def render_manifests(tag: str | os.PathLike | Bundle, image: str, replicas: int = 2,
                     port: int = templates.DEFAULT_PORT) -> list[dict]:
    """The Deployment, Service and HorizontalPodAutoscaler of a bundle, as dicts."""
    validate_image(image, allow_digest=True)
    if not isinstance(replicas, int) or replicas < 1:
        raise UsageError(f"--replicas must be at least 1, not {replicas}")
    _check_port(port)
    bundle = find_bundle(tag)
    name = k8s_name(bundle.name)
    labels, annotations = _identity(bundle, name)
    selector = {k: labels[k] for k in ("app.kubernetes.io/name", "app.kubernetes.io/instance")}
    container = _server_container(image, bundle, port, name="server", port_name="http",
                                  probe_port="http", pre_stop=True)
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
                    "annotations": {**annotations, **_scrape_annotations(port)},
                },
                "spec": {
                    "securityContext": {**_RUN_AS, **_SECCOMP},
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
    return copy.deepcopy([deployment, service, autoscaler])  # nothing shared with the module


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data) -> bool:  # shared label dicts are written out in full
        return True


def render_yaml(docs: list[dict]) -> str:
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def _output_dir(out_dir: str | os.PathLike) -> Path:
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create the output folder {out}: {e.strerror}") from None
    return out


def write_manifests(tag: str | os.PathLike | Bundle, image: str,
                    out_dir: str | os.PathLike, replicas: int = 2,
                    port: int = templates.DEFAULT_PORT) -> list[Path]:
    """Write ``deployment.yaml``, ``service.yaml`` and ``hpa.yaml`` into ``out_dir``
    (created if needed) and return their paths; ``kubectl apply -f out_dir`` applies them."""
    docs = render_manifests(tag, image, replicas=replicas, port=port)
    out = _output_dir(out_dir)
    paths = []
    for filename, doc in zip(FILES, docs):
        path = out / filename
        path.write_text(f"# Generated by bento-nb k8s for {doc['metadata']['annotations']['bento-nb/tag']}\n"
                        + render_yaml([doc]),
                        encoding="utf-8")
        paths.append(path)
    return paths


# -- KServe ---------------------------------------------------------------------------------


def _check_kserve_options(image: str, port: int, mode: str, canary_image: str | None,
                          canary_percent: int | None, min_replicas: int,
                          max_replicas: int | None, scale_metric: str | None,
                          scale_target: int | None) -> None:
    """One-line :class:`UsageError` for what KServe (or Knative under it) would refuse."""
    def integer(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if mode not in KSERVE_MODES:
        raise UsageError(f"--kserve-mode must be {' or '.join(KSERVE_MODES)}, not {mode!r}")
    serverless = mode == "serverless"
    if serverless and port in _KNATIVE_RESERVED_PORTS:
        raise UsageError(f"--port {port} is reserved by Knative (queue-proxy, autoscaler); "
                         "pick another port")
    if canary_percent is not None and canary_image is None:
        raise UsageError("--canary-percent needs --canary-image (the image that gets that "
                         "share of the traffic)")
    if canary_image is not None:
        validate_image(canary_image, allow_digest=True)
        if not serverless:
            raise UsageError("--canary-image needs --kserve-mode serverless: KServe splits the "
                             "traffic between Knative revisions, and RawDeployment has none")
        if canary_image == image:
            raise UsageError(f"--canary-image is the image --image already runs ({image}): "
                             "a canary needs a new image")
        if not integer(canary_percent) or not 0 <= canary_percent <= 100:
            raise UsageError(f"--canary-percent must be between 0 and 100, not {canary_percent}")
    if not integer(min_replicas) or min_replicas < 0:
        raise UsageError(f"--min-replicas must be at least 0, not {min_replicas}")
    if min_replicas == 0 and not serverless:
        raise UsageError("--min-replicas 0 (scale to zero) needs --kserve-mode serverless")
    if max_replicas is not None and (not integer(max_replicas) or max_replicas < max(1, min_replicas)):
        raise UsageError(f"--max-replicas must be at least --min-replicas ({min_replicas}) "
                         f"and 1, not {max_replicas}")
    if scale_metric is not None and scale_metric not in SCALE_METRICS:
        raise UsageError(f"--scale-metric must be one of {', '.join(SCALE_METRICS)}, "
                         f"not {scale_metric!r}")
    if scale_metric in ("concurrency", "rps") and not serverless:
        raise UsageError(f"--scale-metric {scale_metric} needs --kserve-mode serverless "
                         "(Knative's autoscaler); RawDeployment scales on cpu")
    if scale_metric == "cpu" and min_replicas == 0:
        raise UsageError("--scale-metric cpu cannot scale to zero: use --min-replicas 1 or "
                         "more, or scale on concurrency or rps")
    if scale_target is not None:
        if not integer(scale_target) or scale_target < 1:
            raise UsageError(f"--scale-target must be greater than 0, not {scale_target}")
        if scale_metric == "cpu" and scale_target > 100:
            raise UsageError("--scale-target for cpu is a utilization percentage, 1 to 100, "
                             f"not {scale_target}")


def render_inferenceservice(tag: str | os.PathLike | Bundle, image: str, *,
                            port: int = templates.DEFAULT_PORT, mode: str = "serverless",
                            canary_image: str | None = None, canary_percent: int | None = None,
                            min_replicas: int = 2, max_replicas: int | None = None,
                            scale_metric: str | None = None,
                            scale_target: int | None = None) -> dict:
    """A KServe ``InferenceService`` (``serving.kserve.io/v1beta1``) serving the bundle
    from ``image`` as a custom predictor, as a dict.

    ``mode`` is ``"serverless"`` (Knative revisions: canaries, scale to zero, scaling on
    concurrency, rps or cpu) or ``"raw"`` (a Deployment and an HPA on cpu). With
    ``canary_image`` the predictor runs that image and ``canaryTrafficPercent`` is
    ``canary_percent`` (10 if not given): KServe sends that share to the new revision and
    the rest to the last revision that took all the traffic (the one running ``image``).
    Replicas run from ``min_replicas`` to ``max_replicas`` (default ``max(10, 2 * min)``);
    ``scale_target`` without ``scale_metric`` is for concurrency (serverless) or cpu (raw).
    """
    validate_image(image, allow_digest=True)
    _check_port(port)
    if canary_image is not None and canary_percent is None:
        canary_percent = 10
    if scale_target is not None and scale_metric is None:
        scale_metric = "concurrency" if mode == "serverless" else "cpu"
    _check_kserve_options(image, port, mode, canary_image, canary_percent, min_replicas,
                          max_replicas, scale_metric, scale_target)
    if max_replicas is None:
        max_replicas = max(10, 2 * min_replicas)
    serverless = mode == "serverless"
    bundle = find_bundle(tag)
    name = k8s_name(bundle.name, max_length=_KSERVE_NAME_MAX)
    labels, annotations = _identity(bundle, name)
    # Knative allows one port, named h2c or http1; probes on its number; no preStop hook (its
    # queue-proxy drains) and no pod-level security context, so the non-root user is set on
    # the container. KServe reads a custom container's protocol from PROTOCOL.
    container = _server_container(
        canary_image or image, bundle, port, name="kserve-container", port_name="http1",
        probe_port=port, pre_stop=not serverless, env=({"name": "PROTOCOL", "value": "v2"},),
        run_as=True)
    predictor = {
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
        **({"scaleMetric": scale_metric} if scale_metric else {}),
        **({"scaleTarget": scale_target} if scale_target is not None else {}),
        **({"canaryTrafficPercent": canary_percent} if canary_image is not None else {}),
        **({} if serverless else {
            "deploymentStrategy": {"type": "RollingUpdate",
                                   "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "terminationGracePeriodSeconds": 30}),
        "annotations": _scrape_annotations(port),
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    metadata_annotations = {"serving.kserve.io/deploymentMode": KSERVE_MODES[mode]}
    if serverless and scale_metric == "cpu":
        metadata_annotations["autoscaling.knative.dev/class"] = _KNATIVE_HPA_CLASS
    return copy.deepcopy({
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "labels": labels,
                     "annotations": {**metadata_annotations, **annotations}},
        "spec": {"predictor": predictor},
    })


def _kserve_header(isvc: dict, image: str) -> str:
    predictor = isvc["spec"]["predictor"]
    header = f"# Generated by bento-nb k8s for {isvc['metadata']['annotations']['bento-nb/tag']}\n"
    if "canaryTrafficPercent" in predictor:
        percent = predictor["canaryTrafficPercent"]
        header += (f"# Canary: {predictor['containers'][0]['image']} gets {percent} % of the "
                   f"traffic, the last revision rolled out at 100 % ({image}) {100 - percent} %\n")
    return header


def write_inferenceservice(tag: str | os.PathLike | Bundle, image: str,
                           out_dir: str | os.PathLike, **options) -> Path:
    """Write ``inferenceservice.yaml`` (see :func:`render_inferenceservice` for
    ``options``) into ``out_dir``, created if needed, and return its path."""
    isvc = render_inferenceservice(tag, image, **options)
    path = _output_dir(out_dir) / KSERVE_FILE
    path.write_text(_kserve_header(isvc, image) + render_yaml([isvc]), encoding="utf-8")
    return path


_KSERVE_FLAGS = {"kserve_mode": "--kserve-mode", "canary_image": "--canary-image",
                 "canary_percent": "--canary-percent", "min_replicas": "--min-replicas",
                 "max_replicas": "--max-replicas", "scale_metric": "--scale-metric",
                 "scale_target": "--scale-target"}


def run_cli(tag: str, image: str, replicas: int = 2, port: int = templates.DEFAULT_PORT,
            output: str | None = None, kserve: bool = False, **kserve_options) -> int:
    """``bento-nb k8s``: YAML on stdout, or files in ``-o DIR``; with ``kserve`` one
    InferenceService (``kserve_options``: the keys of ``_KSERVE_FLAGS``, None when unset)."""
    given = {k: v for k, v in kserve_options.items() if v is not None}
    if not kserve:
        for key in given:
            raise UsageError(f"{_KSERVE_FLAGS[key]} is an InferenceService option: add --kserve")
    if kserve and "min_replicas" not in given and (not isinstance(replicas, int) or replicas < 1):
        raise UsageError(f"--replicas must be at least 1, not {replicas} (--min-replicas 0 "
                         "scales to zero)")
    options = {"mode": given.pop("kserve_mode", "serverless"),
               "min_replicas": given.pop("min_replicas", replicas), **given}
    if output is None:
        if kserve:
            docs = [render_inferenceservice(tag, image, port=port, **options)]
        else:
            docs = render_manifests(tag, image, replicas=replicas, port=port)
        sys.stdout.write(render_yaml(docs))
        return 0
    if kserve:
        paths = [write_inferenceservice(tag, image, output, port=port, **options)]
    else:
        paths = write_manifests(tag, image, output, replicas=replicas, port=port)
    for path in paths:
        print(f"wrote {path}")
    out = paths[0].parent
    earlier = [f for f in ((KSERVE_FILE,) if not kserve else FILES) if (out / f).exists()]
    if earlier:
        print(f"note: {out} also holds {', '.join(earlier)} from an earlier run, which "
              f"`kubectl apply -f {Path(output)}` would apply too: remove it or use another folder")
    print(f"apply with:  kubectl apply -f {Path(output)}")
    return 0
