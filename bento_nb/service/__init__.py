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
import shutil
import stat
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .. import _pickling, provenance as _provenance, requirements, templates
from .._version import __version__
from ..adapters import (DataframeInput, DefaultOutput, InputAdapter, OutputAdapter, Payload,
                        adapter_from_config, output_from_config, split_results)
from ..adapters.signature import Signature
from ..errors import BentoNbError, BundleCorrupted, BundleNotFound, ModelError, PackError
from ..store import Bundle, Store, Tag, find_bundle, looks_like_path, validate_name
from .artifacts import Artifact, ArtifactCollection, PickleArtifact

# Callbacks told of every bundle this process packs: (the object packed, its Bundle). A
# server that follows new versions subscribes (bento_nb.server.versions); this layer knows
# nothing of servers.
_pack_listeners: list[Callable[[Any, Bundle], None]] = []


def add_pack_listener(listener: Callable[[Any, Bundle], None]) -> Callable[[], None]:
    """Call ``listener(obj, bundle)`` after each pack in this process (``obj``: the model
    or service packed); returns the function that unsubscribes it."""
    _pack_listeners.append(listener)

    def remove() -> None:
        if listener in _pack_listeners:
            _pack_listeners.remove(listener)
    return remove


def _announce(obj: Any, bundle: Bundle) -> None:
    import logging

    for listener in _pack_listeners[:]:  # a copy: a listener may unsubscribe
        try:
            listener(obj, bundle)
        except Exception:  # a listener's bug must not fail the pack
            logging.getLogger("bento_nb").exception("a pack listener failed")

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
    output: OutputAdapter | None = None


@dataclass
class Env:
    """What ``@env`` records on a class."""

    infer_pip_packages: bool = True
    pip_packages: list[str] = field(default_factory=list)
    docker_base_image: str | None = None  # the Dockerfile's FROM
    setup_sh: str | None = None  # a script (or its path) run as a Dockerfile RUN step


def api(input: InputAdapter | None = None, batch: bool = False, route: str | None = None,
        name: str | None = None, output: OutputAdapter | None = None,
        **_ignored: Any) -> Callable:
    """Mark a service method as an inference API served at ``POST /<route>``; ``output``
    (``JsonOutput()``, ``DataframeOutput(output_orient=...)``; default ``DefaultOutput()``)
    writes each request's result. ``input`` may also be an adapter class, as BentoML 0.7
    wrote it (``@api(DataframeHandler)``)."""
    if isinstance(input, type) and issubclass(input, InputAdapter):
        input = input()
    if input is not None and not isinstance(input, InputAdapter):
        raise TypeError(f"@api(input=...) expects an adapter such as DataframeInput(), got {input!r}")
    if output is not None and not isinstance(output, OutputAdapter):
        raise TypeError(f"@api(output=...) expects an output adapter such as JsonOutput(), "
                        f"got {output!r}")

    def decorate(func: Callable) -> Callable:
        api_name = validate_name(name or func.__name__, "API name")
        func._bento_api = ApiSpec(input or DataframeInput(), bool(batch),
                                  (route or api_name).strip("/"), api_name,
                                  inspect.getdoc(func) or "", output)
        return func

    return decorate


def env(infer_pip_packages: bool | None = None, pip_packages: Iterable[str] | None = None,
        requirements_txt_file: str | None = None, pip_dependencies: Iterable[str] | None = None,
        auto_pip_dependencies: bool | None = None, docker_base_image: str | None = None,
        setup_sh: str | None = None, **unsupported: Any) -> Callable:
    """Declare the service's environment, with BentoML 0.13's ``@env`` options: the
    Python requirements (inferred from the imports unless ``infer_pip_packages=False``;
    ``pip_packages`` and a ``requirements_txt_file``'s pins win over inferred pins of the
    same distribution; ``pip_dependencies`` / ``auto_pip_dependencies`` are their old
    names), ``docker_base_image`` (the Dockerfile's ``FROM``) and ``setup_sh`` (a shell
    script, or the path of one, run as a ``RUN`` step of the Dockerfile before the
    requirements are installed). Any other 0.x option (conda, pip index options,
    zipimport archives) is refused with a PackError naming it, never ignored."""
    from .environment import (check_base_image, check_unsupported, read_requirements_txt,
                              read_setup_sh)

    check_unsupported(unsupported)
    if infer_pip_packages is None:
        infer_pip_packages = True if auto_pip_dependencies is None else auto_pip_dependencies
    packages = [*(pip_packages or []), *(pip_dependencies or [])]
    if isinstance(pip_packages, str) or isinstance(pip_dependencies, str):
        raise PackError("@env(pip_packages=...) expects a list of requirements, e.g. ['numpy']")
    if requirements_txt_file:
        packages += read_requirements_txt(requirements_txt_file)
    script = read_setup_sh(setup_sh) if setup_sh else None
    if docker_base_image is not None:
        check_base_image(docker_base_image)

    def decorate(cls: type) -> type:
        cls._bento_env = Env(bool(infer_pip_packages), packages, docker_base_image, script)
        return cls

    return decorate


