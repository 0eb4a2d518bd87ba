"""What is served: services, their APIs, and saving/loading them as bundles.

Two ways to define a service. Quick, for any object with the named methods (or a callable)::

    bundle = bento_nb.pack(clf, name="IrisClassifier", apis=["predict"])

Seed-compatible (BentoML 0.x), also from a notebook cell::

    @env(infer_pip_packages=True)
    @artifacts([SklearnModelArtifact("model")])
    class IrisClassifier(BentoService):
        @api(input=DataframeInput(), batch=True)
        def predict(self, df):
            return self.artifacts.model.predict(df)

    svc = IrisClassifier(); svc.pack("model", clf); path = svc.save()

``bento_nb.load(tag_or_path)`` gives the service back with its APIs callable in-process
(``svc.predict(df)`` or ``svc.apis["predict"]([[5.1, 3.5, 1.4, 0.2]])``). The server uses
:meth:`InferenceAPI.run_batch` / :meth:`InferenceAPI.run_one` on parsed payloads.
"""

from __future__ import annotations

import copy
import datetime as _dt
import inspect
import os
import platform
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .. import _pickling, provenance as _provenance, requirements, templates
from .._version import __version__
from ..adapters import (DataframeInput, InputAdapter, Payload, adapter_from_config,
                        split_results)
from ..adapters.signature import Signature
from ..errors import BentoNbError, BundleCorrupted, BundleNotFound, ModelError, PackError
from ..store import Bundle, Store, Tag, find_bundle, looks_like_path, validate_name
from .artifacts import Artifact, ArtifactCollection, PickleArtifact

SERVICE_FILE = "service.pkl"
_EXAMPLE_MAX_BYTES = 16 * 1024


# -- declarations -------------------------------------------------------------------------


@dataclass
class ApiSpec:
    """What ``@api`` records on a method."""

    input: InputAdapter
    batch: bool = False
    route: str | None = None
    name: str | None = None
    doc: str = ""


@dataclass
class Env:
    """What ``@env`` records on a class."""

    infer_pip_packages: bool = True
    pip_packages: list[str] = field(default_factory=list)


def api(input: InputAdapter | None = None, batch: bool = False, route: str | None = None,
        name: str | None = None, **_ignored: Any) -> Callable:
    """Mark a service method as an inference API served at ``POST /<route>``."""
    if input is not None and not isinstance(input, InputAdapter):
        raise TypeError(f"@api(input=...) expects an adapter such as DataframeInput(), got {input!r}")

    def decorate(func: Callable) -> Callable:
        api_name = validate_name(name or func.__name__, "API name")
        func._bento_api = ApiSpec(input or DataframeInput(), bool(batch),
                                  (route or api_name).strip("/"), api_name,
                                  inspect.getdoc(func) or "")
        return func

    return decorate


def env(infer_pip_packages: bool = True, pip_packages: Iterable[str] | None = None,
        requirements_txt_file: str | None = None, **_ignored: Any) -> Callable:
    """Declare the service's Python requirements (inferred, plus ``pip_packages``)."""
    packages = list(pip_packages or [])
    if requirements_txt_file:
        with open(requirements_txt_file, encoding="utf-8") as f:
            packages += [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]

    def decorate(cls: type) -> type:
        cls._bento_env = Env(bool(infer_pip_packages), packages)
        return cls

    return decorate


def artifacts_decorator(specs: Sequence[Artifact]) -> Callable:
    """``@artifacts([...])``: declare the named artifacts a service class carries. (Named
    as in BentoML 0.13: ``bento_nb.service.artifacts`` is the package of artifact classes;
    the package root exports this as ``bento_nb.artifacts``.)"""
    specs = list(specs)
    for spec in specs:
        if not isinstance(spec, Artifact):
            raise TypeError(f"@artifacts([...]) expects Artifact instances, got {spec!r}")

    def decorate(cls: type) -> type:
        cls._bento_artifacts = specs
        return cls

    return decorate


# -- APIs ---------------------------------------------------------------------------------


