"""The versions one server holds, which one answers each request, and hot swaps.

A server serves a small set of :class:`ServedVersion` members: a bundle version's service,
its dispatchers (one model thread per API) and the routes that reach them. The
:class:`VersionSet` picks the member of each request:

* **one version** (the usual case): always it. The app's route table holds a
  :class:`Choice` per API route whose ``only`` is that member's route: picking costs one
  attribute read, no lock, no header scan;
* **a split** (``weights``, ``bento-nb serve Iris:v1 Iris:v2 --split 90,10``): by weight,
  at random per request, or — when the request carries ``X-Bento-Route-Key`` — by a hash
  of that key, so one key always reaches the same version (sticky A/B);
* **an OIP path** ``/v2/models/{name}/versions/{v}/...``: version ``v`` itself.

Every answer carries ``X-Bento-Version: <version>`` and every per-request series of
``/metrics`` a ``version`` label (:mod:`.metrics`).

A **hot swap** (:meth:`VersionSet.swap`) replaces one member by another on the event loop
thread, between two requests: a request that picked the old member (counted in its
``in_flight`` from the moment it was routed) finishes on it; the old member's dispatchers
close once nothing is in flight on them (they drain). :class:`Follower` decides *when*:
it watches the store for a newer version of the served name, loads it and warms it on its
own daemon thread, beside the one serving, and hands it to the server only once it loaded
and answered the bundle's example::

    follower = Follower(server, folder=bundle.path.parent, version=bundle.version)
    follower.start()          # polls; on a new version: load, warm, server.swap_in(...)
    follower.status()         # {"swapped": {...}, "refused": {...}} for stats()/the widget
    follower.stop()

Why polling the name folder: a bundle appears by one atomic ``rename`` of its folder into
``repository/<name>/`` (:meth:`bento_nb.store.Store.commit`), which changes that folder's
modification time. One ``stat`` of it every :data:`POLL_SECONDS` is all the watch costs
(no listing while nothing changed), needs no inotify (which misses changes made through
some network and container mounts), works the same for ``bento-nb serve --watch`` in
another process and for every ``--workers`` process (each follows on its own), and a pack
needs to know nothing about servers. A server in the kernel that packed also hears of the
pack at once (:func:`bento_nb.service.add_pack_listener`): that is how a live-object server
(``%bento serve clf``) learns which bundle ``clf`` became.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
import zlib
from bisect import bisect_right
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import BentoNbError, UsageError

_log = logging.getLogger("bento_nb.server")

POLL_SECONDS = 0.5  # how often a follower looks at the name folder
VERSION_HEADER = b"x-bento-version"
ROUTE_KEY_HEADER = b"x-bento-route-key"
LIVE = "live"  # the version of a model object that was never packed
_HASH_SPAN = float(1 << 32)


def version_of(service: Any) -> str:
    """The version a service answers as: its bundle's version, or ``live``."""
    return getattr(service, "version", None) or LIVE


class ServedVersion:
    """One version the server holds: its service, dispatchers and routes.

    ``routes`` (native API path -> the app's route object) and ``oip`` / ``oip_route``
    are filled in by the app (:meth:`bento_nb.server.app.App.attach`). ``in_flight``
    counts the requests routed to it and not yet answered (event loop thread only)."""

    def __init__(self, service: Any, dispatchers: dict, state: Any):
        self.service = service
        self.version = version_of(service)
        self.header = (VERSION_HEADER, self.version.encode("latin-1"))
        self.dispatchers = dispatchers
        self.state = state
        self.in_flight = 0
        self.routes: dict[str, Any] = {}
        self.oip: Any = None
        self.oip_route: Any = None
        self.started_at = time.time()

    # what OpenInference reads of "a state" (service, dispatchers: its own; the rest: the server's)
    @property
    def draining(self) -> bool:
        return self.state.draining

    @property
    def ready(self) -> bool:
        return self.state.ready

    @property
    def config(self) -> Any:
        return self.state.config

    def close(self) -> None:
        for dispatcher in self.dispatchers.values():
            dispatcher.close()

    def __repr__(self) -> str:
        return f"<ServedVersion {self.service.name}:{self.version}>"


class Choice:
    """The entry of one API route in the app's route table: ``only`` is the route of the
    one member when there is one (the hot path reads nothing else), else None and
    :meth:`pick` asks the version set."""

    __slots__ = ("only", "path", "route_label", "versions")

    def __init__(self, path: str, route_label: str, versions: VersionSet):
        self.path = path
        self.route_label = route_label
        self.versions = versions
        self.only: Any = None

    def pick(self, scope: dict) -> Any:
        return self.versions.pick(scope).routes[self.path]


