"""`bento-nb k8s`: manifests that the Kubernetes schemas accept."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from bento_nb.containerize.k8s import (k8s_name, render_inferenceservice, render_manifests,
                                       write_manifests)
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


# -- KServe InferenceService ---------------------------------------------------------------
#
# Checked against KServe's own CRD (../shared/schemas/kserve/, see its README): the schema a
# Kubernetes API server with KServe installed applies to an InferenceService, with the
# server's strict field validation (what `kubectl apply` asks for) made explicit.

CRD_FILE = Path("schemas", "kserve", "serving.kserve.io_inferenceservices.yaml")
REPO = Path(__file__).resolve().parents[2]
CANARY = ["--canary-image", "registry.example.com/iris:2", "--canary-percent", "20"]
AUTOSCALED = ["--min-replicas", "1", "--max-replicas", "6", "--scale-metric", "rps",
              "--scale-target", "40"]


def _crd_path() -> Path | None:
    """``shared/`` beside the checkout (CI: ``<repo>/../shared``), or beside a folder
    holding it (a worktree under ``wt/``)."""
    for folder in REPO.parents:
        if (folder / "shared" / CRD_FILE).is_file():
            return folder / "shared" / CRD_FILE
    return None


def _strict(schema):
    """The CRD's structural schema as the API server applies it with strict field
    validation: an object with ``properties`` takes no other field unless
    ``x-kubernetes-preserve-unknown-fields`` (only ``status`` has it) says so."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: (_strict(v) if k != "properties" else {n: _strict(s) for n, s in v.items()})
           for k, v in schema.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


_INT_RANGES = {"int32": (-2**31, 2**31 - 1), "int64": (-2**63, 2**63 - 1)}


def _format(validator, fmt, instance, schema):
    low, high = _INT_RANGES.get(fmt, (None, None))
    if low is not None and isinstance(instance, int) and not low <= instance <= high:
        yield jsonschema.ValidationError(f"{instance} is out of the {fmt} range")


def _list_type(validator, list_type, instance, schema):
    """Lists the API server keys: ``set`` items are unique, ``map`` items unique by their
    ``x-kubernetes-list-map-keys`` (a missing key counts as its default)."""
    if not isinstance(instance, list):
        return
    if list_type == "set" and len({json.dumps(i, sort_keys=True) for i in instance}) < len(instance):
        yield jsonschema.ValidationError(f"duplicate entries in a set: {instance}")
    if list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys", [])
        fields = schema.get("items", {}).get("properties", {})
        seen = [tuple(item.get(k, fields.get(k, {}).get("default")) for k in keys)
                for item in instance if isinstance(item, dict)]
        if len(set(seen)) < len(seen):
            yield jsonschema.ValidationError(f"duplicate {keys} in a map list: {seen}")


_KServeValidator = jsonschema.validators.extend(
    jsonschema.Draft7Validator, {"format": _format, "x-kubernetes-list-type": _list_type})
# KServe's webhook and the API server check the name and metadata the CRD leaves open.
_ISVC_NAME = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?\Z")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?\Z")


@pytest.fixture(scope="module")
def isvc_schema():
    path = _crd_path()
    if path is None:
        pytest.skip(f"KServe's CRD is not here: expected shared/{CRD_FILE} beside the checkout "
                    f"({REPO.parent / 'shared' / CRD_FILE})")
    crd = yaml.safe_load(path.read_text(encoding="utf-8"))
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    schema = _strict(version["schema"]["openAPIV3Schema"])
    _KServeValidator.check_schema(schema)
    return _KServeValidator(schema)


def _check_isvc(validator, doc) -> None:
    """Raise ``jsonschema.ValidationError`` if KServe's cluster would refuse ``doc``."""
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        raise errors[0]
    metadata = doc["metadata"]
    if not _ISVC_NAME.match(metadata["name"]) or len(metadata["name"]) > 63:
        raise jsonschema.ValidationError(f"invalid InferenceService name {metadata['name']!r}")
    for value in metadata.get("labels", {}).values():
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            raise jsonschema.ValidationError(f"invalid label value {value!r}")
    for value in metadata.get("annotations", {}).values():
        if not isinstance(value, str):
            raise jsonschema.ValidationError(f"annotation values are strings, not {value!r}")


