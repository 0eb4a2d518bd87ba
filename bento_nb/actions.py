"""What the front ends do, decided once.

The CLI (:mod:`bento_nb.cli`), ``%bento`` (:mod:`bento_nb.notebook.magics`), the widgets and
the Jupyter handlers parse their input and present the outcome; *what* a word names and
*how* it is served, predicted with or containerized is answered here, the same for all::

    target = resolve("Iris")                       # the newest Iris bundle
    target = resolve("clf", variables=user_ns)     # a notebook variable (model or tag)
    handle = serve(target, ServerConfig(port=0))
    predict(target, [[5.1, 3.5, 1.4, 0.2]])        # in-process: [0]
    containerize(target, ContainerizeOptions(image="iris:1"), progress=print)

"Tag or path?" has one answer, :func:`bento_nb.store.looks_like_path`: ``Iris`` is the
bundle named Iris even with a folder ``./Iris`` beside it; ``./Iris`` is the folder.
"""

from __future__ import annotations

import os
import types
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .containerize import ContainerizeOptions
from .errors import BentoNbError, BundleNotFound, InvalidName, UsageError
from .server.config import ServerConfig
from .store import Bundle, Tag, find_bundle, looks_like_path


@dataclass
class Target:
    """What a front end acts on: a saved bundle, or a live object (a service or a model
    with ``predict``). ``key`` identifies its server, so serving the same thing again
    replaces that server; ``label`` is how to name it to a person."""

    bundle: Bundle | None = None
    obj: Any = None
    key: str = ""
    label: str = ""
    note: str = ""  # something the user should be told about the choice (shown as is)
    # one version named (``Name:version``, a folder): its server does not follow new ones
    pinned: bool = False
    # a split (:func:`combine`): every version served, ``bundle`` being the first
    versions: list | None = None

    @property
    def tag(self) -> str | None:
        return self.bundle.tag if self.bundle is not None else None

    def servable(self) -> Any:
        """What :func:`bento_nb.server.serve` takes for this target."""
        if self.versions is not None:
            return list(self.versions)
        return self.bundle if self.bundle is not None else self.obj

    def service(self, cache: dict | None = None) -> Any:
        """The service, loaded (once per bundle folder when ``cache`` is given) or wrapped."""
        from .service import as_service, load

        if self.bundle is None:
            return as_service(self.obj, name=self.label or "Model")
        if cache is None:
            return load(self.bundle)
        key = str(self.bundle.path)
        if key not in cache:
            cache[key] = load(self.bundle)
        return cache[key]


def resolve(target: Any = None, variables: Mapping[str, Any] | None = None,
            packed_tag: Callable[[str, Any], str | None] | None = None,
            last_packed: str | None = None) -> Target:
    """What ``target`` names.

    ``target``: a :class:`Target`, a :class:`Bundle`, a tag, a bundle folder, a service or a
    model object; None means ``last_packed``. With ``variables`` (a notebook's namespace) a
    word that is a variable there means its value — except classes and modules, so
    ``IrisClassifier`` stays the bundle even where the class is defined — and
    ``packed_tag(name, value)`` says when that variable still holds an object packed as a
    bundle (then the bundle is meant, with the options it was packed with)."""
    if isinstance(target, Target):
        return target
    if target is None or (isinstance(target, str) and not target.strip()):
        if last_packed is None:
            raise UsageError("nothing packed yet: pack a model first, or give a tag or a variable")
        return _last_packed(last_packed)
    if isinstance(target, Bundle):
        return _bundle_target(target, pinned=False)
    if isinstance(target, (str, os.PathLike)):
        text = os.fspath(target)
        if variables is not None and text.isidentifier() and text in variables:
            value = variables[text]
            if not isinstance(value, (type, types.ModuleType)):
                return _variable_target(text, value, packed_tag)
        return _word_target(text, in_notebook=variables is not None)
    return Target(obj=target, key=f"object:{id(target)}", label=_name_for(target))


def _last_packed(tag: str) -> Target:
    """The last packed bundle; once it is deleted, the newest remaining version of its
    name, saying so."""
    try:
        return _bundle_target(find_bundle(tag), pinned=False)
    except BundleNotFound:
        name = Tag.parse(tag).name
        try:
            target = _bundle_target(find_bundle(name), pinned=False)
        except BundleNotFound:
            raise BundleNotFound(f"the last packed bundle {tag} was deleted and no other "
                                 f"version of {name} is left; pack it again",
                                 see="list") from None
        target.note = f"{tag} was deleted: using {target.tag}, the newest {name} left"
        return target


def _bundle_target(bundle: Bundle, pinned: bool) -> Target:
    # "Iris" / "Iris:latest": the server of that name moves on to newer versions;
    # "Iris:<version>" is its own server.
    return Target(bundle=bundle, key=f"bundle:{bundle.tag if pinned else bundle.name}",
                  label=bundle.tag, pinned=pinned)