def web_static_content(path: str | os.PathLike) -> Callable:
    """``@web_static_content("./static")`` (BentoML 0.13): the files of a folder (an
    ``index.html`` and what it loads), copied into the bundle (each listed in the manifest
    with its sha256) and served by the prediction server under ``/`` (``/`` itself is the
    folder's ``index.html``; Swagger UI moves to ``/docs``). A relative path is from the
    current folder (the notebook's) when the class is defined; a missing folder is a
    PackError then, a symbolic link or a special file in it one when the service is saved."""
    folder = Path(path).expanduser()
    if not folder.is_absolute():
        folder = Path.cwd() / folder
    if not folder.is_dir() or folder.is_symlink():
        raise PackError(f"web_static_content: {str(path)!r} is not a folder (from "
                        f"{Path.cwd()}); give the folder of your index.html")

    def decorate(cls: type) -> type:
        cls._bento_web_static = str(folder)
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
                 route: str, doc: str = "", output: OutputAdapter | None = None):
        self.name = name
        self.func = func
        self.input = adapter
        self.output = output or DefaultOutput()
        self.batch = batch
        self.route = route
        self.doc = doc
        # Set by a service whose function takes unnamed rows as a numpy array as well as
        # a DataFrame (a packed model fitted on arrays): then such a batch is passed as
        # the array, never built into a DataFrame (see DataframeInput.make_array).
        self.takes_array: Callable[[], bool] | None = None

    @property
    def input(self) -> InputAdapter:
        return self._input

    @input.setter
    def input(self, adapter: InputAdapter) -> None:
        self._input = adapter
        # Table-like inputs (and tensors) carry rows; other adapters are one item per request.
        self._per_row = isinstance(adapter, DataframeInput) or getattr(
            adapter, "rows_per_request", False)
        # MultiFileInput / MultiImageInput: one function argument per input name.
        self._spread = getattr(adapter, "spreads_arguments", False)

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
        return self.output.prepare(self._call(self.input.make_single(payload)))

    def run_batch(self, payloads: Sequence[Payload]) -> list[Any]:
        """One result per payload, in order, each written by the API's output adapter.
        Raises ModelError if the function raises or returns the wrong number of results
        (the caller may then split the batch). Payloads of different ``columns`` (column
        names, an image's or a tensor's shape) never share a call."""
        columns = payloads[0].columns
        if any(p.columns != columns for p in payloads):
            return self._run_by_columns(payloads)
        argument = None
        if self.takes_array is not None and self.takes_array():
            make_array = getattr(self.input, "make_array", None)
            argument = make_array(payloads) if make_array is not None else None
        if argument is None:
            argument = self.input.make_batch(payloads)
        result = self._call(argument)
        prepare = self.output.prepare
        if self._per_row:
            return [prepare(r) for r in split_results(result, [p.rows for p in payloads])]
        return [prepare(r[0]) for r in split_results(result, [1] * len(payloads))]

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
            if self._spread:
                return self.func(*argument)
            return self.func(argument)
        except BentoNbError:
            raise
        except Exception as e:  # the user's code failed: report it, keep serving
            raise ModelError(f"{type(e).__name__}: {e}") from e

    def describe(self) -> dict:
        """What the manifest and ``/metadata`` say of this API; ``signature``: the columns
        it takes (see :mod:`bento_nb.adapters.signature`), when they are known."""
        out = {"name": self.name, "route": f"/{self.route}", "input": self.input.config(),
               "output": self.output.config(), "batch": self.batch, "doc": self.doc}
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
    _bento_web_static: str | None = None  # @web_static_content: the folder's path

    def __init__(self) -> None:
        self.artifacts = ArtifactCollection(copy.deepcopy(type(self)._bento_artifacts))
        self._apis = self._collect_apis()
        self.bundle: Bundle | None = None
        self.labels: dict[str, str] = {}
        self._artifact_metadata: dict[str, dict] = {}  # svc.pack(..., metadata={...})
        self._dev_server = None  # start_dev_server(): the server's handle
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

    def web_static_folder(self) -> Path | None:
        """The folder served under ``/`` (``@web_static_content``): the bundle's copy for
        a saved or loaded service, else the folder the decorator named; None without one."""
        if self.bundle is not None:
            record = self.bundle.manifest.get("web_static_content")
            return self.bundle.path / record if record else None
        folder = type(self)._bento_web_static
        return Path(folder) if folder else None

    @property
    def artifact_metadata(self) -> dict[str, dict]:
        """``{artifact name: metadata}`` given to ``pack(..., metadata=...)``."""
        return dict(self._artifact_metadata)

    def _collect_apis(self) -> dict[str, InferenceAPI]:
        found: dict[str, InferenceAPI] = {}
        for attr in dir(type(self)):
            func = getattr(type(self), attr, None)
            spec = getattr(func, "_bento_api", None)
            if isinstance(spec, ApiSpec):
                found[spec.name] = InferenceAPI(spec.name, getattr(self, attr),
                                                copy.deepcopy(spec.input), spec.batch,
                                                spec.route or spec.name, spec.doc,
                                                copy.deepcopy(spec.output))
        return found

    # packing

    def pack(self, name: str, obj: Any, metadata: dict | None = None) -> "BentoService":
        """Put a model object into the artifact ``name``; returns self for chaining.
        ``metadata`` (BentoML 0.13: e.g. ``{"accuracy": 0.97}``, JSON-able) is saved with
        the artifact in the manifest and read back as ``svc.artifact_metadata[name]``."""
        self.artifacts.pack(name, obj)
        if metadata is not None:
            self._artifact_metadata[name] = _checked_metadata(name, metadata)
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
        _announce(self, bundle)
        return bundle

    def _checked_example(self, value: Any) -> dict:
        """``value`` as a request body of the first API, sent through that API as the server
        would (so the documented example is known to work). For a table API the example's
        columns and types become the signature of every API taking the same input, and the
        example is checked against it as any request will be."""
        api = self._apis.get("predict") or next(iter(self._apis.values()))
        table = isinstance(api.input, DataframeInput) and api.input.typ == "frame"
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
        for record in records:
            if record["name"] in self._artifact_metadata:
                record["metadata"] = self._artifact_metadata[record["name"]]
        env_record = _write_env(cls._bento_env, folder)
        static = _write_web_static(cls._bento_web_static, folder)

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
        if env_record:
            manifest["env"] = env_record
        if static is not None:
            manifest["web_static_content"] = static
        if origin is not None:
            manifest["provenance"] = origin
        (folder / "README.md").write_text(templates.render_readme(manifest), encoding="utf-8")
        (folder / "Dockerfile").write_text(templates.render_dockerfile(manifest), encoding="utf-8")
        return manifest

    # BentoML 0.x

    def save_to_dir(self, path: str | os.PathLike, version: str | None = None) -> str:
        """Save as a bundle in folder ``path`` (made if missing; files of the same names
        are replaced), outside the store; ``bento_nb.load_from_dir(path)`` loads it."""
        from .compat import save_to_dir

        return save_to_dir(self, path, version)

    def start_dev_server(self, port: int | None = None, enable_ngrok: bool = False,
                         debug: bool = False, **options: Any) -> str:
        """Serve this service as it is now (without saving it) on ``127.0.0.1:port``
        (default 5000) from a thread of this process (the kernel's, in a notebook): the
        server of ``bento_nb.serve``, listed by ``%bento servers``. Returns its URL once it
        accepts connections; ``stop_dev_server()`` stops it. ``options``: the server
        options of ``bento_nb.serve`` (``max_batch_size=``, ...)."""
        from .compat import start_dev_server

        return start_dev_server(self, port, enable_ngrok, debug, **options)

    def stop_dev_server(self) -> None:
        """Stop the server ``start_dev_server`` started (nothing if there is none)."""
        from .compat import stop_dev_server

        stop_dev_server(self)

    @classmethod
    def _restore(cls, definition: dict) -> "BentoService":
        return cls()

    def _after_load(self) -> None:
        """Called once a loaded service has its artifacts."""

    def __repr__(self) -> str:
        return f"<{self.name} {self.tag or '(not saved)'} apis={list(self._apis)}>"