class VersionSet:
    """The members of one server and how requests are shared among them (see the module
    docstring). Changed only on the event loop thread."""

    def __init__(self, members: Sequence[ServedVersion], weights: Sequence[float] | None = None):
        self.members: list[ServedVersion] = list(members)
        self.weights = list(weights) if weights is not None else [1.0] * len(self.members)
        self.choices: dict[str, Choice] = {}
        self._cumulative: list[float] = []
        self._refresh()

    @property
    def primary(self) -> ServedVersion:
        """The first member: what /docs.json, /metadata and the handle describe."""
        return self.members[0]

    @property
    def split(self) -> bool:
        return len(self.members) > 1

    def choice(self, path: str, route_label: str) -> Choice:
        choice = self.choices.get(path)
        if choice is None:
            choice = self.choices[path] = Choice(path, route_label, self)
            self._refresh()
        return choice

    def pick(self, scope: dict) -> ServedVersion:
        """The member for one request: by the hash of its ``X-Bento-Route-Key``, else at
        random, in proportion to the weights."""
        members = self.members
        if len(members) == 1:
            return members[0]
        point = None
        for name, value in scope["headers"]:
            if name == ROUTE_KEY_HEADER:
                point = zlib.crc32(value) / _HASH_SPAN
                break
        if point is None:
            point = random.random()
        return members[min(bisect_right(self._cumulative, point), len(members) - 1)]

    def find(self, version: str) -> ServedVersion | None:
        return next((m for m in self.members if m.version == version), None)

    def swap(self, old: ServedVersion, new: ServedVersion) -> None:
        """Put ``new`` where ``old`` was (its weight too); requests routed from now on reach
        ``new``, those routed before finish on ``old``."""
        index = self.members.index(old)
        members = list(self.members)
        members[index] = new
        self.members = members
        self._refresh()

    def dispatchers(self) -> dict:
        """Every member's dispatchers: keyed by API name for one member, by
        ``api@version`` for several."""
        if not self.split:
            return dict(self.primary.dispatchers)
        return {f"{name}@{m.version}": d for m in self.members
                for name, d in m.dispatchers.items()}

    def _refresh(self) -> None:
        total = float(sum(self.weights))
        running, cumulative = 0.0, []
        for weight in self.weights:
            running += weight
            cumulative.append(running / total)
        self._cumulative = cumulative
        only = self.members[0] if len(self.members) == 1 else None
        for path, choice in self.choices.items():
            choice.only = only.routes.get(path) if only is not None else None


# -- checking what the user asked for ----------------------------------------------------