class InferenceAPI:
    """One API of a service instance: its adapter, batching mode and function."""

    def __init__(self, name: str, func: Callable, adapter: InputAdapter, batch: bool,
                 route: str, doc: str = ""):
        self.name = name
        self.func = func
        self.input = adapter
        self.batch = batch
        self.route = route
        self.doc = doc
        # Only table-like inputs carry rows; other adapters are one item per request.
        self._per_row = isinstance(adapter, DataframeInput)

    def __call__(self, data: Any) -> Any:
        """Call in-process with a Python value (DataFrame, rows, dict, str, bytes)."""
        payload = self.input.from_python(data)
        if self.batch:
            return self._call(self.input.make_batch([payload]))
        return self._call(self.input.make_single(payload))

    def run_one(self, payload: Payload) -> Any:
        """The result for one parsed request (``batch=False``, or a batch of one)."""
        if self.batch:
            return self.run_batch([payload])[0]
        return self._call(self.input.make_single(payload))

    def run_batch(self, payloads: Sequence[Payload]) -> list[Any]:
        """One result per payload, in order. Raises ModelError if the function raises or
        returns the wrong number of results (the caller may then split the batch)."""
        if self._per_row:
            columns = payloads[0].columns
            if any(p.columns != columns for p in payloads):
                return self._run_by_columns(payloads)
            result = self._call(self.input.make_batch(payloads))
            return split_results(result, [p.rows for p in payloads])
        result = self._call(self.input.make_batch(payloads))
        return [r[0] for r in split_results(result, [1] * len(payloads))]

    def _run_by_columns(self, payloads: Sequence[Payload]) -> list[Any]:
        """Tables with different column names never share a DataFrame (pandas would align
        them by name into NaN): one call per set of names, results put back in order."""
        groups: dict[Any, list[int]] = {}
        for index, payload in enumerate(payloads):
            groups.setdefault(payload.columns, []).append(index)
        results: list[Any] = [None] * len(payloads)
        for indices in groups.values():
            for index, result in zip(indices, self.run_batch([payloads[i] for i in indices])):
                results[index] = result
        return results

    def _call(self, argument: Any) -> Any:
        try:
            return self.func(argument)
        except BentoNbError:
            raise
        except Exception as e:  # the user's code failed: report it, keep serving
            raise ModelError(f"{type(e).__name__}: {e}") from e

    def describe(self) -> dict:
        """What the manifest and ``/metadata`` say of this API; ``signature``: the columns
        it takes (see :mod:`bento_nb.adapters.signature`), when they are known."""
        out = {"name": self.name, "route": f"/{self.route}", "input": self.input.config(),
               "output": "json", "batch": self.batch, "doc": self.doc}
        signature = getattr(self.input, "described_signature", None)
        signature = signature() if signature is not None else None
        if signature is not None:
            out["signature"] = signature.to_dict()
        return out

    def __repr__(self) -> str:
        return f"<InferenceAPI {self.name} {self.input!r} batch={self.batch}>"


# -- services -----------------------------------------------------------------------------