class ModelService(BentoService):
    """A service around one model object, made by :func:`pack` / :func:`serve`: each API
    name calls the model's method of that name (``predict`` calls a plain callable).

    ``framework`` (told by :func:`bento_nb.frameworks.detect.framework_of` from the
    model's type) picks the artifact that saves the model in its own format and the input
    its APIs take by default; None pickles it as is. ``device`` (torch, tensorflow, keras):
    where the model runs, "cpu", "cuda", "cuda:1"; default CUDA when available, else CPU.
    """

    _bento_artifacts = [PickleArtifact("model")]

    def __init__(self, name: str = "Model", apis: Sequence[str] = ("predict",),
                 input: str | InputAdapter | dict | None = "dataframe", batch: bool = True,
                 sklearn: bool = False, framework: str | None = None, device: str | None = None):
        from ..frameworks.detect import FRAMEWORKS

        self._name = validate_name(name)
        self._api_names = [validate_name(a, "API name") for a in apis]
        if not self._api_names:
            raise PackError("at least one API name is needed, e.g. apis=['predict']")
        if sklearn and framework is None:  # bundles of older versions
            framework = "sklearn"
        if framework is not None and framework not in FRAMEWORKS:
            raise PackError(f"unknown framework {framework!r}: use one of {sorted(FRAMEWORKS)}")
        self._framework = framework
        if input is None:
            input = FRAMEWORKS[framework].input if framework else "dataframe"
        self._input = input if isinstance(input, (InputAdapter, dict)) else str(input)
        self._batch = bool(batch)
        self._device = None if device is None else str(device)
        self._input_schema: dict | None = None
        super().__init__()
        if framework is not None:
            self.artifacts = ArtifactCollection([FRAMEWORKS[framework].artifact_class()("model")])

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
            apis[api_name].takes_array = self._model_takes_array
        return apis

    def _model_takes_array(self) -> bool:
        """The packed model is a scikit-learn estimator fitted on arrays: unnamed rows
        reach it as the array (a DataFrame would only be turned back into one)."""
        return _fitted_without_names(self.artifacts._objects.get("model"))

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
            if not _serves(obj, api_name):
                # a framework's wrapper may add the method (a Booster's or a module's predict)
                wrapped = self.artifacts.specs[name].check(obj) if self._framework else obj
                if not _serves(wrapped, api_name):
                    raise PackError(f"{type(obj).__name__} has no method {api_name!r} to serve")
        super().pack(name, obj)
        self._place()
        return self

    def _place(self) -> None:
        """Move a torch / tensorflow model onto its device (see ``device``)."""
        from ..frameworks.detect import place_on_device

        if self._framework is None:
            if self._device is not None:
                raise PackError(f"device= applies to torch and tensorflow models, not to a "
                                f"pickled {type(self.artifacts._objects.get('model')).__name__}")
        elif "model" in self.artifacts._objects:
            place_on_device(self.artifacts._objects["model"], self._framework, self._device)

    def _after_load(self) -> None:
        self._place()

    def _definition(self) -> dict:
        return {"name": self._name, "apis": self._api_names,
                "input": self._input if isinstance(self._input, (str, dict)) else self._input.config(),
                "batch": self._batch,
                "sklearn": self._framework in ("sklearn", "lightgbm_sklearn"),
                "framework": self._framework, "device": self._device}

    @classmethod
    def _restore(cls, definition: dict) -> "ModelService":
        return cls(definition["name"], definition["apis"], definition["input"], definition["batch"],
                   definition.get("sklearn", False), definition.get("framework"),
                   definition.get("device"))

    def _write_bundle(self, folder: Path, version: str, **options: Any) -> dict:
        manifest = super()._write_bundle(folder, version, **options)
        manifest["model"] = _model_record(self, manifest)
        return manifest