def parse_split(text: str) -> tuple[float, ...]:
    """``--split 90,10`` as weights; a UsageError (one line) for anything else."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        weights = tuple(float(p) for p in parts)
    except ValueError:
        raise UsageError(f"--split takes numbers separated by commas, one per version "
                         f"(e.g. 90,10), got {text!r}") from None
    return weights


def check_weights(weights: Sequence[Any] | str | None,
                  count: int | None = None) -> tuple[float, ...] | None:
    """``weights`` as floats for ``count`` targets (None: any number), or a UsageError
    saying what is wrong: one per target, none negative or not a number, not all zero. No
    weights for several targets: equal shares."""
    if weights is None:
        if count is not None and count > 1:
            return tuple([1.0] * count)
        return None
    if isinstance(weights, str):
        weights = parse_split(weights)
    try:
        values = tuple(float(w) for w in weights)
    except (TypeError, ValueError):
        raise UsageError(f"the split takes numbers, one per version, got {weights!r}") from None
    if count is not None and len(values) != count:
        raise UsageError(f"the split has {len(values)} weight(s) for {count} version(s): give "
                         "one weight per version, e.g. --split 90,10 for two")
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise UsageError(f"split weights must be non-negative numbers, got "
                         f"{','.join(f'{v:g}' for v in values)}")
    if sum(values) <= 0:
        raise UsageError("split weights add up to 0: at least one version needs a share")
    return values


def check_members(services: Sequence[Any]) -> None:
    """Refuse a split of different bundles or APIs: the routes, /docs.json and the OIP
    model name are those of one bundle, each version must answer them all alike."""
    first = services[0]
    seen: set[str] = set()
    for svc in services:
        version = version_of(svc)
        if version in seen:
            raise UsageError(f"{svc.name}:{version} is given twice: a split needs different "
                             "versions")
        seen.add(version)
        if svc.name != first.name:
            raise UsageError(f"a split serves versions of one bundle: {first.name} and "
                             f"{svc.name} are different bundles (serve them on two ports)")
        problem = api_difference(first, svc)
        if problem:
            raise UsageError(f"{svc.name}:{version} cannot share a server with "
                             f"{first.name}:{version_of(first)}: {problem}")


def api_difference(old: Any, new: Any) -> str | None:
    """Why ``new`` cannot answer the routes of ``old`` (different API names or routes), or
    None."""
    def routes(svc: Any) -> dict:
        return {name: api.route for name, api in svc.apis.items()}

    a, b = routes(old), routes(new)
    if a == b:
        return None
    return (f"its APIs are {', '.join(sorted(b)) or 'none'}, the served ones "
            f"{', '.join(sorted(a))}")


def warm(service: Any) -> str | None:
    """Run the bundle's example (``pack(..., example=...)``) through its API as a request
    would go: parsed by the adapter, one model call. None when it answered (or there is no
    example), else why not."""
    example = getattr(service, "example", None)
    if not example:
        return None
    api = service.apis.get(example.get("api")) or next(iter(service.apis.values()))
    try:
        raw, content_type = api.input.encode_example(example.get("body"))
        api.run_one(api.input.parse(raw, content_type))
    except BentoNbError as e:
        return f"its example fails: {e.message}"
    except BaseException as e:  # noqa: BLE001 - the model's own error: refuse, say why
        return f"its example fails: {type(e).__name__}: {e}"
    return None


# -- following new versions ----------------------------------------------------------------


class Follower:
    """Watches for newer versions of the served bundle and swaps them in (see the module
    docstring). ``server`` (a :class:`~bento_nb.server.runner.ModelServer`) provides
    ``swap_in(service)`` (thread-safe: it hops to the event loop, returns once swapped),
    ``current_service()`` and ``current_version()``. ``folder``: the name's folder in the
    store (None for a live object until :meth:`announce` names one); ``version``: the one
    serving.

    A version that fails to load, has other APIs, or fails its example is refused: the
    old one keeps serving, the reason is logged (``bento_nb.server`` logger, and on
    stderr for the CLI) and kept in :meth:`status`; it is not tried again."""

    def __init__(self, server: Any, folder: str | os.PathLike | None = None,
                 version: str | None = None, poll: float = POLL_SECONDS,
                 report: Callable[[str], None] | None = None):
        self.server = server
        self.folder = Path(folder) if folder is not None else None
        self.version = version  # the newest version seen (served or refused)
        self.poll = poll
        self.report = report
        self.swapped: dict | None = None   # {"version", "at"} of the last swap
        self.refused: dict | None = None   # {"version", "reason", "at"} of the last refusal
        self._mtime: int | None = None
        self._wake = threading.Event()
        self._pending: Any = None  # a bundle announced by a pack in this process
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="bento-nb-follower")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def announce(self, bundle: Any) -> None:
        """A bundle was just packed in this process (a pack listener): look at it now, and
        follow its name from now on."""
        with self._lock:
            self._pending = bundle
        self._wake.set()

    def status(self) -> dict:
        out: dict = {"following": str(self.folder.name) if self.folder else None}
        if self.swapped:
            out["swapped"] = dict(self.swapped)
        if self.refused:
            out["refused"] = dict(self.refused)
        return out

    # -- the thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._look()
            except Exception:  # noqa: BLE001 - a bug here must not end the watch
                _log.exception("watching for new versions failed")

    def _look(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            self.folder = Path(pending.path).parent
            self._mtime = None
            if pending.version != self.version:
                self._consider(pending)
            return
        if self.folder is None:
            return
        try:
            mtime = os.stat(self.folder).st_mtime_ns
        except OSError:  # every version deleted (for now): keep serving the loaded one
            return
        if mtime == self._mtime:
            return
        self._mtime = mtime
        newest = self._newest()
        if newest is not None and (self.version is None or newest > self.version):
            from ..store import Bundle
            from ..store.manifest import read_manifest

            path = self.folder / newest
            try:
                bundle = Bundle(self.folder.name, newest, path, read_manifest(path))
            except BentoNbError as e:
                self.version = newest
                return self._refuse(newest, e.message)
            self._consider(bundle)

    def _newest(self) -> str | None:
        from ..store.tags import NAME_RE

        try:
            names = os.listdir(self.folder)
        except OSError:
            return None
        versions = [v for v in names if not v.startswith(".") and NAME_RE.match(v)
                    and (self.folder / v).is_dir()]
        return max(versions) if versions else None

    def _consider(self, bundle: Any) -> None:
        """Load ``bundle`` beside the served version, check and warm it, then swap."""
        from ..service import load

        self.version = bundle.version
        try:
            service = load(bundle)
        except BentoNbError as e:
            return self._refuse(bundle.version, f"it does not load: {e.message}")
        except Exception as e:  # noqa: BLE001 - unpickling user code: anything can happen
            return self._refuse(bundle.version, f"it does not load: {type(e).__name__}: {e}")
        problem = api_difference(self.server.current_service(), service)
        if problem is None:
            problem = warm(service)
        if problem is not None:
            return self._refuse(bundle.version, problem)
        try:
            self.server.swap_in(service)
        except BentoNbError as e:  # the server is stopping
            return self._refuse(bundle.version, e.message)
        self.swapped = {"version": bundle.version, "tag": bundle.tag,
                        "at": time.strftime("%H:%M:%S")}
        self._say(f"now serving {bundle.tag} (swapped at {self.swapped['at']})")

    def _refuse(self, version: str, reason: str) -> None:
        self.refused = {"version": version, "reason": reason, "at": time.strftime("%H:%M:%S")}
        self._say(f"not swapping in version {version}: {reason}; still serving "
                  f"{self.server.current_version()}", warning=True)

    def _say(self, message: str, warning: bool = False) -> None:
        (_log.warning if warning else _log.info)("%s", message)
        if self.report is not None:
            self.report(message)