class BentoService:
    """Base class of services. Subclass it with ``@artifacts``, ``@env`` and ``@api``."""

    _bento_artifacts: list[Artifact] = []
    _bento_env: Env = Env()

    def __init__(self) -> None:
        self.artifacts = ArtifactCollection(copy.deepcopy(type(self)._bento_artifacts))
        self._apis = self._collect_apis()
        self.bundle: Bundle | None = None
        self.labels: dict[str, str] = {}
        # {"api": name, "body": request body}: the documented example (pack(example=...))
        self.example: dict | None = None

    # identity

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def version(self) -> str | None:
        return self.bundle.version if self.bundle else None

    @property
    def tag(self) -> str | None:
        return self.bundle.tag if self.bundle else None

    @property
    def apis(self) -> dict[str, InferenceAPI]:
        return dict(self._apis)

    def _collect_apis(self) -> dict[str, InferenceAPI]:
        found: dict[str, InferenceAPI] = {}
        for attr in dir(type(self)):
            func = getattr(type(self), attr, None)
            spec = getattr(func, "_bento_api", None)
            if isinstance(spec, ApiSpec):
                found[spec.name] = InferenceAPI(spec.name, getattr(self, attr),
                                                copy.deepcopy(spec.input), spec.batch,
                                                spec.route or spec.name, spec.doc)
        return found

    # packing

    def pack(self, name: str, obj: Any) -> "BentoService":
        """Put a model object into the artifact ``name``; returns self for chaining."""
        self.artifacts.pack(name, obj)
        for inference_api in self._apis.values():  # what the artifact serves tells the width
            inference_api.input.configure(self.artifacts[name])
        return self

    def save(self, labels: dict | None = None, store: Store | None = None) -> str:
        """Save as a new version in the store; returns the bundle path (as BentoML 0.x)."""
        return str(self.save_bundle(labels=labels, store=store).path)

    def save_bundle(self, labels: dict | None = None, store: Store | None = None,
                    extra_requirements: Iterable[str] = (), example: Any = None,
                    provenance: bool = True) -> Bundle:
        """Save as a new version; returns the Bundle. ``example``: an input the first API
        (``predict`` if there is one) is called with, e.g. ``X[:2]``; it is run through the
        API once now, then shown as the request example in /docs.json, the Try-it box and
        the bundle's README, and its columns and types become the API's signature, checked
        on every request. ``provenance``: record the notebook, the source of the cells run
        so far, the git commit and the environment (:mod:`bento_nb.provenance`); cells may
        hold secrets: ``False`` records none of it."""
        missing = self.artifacts.missing()
        if missing:
            raise PackError(f"artifact(s) {missing} not packed: call svc.pack(name, obj) first")
        if not self._apis:
            raise PackError(f"{self.name} has no API: decorate a method with @api(...)")
        if example is not None:
            self.example = self._checked_example(example)
        store = store or Store()
        labels = {str(k): str(v) for k, v in {**self.labels, **(labels or {})}.items()}
        extra = [*type(self)._bento_env.pip_packages, *extra_requirements]
        origin = _provenance.collect() if provenance else None
        bundle = store.save(self.name, partial(self._write_bundle, labels=labels, extra=extra,
                                               origin=origin))
        self.bundle = bundle
        return bundle

    def _checked_example(self, value: Any) -> dict:
        """``value`` as a request body of the first API, sent through that API as the server
        would (so the documented example is known to work). For a table API the example's
        columns and types become the signature of every API taking the same input, and the
        example is checked against it as any request will be."""
        api = self._apis.get("predict") or next(iter(self._apis.values()))
        table = isinstance(api.input, DataframeInput)
        previous = api.input.signature if table else None
        try:
            body = api.input.example_body(value)
            raw, content_type = api.input.encode_example(body)
            if len(raw) > _EXAMPLE_MAX_BYTES:
                raise PackError(f"the example is {len(raw):,} bytes as a request; keep it to a "
                                f"few rows (at most {_EXAMPLE_MAX_BYTES:,} bytes)")
            if table:
                api.input.signature = None  # inferred from this example, not the last one
                api.input.signature = api.input.infer_signature(value)
            api.run_one(api.input.parse(raw, content_type))
        except BentoNbError as e:
            if table:
                api.input.signature = previous
            if isinstance(e, PackError):
                raise
            raise PackError(f"the example does not work with API {api.name!r}: {e.message}") from None
        if table:
            config = api.input.config()
            for other in self._apis.values():
                if isinstance(other.input, DataframeInput) and other.input.config() == config:
                    other.input.signature = api.input.signature
        return {"api": api.name, "body": body}

    def _definition(self) -> dict:
        """Picklable state that rebuilds this service (apart from artifacts)."""
        return {}

    def _write_bundle(self, folder: Path, version: str, labels: dict, extra: list,
                      origin: dict | None = None) -> dict:
        cls = type(self)
        local = _pickling.local_modules(cls, *[obj for _, obj in self.artifacts.items()])
        service = _pickling.dump({"class": cls, "definition": self._definition()},
                                 folder, "service", by_value=local)
        records = [spec.save(self.artifacts[name], folder)
                   for name, spec in self.artifacts.specs.items()]

        source = _service_source(cls)
        if source:
            (folder / "service.py").write_text(source, encoding="utf-8")
        modules = set(_pickling.pickled_modules(folder / SERVICE_FILE))
        for spec, record in zip(self.artifacts.specs.values(), records):
            modules |= spec.modules(folder, record)
        if source:
            modules |= requirements.imports_in_source(source)
        inferred = requirements.infer(modules) if cls._bento_env.infer_pip_packages else []
        pins = requirements.merge(inferred, extra)
        (folder / "requirements.txt").write_text("".join(f"{r}\n" for r in pins), encoding="utf-8")

        manifest = {
            "name": self.name,
            "version": version,
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "bento_nb_version": __version__,
            "python_version": platform.python_version(),
            "service": {"class": f"{cls.__module__}.{cls.__qualname__}",
                        "source": "service.py" if source else None, **service},
            "apis": [a.describe() for a in self._apis.values()],
            "artifacts": records,
            "labels": labels,
            "requirements": pins,
        }
        if self.example is not None:
            manifest["example"] = self.example
        if origin is not None:
            manifest["provenance"] = origin
        (folder / "README.md").write_text(templates.render_readme(manifest), encoding="utf-8")
        (folder / "Dockerfile").write_text(templates.render_dockerfile(manifest), encoding="utf-8")
        return manifest

    @classmethod
    def _restore(cls, definition: dict) -> "BentoService":
        return cls()

    def __repr__(self) -> str:
        return f"<{self.name} {self.tag or '(not saved)'} apis={list(self._apis)}>"