def _k8s_cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "bento_nb", "k8s", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("variant, flags", [
    ("plain", []),
    ("canary", CANARY),
    ("autoscaled", AUTOSCALED),
    ("autoscaled-cpu", ["--scale-metric", "cpu", "--scale-target", "70"]),
    ("scale-to-zero", ["--min-replicas", "0", "--scale-metric", "concurrency"]),
    ("raw", ["--kserve-mode", "raw", "--scale-metric", "cpu", "--port", "8080"]),
])
def test_inferenceservice_validates_against_kserves_crd(iris_bundle, tmp_path, isvc_schema,
                                                        variant, flags):
    out = tmp_path / variant
    proc = _k8s_cli(iris_bundle.tag, "--image", "registry.example.com/iris:1", "--kserve",
                    *flags, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["inferenceservice.yaml"]
    doc = yaml.safe_load((out / "inferenceservice.yaml").read_text())
    assert (doc["apiVersion"], doc["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    _check_isvc(isvc_schema, doc)


@pytest.mark.parametrize("breakage", [
    # the CRD has protocolVersion on predictor.model only: a custom container says PROTOCOL
    lambda d: d["spec"]["predictor"]["containers"][0].update(protocolVersion="v2"),
    lambda d: d["spec"]["predictor"].update(canaryTrafficPercent="20"),
    lambda d: d["spec"]["predictor"].update(scaleMetric="gpu"),
    lambda d: d["spec"]["predictor"].update(minReplicas=2**31),
    lambda d: d["spec"]["predictor"]["containers"][0]["ports"].append(
        {"name": "again", "containerPort": 5000}),
    lambda d: d["spec"]["predictor"]["containers"][0]["resources"]["limits"].update(memory="lots"),
    lambda d: d["spec"].pop("predictor"),
    lambda d: d["metadata"].update(name="Iris_Classifier"),
    lambda d: d["metadata"]["annotations"].update({"bento-nb/replicas": 2}),
], ids=["field-kserve-does-not-have", "percent-as-string", "unknown-metric", "int32-overflow",
        "duplicate-port", "bad-quantity", "no-predictor", "bad-name", "non-string-annotation"])
def test_crd_check_rejects_broken_inferenceservices(iris_bundle, isvc_schema, breakage):
    doc = render_inferenceservice(iris_bundle.tag, "iris:1")
    _check_isvc(isvc_schema, copy.deepcopy(doc))  # the unbroken one passes
    breakage(doc)
    with pytest.raises(jsonschema.ValidationError):
        _check_isvc(isvc_schema, doc)


def test_inferenceservice_runs_the_image_like_the_deployment(iris_bundle):
    isvc = render_inferenceservice(iris_bundle.tag, "iris:1")
    deployment = _by_kind(render_manifests(iris_bundle.tag, "iris:1"))["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    predictor = isvc["spec"]["predictor"]
    (container,) = predictor["containers"]
    (served,) = pod["containers"]
    assert container["name"] == "kserve-container" and container["image"] == "iris:1"
    assert {"name": "PROTOCOL", "value": "v2"} in container["env"]  # KServe's protocol switch
    # Knative takes one port named h2c or http1, and probes on that port
    assert container["ports"] == [{"name": "http1", "containerPort": 5000, "protocol": "TCP"}]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == 5000
        assert container[probe]["httpGet"]["path"] == served[probe]["httpGet"]["path"]
    assert container["resources"] == served["resources"]
    # Knative refuses a pod-level security context: the same restrictions, on the container
    security = container["securityContext"]
    assert security == {**pod["securityContext"], **served["securityContext"]}
    assert security["runAsNonRoot"] is True and security["runAsUser"] != 0
    assert "securityContext" not in predictor and "lifecycle" not in container
    assert predictor["volumes"] == pod["volumes"]
    assert container["volumeMounts"] == served["volumeMounts"]
    assert isvc["metadata"]["annotations"]["bento-nb/tag"] == iris_bundle.tag
    assert isvc["metadata"]["labels"] == deployment["metadata"]["labels"]
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (2, 10)
    assert "canaryTrafficPercent" not in predictor


# What Knative Serving's webhook lets a Service's pod spec hold with its default feature
# flags (knative/serving pkg/apis/serving/fieldmask.go, k8s_validation.go, 2026-08): KServe's
# Serverless mode hands the predictor to it as is.
KNATIVE_POD_FIELDS = {"containers", "volumes", "serviceAccountName", "imagePullSecrets",
                      "enableServiceLinks", "automountServiceAccountToken"}
KNATIVE_CONTAINER_FIELDS = {
    "name", "args", "command", "env", "workingDir", "envFrom", "image", "imagePullPolicy",
    "livenessProbe", "ports", "readinessProbe", "resources", "securityContext", "startupProbe",
    "terminationMessagePath", "terminationMessagePolicy", "volumeMounts"}
KNATIVE_SECURITY_FIELDS = {"capabilities", "readOnlyRootFilesystem", "runAsUser", "runAsGroup",
                           "runAsNonRoot", "allowPrivilegeEscalation", "seccompProfile"}
KSERVE_PREDICTOR_FIELDS = {"minReplicas", "maxReplicas", "scaleMetric", "scaleTarget",
                           "canaryTrafficPercent", "annotations", "labels"}


@pytest.mark.parametrize("options", [
    {}, {"canary_image": "iris:2", "canary_percent": 20},
    {"scale_metric": "cpu", "scale_target": 70, "port": 8080},
    {"min_replicas": 0, "scale_metric": "rps", "scale_target": 30},
], ids=["plain", "canary", "cpu", "scale-to-zero"])
def test_serverless_predictor_keeps_to_what_knative_accepts(iris_bundle, options):
    predictor = render_inferenceservice(iris_bundle.tag, "iris:1", **options)["spec"]["predictor"]
    assert set(predictor) <= KNATIVE_POD_FIELDS | KSERVE_PREDICTOR_FIELDS
    (container,) = predictor["containers"]
    assert set(container) <= KNATIVE_CONTAINER_FIELDS
    assert set(container["securityContext"]) <= KNATIVE_SECURITY_FIELDS
    (port,) = container["ports"]  # one port, named for content negotiation, not reserved
    assert port["name"] in ("", "h2c", "http1") and port["protocol"] == "TCP"
    assert port["containerPort"] not in (8008, 8012, 8013, 8022, 9090, 9091)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] in (port["containerPort"], port["name"])
    assert not {e["name"] for e in container["env"]} & {"PORT", "K_SERVICE", "K_CONFIGURATION",
                                                        "K_REVISION"}
    volumes = {v["name"]: v for v in predictor["volumes"]}
    for mount in container["volumeMounts"]:
        assert mount["mountPath"] not in ("/", "/dev", "/dev/log")
        assert "emptyDir" in volumes[mount["name"]] or mount.get("readOnly")


def test_canary_puts_the_new_image_on_the_predictor_and_promotes_without_a_new_revision(
        iris_bundle):
    canary = render_inferenceservice(iris_bundle.tag, "iris:1", canary_image="iris:2",
                                     canary_percent=20)
    predictor = canary["spec"]["predictor"]
    assert predictor["containers"][0]["image"] == "iris:2"
    assert predictor["canaryTrafficPercent"] == 20
    # promoting = the plain manifest of the new image: it differs only by the traffic split,
    # which is not part of the revision template, so Knative starts no new revision
    plain = render_inferenceservice(iris_bundle.tag, "iris:2")
    del predictor["canaryTrafficPercent"]
    assert canary == plain
    default = render_inferenceservice(iris_bundle.tag, "iris:1", canary_image="iris:2")
    assert default["spec"]["predictor"]["canaryTrafficPercent"] == 10
    for percent in (0, 100):
        isvc = render_inferenceservice(iris_bundle.tag, "iris:1", canary_image="iris:2",
                                       canary_percent=percent)
        assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == percent


def test_autoscaling_fields_follow_the_mode(iris_bundle):
    rps = render_inferenceservice(iris_bundle.tag, "iris:1", min_replicas=1, max_replicas=6,
                                  scale_metric="rps", scale_target=40)["spec"]["predictor"]
    assert {k: rps[k] for k in ("minReplicas", "maxReplicas", "scaleMetric", "scaleTarget")} \
        == {"minReplicas": 1, "maxReplicas": 6, "scaleMetric": "rps", "scaleTarget": 40}
    # a target alone is for Knative's default metric, written out
    assert render_inferenceservice(iris_bundle.tag, "iris:1", scale_target=8)["spec"][
        "predictor"]["scaleMetric"] == "concurrency"
    # cpu on Knative needs its HPA autoscaler class
    cpu = render_inferenceservice(iris_bundle.tag, "iris:1", scale_metric="cpu")
    assert cpu["metadata"]["annotations"]["autoscaling.knative.dev/class"] \
        == "hpa.autoscaling.knative.dev"
    assert "autoscaling.knative.dev/class" not in render_inferenceservice(
        iris_bundle.tag, "iris:1", scale_metric="rps")["metadata"]["annotations"]
    raw = render_inferenceservice(iris_bundle.tag, "iris:1", mode="raw", scale_target=60)
    predictor = raw["spec"]["predictor"]
    assert raw["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    assert "autoscaling.knative.dev/class" not in raw["metadata"]["annotations"]
    assert (predictor["scaleMetric"], predictor["scaleTarget"]) == ("cpu", 60)
    # a plain Deployment underneath: the Deployment's rollout and drain come back
    assert predictor["deploymentStrategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert predictor["containers"][0]["lifecycle"]["preStop"]
    assert predictor["terminationGracePeriodSeconds"] == 30


def test_long_bundle_names_leave_room_for_knative_revision_names(tmp_path):
    import bento_nb

    bundle = bento_nb.pack(lambda x: x, name="A" * 60)
    name = render_inferenceservice(bundle.tag, "m:1")["metadata"]["name"]
    assert len(f"{name}-predictor-00001") <= 63
    assert k8s_name(bundle.name) == "a" * 60  # the Deployment keeps its name


def test_kserve_stdout_is_one_document(iris_bundle):
    proc = _k8s_cli(iris_bundle.tag, "--image", "iris:1", "--kserve", *CANARY)
    assert proc.returncode == 0, proc.stderr
    (doc,) = yaml.safe_load_all(proc.stdout)
    assert doc["kind"] == "InferenceService"
    assert doc["spec"]["predictor"]["canaryTrafficPercent"] == 20


def test_kserve_output_folder_says_what_the_canary_does(iris_bundle, tmp_path):
    out = tmp_path / "k8s"
    assert _k8s_cli(iris_bundle.tag, "--image", "iris:1", "-o", str(out)).returncode == 0
    proc = _k8s_cli(iris_bundle.tag, "--image", "registry.example.com/iris:1", "--kserve",
                    *CANARY, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    text = (out / "inferenceservice.yaml").read_text()
    assert text.startswith(f"# Generated by bento-nb k8s for {iris_bundle.tag}\n"
                           "# Canary: registry.example.com/iris:2 gets 20 % of the traffic, the "
                           "last revision rolled out at 100 % (registry.example.com/iris:1) 80 %\n")
    assert f"wrote {out / 'inferenceservice.yaml'}" in proc.stdout
    # the Deployment written there before would be applied beside the InferenceService
    assert "deployment.yaml, service.yaml, hpa.yaml from an earlier run" in proc.stdout
    assert f"apply with:  kubectl apply -f {out}" in proc.stdout


@pytest.mark.parametrize("flags, message", [
    (["--canary-image", "iris:2"], "--canary-image is an InferenceService option: add --kserve"),
    (["--min-replicas", "1"], "--min-replicas is an InferenceService option: add --kserve"),
    (["--kserve", "--canary-percent", "20"], "--canary-percent needs --canary-image"),
    (["--kserve", "--canary-image", "iris:2", "--canary-percent", "101"],
     "--canary-percent must be between 0 and 100, not 101"),
    (["--kserve", "--canary-image", "iris:2", "--canary-percent", "-1"],
     "--canary-percent must be between 0 and 100, not -1"),
    (["--kserve", "--canary-image", "iris:1"], "--canary-image is the image --image already runs"),
    (["--kserve", "--canary-image", "Iris:2"], "invalid image name 'Iris:2'"),
    (["--kserve", "--kserve-mode", "raw", "--canary-image", "iris:2"],
     "--canary-image needs --kserve-mode serverless"),
    (["--kserve", "--min-replicas", "4", "--max-replicas", "3"],
     "--max-replicas must be at least --min-replicas (4) and 1, not 3"),
    (["--kserve", "--min-replicas", "-1"], "--min-replicas must be at least 0, not -1"),
    (["--kserve", "--replicas", "0"], "--replicas must be at least 1, not 0"),
    (["--kserve", "--kserve-mode", "raw", "--min-replicas", "0"],
     "--min-replicas 0 (scale to zero) needs --kserve-mode serverless"),
    (["--kserve", "--scale-target", "0"], "--scale-target must be greater than 0, not 0"),
    (["--kserve", "--scale-metric", "cpu", "--scale-target", "150"],
     "--scale-target for cpu is a utilization percentage, 1 to 100, not 150"),
    (["--kserve", "--scale-metric", "gpu"], "argument --scale-metric: invalid choice: 'gpu'"),
    (["--kserve", "--kserve-mode", "raw", "--scale-metric", "rps"],
     "--scale-metric rps needs --kserve-mode serverless"),
    (["--kserve", "--min-replicas", "0", "--scale-metric", "cpu"],
     "--scale-metric cpu cannot scale to zero"),
    (["--kserve", "--port", "8012"], "--port 8012 is reserved by Knative"),
])
def test_bad_kserve_flags_are_one_line_errors(iris_bundle, tmp_path, flags, message):
    out = tmp_path / "k8s"
    proc = _k8s_cli(iris_bundle.tag, "--image", "iris:1", *flags, "-o", str(out))
    assert proc.returncode == UsageError.exit_code, proc.stdout
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("bento-nb: error: ") and message in line
    assert not out.exists()