def _serves(obj: Any, api_name: str) -> bool:
    return callable(getattr(obj, api_name, None)) or (api_name == "predict" and callable(obj))


def _model_record(svc: ModelService, manifest: dict) -> dict:
    """What the manifest records of a packed model: its framework and version, the file
    format, and its input schema (from ``example=`` when given, else from the model)."""
    from ..frameworks.detect import FRAMEWORKS, input_schema

    framework = FRAMEWORKS.get(svc._framework) if svc._framework else None
    record = next((r for r in manifest.get("artifacts") or [] if r.get("name") == "model"), {})
    return {"framework": framework.name if framework else "python",
            "framework_version": framework.version() if framework else platform.python_version(),
            "format": record.get("format") or ("cloudpickle" if record.get("file") else None),
            "input": svc._input_schema or input_schema(svc.artifacts.model)}


# -- module-level entry points ------------------------------------------------------------


def pack(model: Any, name: str = "Model", apis: Sequence[str] | str | None = None,
         input: str | InputAdapter | None = None, batch: bool = True,
         labels: dict | None = None, requirements: Iterable[str] | None = None,
         store: Store | None = None, example: Any = None, device: str | None = None,
         provenance: bool = True) -> Bundle:
    """Save a model as a new bundle version; returns the :class:`~bento_nb.store.Bundle`
    (``.tag``, ``.path``). A model of a known framework (xgboost, lightgbm, catboost,
    scikit-learn, torch, keras, tensorflow, onnx, transformers: told from its type) is
    saved in its own format and its APIs take the input that framework wants; any other
    cloudpickle-able object (with the named methods, or a callable) is pickled. ``apis``
    defaults to ``predict``, plus ``predict_proba`` when the model has it. ``example``
    (e.g. ``X[:2]``) is checked against the first API, documented as its request example
    and signature, and gives the input schema the manifest records; ``provenance=False``:
    record no notebook, cells, git state or environment hash (see
    :meth:`BentoService.save_bundle`). ``device``: see :class:`ModelService`."""
    svc = service_from_model(model, name=name, apis=apis, input=input, batch=batch,
                             device=device)
    if example is not None:
        from ..frameworks.detect import input_schema

        svc._input_schema = input_schema(svc.artifacts.model, example)
    bundle = svc.save_bundle(labels=labels, store=store,
                             extra_requirements=requirements or (), example=example,
                             provenance=provenance)
    _announce(model, bundle)
    return bundle