class ModelService(BentoService):
    """A service around one model object, made by :func:`pack` / :func:`serve`: each API
    name calls the model's method of that name (``predict`` calls a plain callable)."""

    _bento_artifacts = [PickleArtifact("model")]

    def __init__(self, name: str = "Model", apis: Sequence[str] = ("predict",),
                 input: str | InputAdapter | dict = "dataframe", batch: bool = True,
                 sklearn: bool = False):
        self._name = validate_name(name)
        self._api_names = [validate_name(a, "API name") for a in apis]
        if not self._api_names:
            raise PackError("at least one API name is needed, e.g. apis=['predict']")
        self._input = input if isinstance(input, (InputAdapter, dict)) else str(input)
        self._batch = bool(batch)
        self._sklearn = bool(sklearn)
        super().__init__()
        if self._sklearn:  # same file format; the manifest then says what the model is
            from ..frameworks.sklearn import SklearnModelArtifact

            self.artifacts = ArtifactCollection([SklearnModelArtifact("model")])

    @property
    def name(self) -> str:
        return self._name

    def __getattr__(self, attr: str) -> Any:
        """``svc.predict(rows)``: each API is also an attribute, as on a class-style service."""
        apis = self.__dict__.get("_apis") or {}
        if attr in apis:
            return apis[attr]
        raise AttributeError(f"{type(self).__name__} {self.__dict__.get('_name', '')!r} has no "
                             f"attribute or API {attr!r}; its APIs: {', '.join(apis) or 'none'}")

    def _collect_apis(self) -> dict[str, InferenceAPI]:
        apis = {}
        for api_name in self._api_names:
            adapter = (copy.deepcopy(self._input) if isinstance(self._input, InputAdapter)
                       else adapter_from_config(self._input))
            apis[api_name] = InferenceAPI(api_name, partial(self._call_model, api_name),
                                          adapter, self._batch, api_name)
        return apis

    def _call_model(self, method: str, argument: Any) -> Any:
        model = self.artifacts.model
        target = getattr(model, method, None)
        if target is None and method == "predict" and callable(model):
            target = model
        if _fitted_without_names(model) and _unnamed_frame(argument):
            # The same numbers without the DataFrame: scikit-learn's pandas checks cost
            # ~0.3 ms per call, more than predicting a whole iris batch (bench/serve.py).
            argument = argument.to_numpy()
        return target(argument)

    def pack(self, name: str, obj: Any) -> "ModelService":
        for api_name in self._api_names:
            if not callable(getattr(obj, api_name, None)) and not (api_name == "predict" and callable(obj)):
                raise PackError(f"{type(obj).__name__} has no method {api_name!r} to serve")
        return super().pack(name, obj)  # type: ignore[return-value]

    def _definition(self) -> dict:
        return {"name": self._name, "apis": self._api_names,
                "input": self._input if isinstance(self._input, (str, dict)) else self._input.config(),
                "batch": self._batch, "sklearn": self._sklearn}

    @classmethod
    def _restore(cls, definition: dict) -> "ModelService":
        return cls(definition["name"], definition["apis"], definition["input"], definition["batch"],
                   definition.get("sklearn", False))


# -- module-level entry points ------------------------------------------------------------


def pack(model: Any, name: str = "Model", apis: Sequence[str] | str = ("predict",),
         input: str | InputAdapter = "dataframe", batch: bool = True,
         labels: dict | None = None, requirements: Iterable[str] | None = None,
         store: Store | None = None, example: Any = None, provenance: bool = True) -> Bundle:
    """Save any cloudpickle-able object (with the named methods, or a callable) as a new
    bundle version; returns the :class:`~bento_nb.store.Bundle` (``.tag``, ``.path``).
    ``example`` (e.g. ``X[:2]``) is checked against the first API and documented as its
    request example and signature; ``provenance=False``: record no notebook, cells, git
    state or environment hash (see :meth:`BentoService.save_bundle`)."""
    svc = service_from_model(model, name=name, apis=apis, input=input, batch=batch)
    return svc.save_bundle(labels=labels, store=store, extra_requirements=requirements or (),
                           example=example, provenance=provenance)


def service_from_model(model: Any, name: str = "Model", apis: Sequence[str] | str = ("predict",),
                       input: str | InputAdapter = "dataframe", batch: bool = True) -> ModelService:
    """Wrap a live model object in a service without saving it."""
    if isinstance(apis, str):
        apis = [a.strip() for a in apis.split(",") if a.strip()]
    svc = ModelService(name, apis, input, batch,
                       sklearn=type(model).__module__.split(".")[0] == "sklearn")
    svc.pack("model", model)
    return svc