def combine(targets: list[Target]) -> Target:
    """Several saved versions served by one server, sharing its requests (a split:
    ``%bento serve Iris:v1 Iris:v2 --split 90,10``)."""
    unsaved = [t.label for t in targets if t.bundle is None]
    if unsaved:
        raise UsageError(f"a split serves saved bundle versions; {', '.join(unsaved)} "
                         "is not packed (pack it first)")
    bundles = [t.bundle for t in targets]
    tags = [b.tag for b in bundles]
    return Target(bundle=bundles[0], key="split:" + ",".join(tags), label=" + ".join(tags),
                  pinned=True, versions=bundles)


def _word_target(text: str, in_notebook: bool) -> Target:
    if looks_like_path(text):
        bundle = find_bundle(text)
        return Target(bundle=bundle, key=f"path:{bundle.path}", label=bundle.tag,
                      pinned=True)
    try:
        bundle = find_bundle(text)
    except BundleNotFound:
        if in_notebook:
            raise BundleNotFound(f"{text!r} is neither a variable of this notebook nor a "
                                 "bundle in the store (see %bento list)") from None
        raise
    return _bundle_target(bundle, pinned=Tag.parse(text).version is not None)


def _variable_target(name: str, value: Any,
                     packed_tag: Callable[[str, Any], str | None] | None) -> Target:
    from .service import BentoService

    tag = packed_tag(name, value) if packed_tag is not None else None
    if tag is not None:
        try:
            return _bundle_target(find_bundle(tag), pinned=False)
        except BentoNbError:  # deleted since: the live object it is
            pass
    if isinstance(value, Bundle):
        return _bundle_target(value, pinned=False)
    if isinstance(value, (str, os.PathLike)):
        try:
            return _word_target(os.fspath(value), in_notebook=True)
        except InvalidName:
            raise UsageError(f"variable {name!r} holds the text {os.fspath(value)[:60]!r}, "
                             "which is neither a model nor a tag or bundle folder") from None
    if isinstance(value, BentoService):
        return Target(obj=value, key=f"var:{name}", label=name)
    if not (callable(value) or callable(getattr(value, "predict", None))):
        raise UsageError(f"variable {name!r} holds a {type(value).__name__!r} object, which is "
                         "neither a model (it has no predict method) nor a tag or bundle folder")
    return Target(obj=value, key=f"var:{name}", label=name_from_variable(name))


def _name_for(obj: Any) -> str:
    name = getattr(obj, "name", None)
    return name if isinstance(name, str) and name else "Model"


def name_from_variable(var: str) -> str:
    """A bundle/service name from a variable name (``_clf`` -> ``clf``)."""
    return var.lstrip("_.-")[:63] or "Model"


# -- acting --------------------------------------------------------------------------------


def serve(target: Target, config: ServerConfig) -> Any:
    """Serve ``target`` in a background thread of this process; returns the handle.
    Unless ``config.follow`` says otherwise, the server follows new versions when the
    target is not pinned (a name, the last packed bundle, a live object: see
    :mod:`bento_nb.server.versions`)."""
    import dataclasses

    from .server import serve as start

    if config.follow is None:
        config = dataclasses.replace(config, follow=not target.pinned)
    elif config.follow and target.versions is not None:
        raise UsageError("a split serves the versions it was given: it cannot also follow "
                         "new versions (--watch)")
    elif config.follow and target.pinned:
        raise UsageError(f"{target.label} is one version (pinned): --watch follows a name; "
                         "give it without its version")
    servable = target.servable()
    if target.bundle is None and not _is_service(servable):
        servable = target.service()  # named after the variable it came from
        if config.follow:
            return start(servable, config=config, follow_objects=(target.obj,))
    return start(servable, config=config)


def _is_service(obj: Any) -> bool:
    from .service import BentoService

    return isinstance(obj, BentoService)


def pick_api(name: str | None, names: list[str], what: str) -> str:
    """The API a request means: ``name`` if it exists, else ``predict``, else the first."""
    if name is not None:
        if name not in names:
            raise UsageError(f"{what} has no API {name!r}; it has {names}")
        return name
    if not names:
        raise UsageError(f"{what} has no API")
    return "predict" if "predict" in names else names[0]


def predict(target: Target, data: Any, api: str | None = None,
            cache: dict | None = None) -> Any:
    """Run an API of ``target`` in-process on ``data``; the JSON-able result."""
    from .adapters import to_jsonable

    svc = target.service(cache)
    api_name = pick_api(api, list(svc.apis), svc.tag or svc.name)
    return to_jsonable(svc.apis[api_name](data))


def containerize(target: Target, options: ContainerizeOptions,
                 progress: Callable[[str], None] | None = None) -> Any:
    """Build the image of ``target``'s bundle (see :func:`bento_nb.containerize.build`)."""
    from .containerize import build

    return build(_saved(target), image=options.image, base_image=options.base_image,
                 progress=progress)


def write_build_context(target: Target, options: ContainerizeOptions) -> Any:
    """Write the build context of ``target``'s bundle to ``options.context_only``; see
    :func:`bento_nb.containerize.prepare_context`."""
    from .containerize import prepare_context

    return prepare_context(_saved(target), options)


def _saved(target: Target) -> Bundle:
    if target.bundle is None:
        raise UsageError(f"{target.label or 'this model'} is not packed: containerize needs "
                         "a saved bundle (pack it first)")
    return target.bundle