def service_from_model(model: Any, name: str = "Model", apis: Sequence[str] | str | None = None,
                       input: str | InputAdapter | None = None, batch: bool = True,
                       device: str | None = None) -> ModelService:
    """Wrap a live model object in a service without saving it (see :func:`pack`)."""
    from ..frameworks.detect import framework_of

    framework = framework_of(model)
    if isinstance(apis, str):
        apis = [a.strip() for a in apis.split(",") if a.strip()]
    elif apis is None:
        apis = ["predict"] + (["predict_proba"] if callable(getattr(model, "predict_proba", None))
                              else [])
    svc = ModelService(name, apis, input, batch, framework=framework and framework.key,
                       device=device)
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


def load_from_dir(path: str | os.PathLike) -> BentoService:
    """``bento_nb.load_from_dir(path)`` (BentoML 0.x): the service saved in bundle folder
    ``path`` (by ``svc.save_to_dir(path)``, or a store version's folder)."""
    folder = Path(path)
    if not folder.is_dir():
        raise BundleNotFound(f"{os.fspath(path)} is not a bundle folder")
    return load(folder.resolve())


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
            inference_api.output = _output_of(bundle, index, described.get("output"))
            for _, obj in svc.artifacts.items():  # what an older version did not record
                inference_api.input.configure(obj)
            signature = described.get("signature")
            if (signature and signature.get("from") == "example"
                    and isinstance(inference_api.input, DataframeInput)):
                inference_api.input.signature = Signature.from_dict(signature)
    svc.bundle = bundle
    svc.labels = bundle.labels
    svc._artifact_metadata = {r["name"]: r["metadata"] for r in manifest.get("artifacts") or []
                              if isinstance(r.get("metadata"), dict)}
    svc.example = manifest.get("example")
    svc._after_load()
    return svc