def load(target: str | os.PathLike | Bundle, store: Store | None = None,
         verify: bool = True) -> BentoService:
    """Load a bundle by tag (``Name``, ``Name:latest``, ``Name:version``), by path, or from a
    :class:`Bundle`. Checksums are verified first. Loading unpickles code: trusted bundles
    only.

    A bundle another process deletes while it is being read raises BundleNotFound, not
    BundleCorrupted; ``Name`` and ``Name:latest`` then resolve again (a few times) to the
    version that is now the newest."""
    moving = (isinstance(target, str) and not looks_like_path(target)
              and Tag.parse(target).version is None)
    for _ in range(3 if moving else 1):
        bundle = find_bundle(target, store)
        try:
            return _load_bundle(bundle, verify)
        except (BentoNbError, OSError) as e:  # OSError: a file vanished during verify()
            if bundle.path.exists():
                raise
            gone = BundleNotFound(f"bundle {bundle.tag} was deleted while it was being loaded")
            gone.__cause__ = e
    raise gone


def _load_bundle(bundle: Bundle, verify: bool) -> BentoService:
    if verify:
        bundle.verify()
    manifest = bundle.manifest
    try:
        definition = _pickling.load(bundle.path, manifest["service"])
        svc = definition["class"]._restore(definition["definition"])
        for record in manifest.get("artifacts") or []:
            spec = svc.artifacts.specs.get(record["name"])
            if spec is None:
                raise BundleCorrupted(f"bundle {bundle.tag}: unknown artifact {record['name']!r}")
            svc.artifacts._objects[record["name"]] = spec.load(bundle.path, record)
    except BentoNbError:
        raise
    except Exception as e:
        raise BundleCorrupted(
            f"bundle {bundle.tag} could not be loaded: {type(e).__name__}: {e} "
            "(was it packed with a different Python or library version?)") from e
    for index, described in enumerate(manifest.get("apis") or []):
        inference_api = svc._apis.get(described["name"])
        if inference_api is not None:
            inference_api.input = _adapter_of(bundle, index, described["input"])
            inference_api._per_row = isinstance(inference_api.input, DataframeInput)
            for _, obj in svc.artifacts.items():  # what an older version did not record
                inference_api.input.configure(obj)
            signature = described.get("signature")
            if signature and signature.get("from") == "example" and inference_api._per_row:
                inference_api.input.signature = Signature.from_dict(signature)
    svc.bundle = bundle
    svc.labels = bundle.labels
    svc.example = manifest.get("example")
    return svc


def _adapter_of(bundle: Bundle, index: int, config: dict | str) -> InputAdapter:
    """The input adapter a manifest describes; an unknown kind or option is BundleCorrupted
    naming the field (the structure was checked by :func:`~bento_nb.store.check_manifest`)."""
    try:
        return adapter_from_config(config)
    except (BentoNbError, TypeError, ValueError) as e:
        problem = e.message if isinstance(e, BentoNbError) else f"{type(e).__name__}: {e}"
        raise BundleCorrupted(f"bundle {bundle.tag}: bento.yml: field 'apis[{index}].input' "
                              f"is not a valid adapter ({problem})") from None


def as_service(target: Any, **options: Any) -> BentoService:
    """Whatever ``serve`` accepts, as a service: a service (as is), a Bundle, a tag or path
    (loaded), or any other object (wrapped with :func:`service_from_model`)."""
    if isinstance(target, BentoService):
        return target
    if isinstance(target, (str, os.PathLike, Bundle)):
        return load(target)
    return service_from_model(target, **options)


def _fitted_without_names(model: Any) -> bool:
    """A scikit-learn estimator fitted on plain arrays: a DataFrame tells it nothing more."""
    return (type(model).__module__.startswith("sklearn.")
            and hasattr(model, "n_features_in_") and not hasattr(model, "feature_names_in_"))


def _unnamed_frame(argument: Any) -> bool:
    columns = getattr(argument, "columns", None)
    return (columns is not None and type(argument).__name__ == "DataFrame"
            and type(columns).__name__ == "RangeIndex")


def _service_source(cls: type) -> str | None:
    """The source defining a service class: its whole module file when that is a local
    file (so its imports are kept), else the class alone when inspect can find it."""
    if cls is ModelService:
        return None
    module = sys.modules.get(cls.__module__)
    try:
        if module is not None and module.__name__ != "__main__" and _pickling.is_local_module(module):
            return inspect.getsource(module)
        return inspect.getsource(cls)
    except (OSError, TypeError):
        return None


__all__ = ["BentoService", "InferenceAPI", "ModelService", "api", "artifacts_decorator", "env", "pack",
           "load", "service_from_model", "as_service"]