def _adapter_of(bundle: Bundle, index: int, config: dict | str) -> InputAdapter:
    """The input adapter a manifest describes; an unknown kind or option is BundleCorrupted
    naming the field (the structure was checked by :func:`~bento_nb.store.check_manifest`)."""
    return _from_manifest(bundle, f"apis[{index}].input", "adapter", adapter_from_config,
                          config)


def _output_of(bundle: Bundle, index: int, config: Any) -> OutputAdapter:
    return _from_manifest(bundle, f"apis[{index}].output", "output adapter",
                          output_from_config, config)


def _from_manifest(bundle: Bundle, field: str, what: str, build: Any, config: Any) -> Any:
    """``build(config)``; what it refuses is BundleCorrupted naming ``field``."""
    try:
        return build(config)
    except (BentoNbError, TypeError, ValueError) as e:
        problem = e.message if isinstance(e, BentoNbError) else f"{type(e).__name__}: {e}"
        raise BundleCorrupted(f"bundle {bundle.tag}: bento.yml: field '{field}' "
                              f"is not a valid {what} ({problem})") from None


def as_service(target: Any, **options: Any) -> BentoService:
    """Whatever ``serve`` accepts, as a service: a service (as is), a Bundle, a tag or path
    (loaded), or any other object (wrapped with :func:`service_from_model`)."""
    if isinstance(target, BentoService):
        return target
    if isinstance(target, (str, os.PathLike, Bundle)):
        return load(target)
    return service_from_model(target, **options)


def _checked_metadata(name: str, metadata: Any) -> dict:
    """``pack(..., metadata=...)`` as a JSON-able mapping (it is stored in the manifest)."""
    import json

    if not isinstance(metadata, dict):
        raise PackError(f"pack({name!r}, ..., metadata=...) expects a dict, got "
                        f"{type(metadata).__name__}")
    try:
        return json.loads(json.dumps(metadata))
    except (TypeError, ValueError) as e:
        raise PackError(f"pack({name!r}, ..., metadata=...) must be JSON-able: {e}") from None


_WEB_STATIC = "web_static_content"  # its folder in the bundle, as BentoML 0.x named it


def _write_web_static(source: str | None, folder: Path) -> str | None:
    """Copy the ``@web_static_content`` folder into the bundle; its name there, or None.
    Plain files and folders only: a link (which could lead out of the folder) or a
    special file is a PackError naming it."""
    if source is None:
        return None
    root = Path(source)
    if not root.is_dir() or root.is_symlink():
        raise PackError(f"web_static_content: the folder {source} is gone (or became a link)")
    target = folder / _WEB_STATIC
    target.mkdir()
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        for name in [*dirnames, *filenames]:
            info = os.lstat(here / name)
            rel = (here / name).relative_to(root).as_posix()
            if stat.S_ISLNK(info.st_mode):
                raise PackError(f"web_static_content: {rel} is a symbolic link; bundles hold "
                                "plain files: copy the file into the folder")
            if stat.S_ISDIR(info.st_mode):
                (target / rel).mkdir()
            elif stat.S_ISREG(info.st_mode):
                shutil.copyfile(here / name, target / rel, follow_symlinks=False)
            else:
                raise PackError(f"web_static_content: {rel} is not a plain file")
    return _WEB_STATIC


def _write_env(environment: Env, folder: Path) -> dict:
    """What ``@env`` asks of the image, for the Dockerfile: ``docker_base_image`` and a
    ``setup_sh`` script (written as ``setup.sh`` in the bundle)."""
    record: dict = {}
    if environment.docker_base_image:
        record["docker_base_image"] = environment.docker_base_image
    if environment.setup_sh:
        (folder / "setup.sh").write_text(environment.setup_sh, encoding="utf-8")
        record["setup_sh"] = "setup.sh"
    return record


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
           "web_static_content", "load_from_dir",
           "load", "service_from_model", "as_service"]
