"""Running a server: sockets, its own event loop in a thread, graceful stop.

:func:`serve` is the library entry point (``bento_nb.serve``); it returns a
:class:`ServerHandle` once the server accepts connections::

    handle = serve("IrisClassifier:latest", port=0)
    requests.post(handle.url + "/predict", json=[[5.1, 3.5, 1.4, 0.2]]).json()   # [0]
    handle.stats()["requests"]
    handle.stop()                     # drains in-flight requests, frees the port at once

:class:`ModelServer` is the part shared with the CLI, which runs the same server in the
foreground (one process per ``--workers``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as _dt
import errno
import os
import socket
import sys
import threading
import time
from typing import Any

from ..errors import BentoNbError, Overloaded, ServerError, UsageError
from ..store import Bundle, Tag, looks_like_path
from . import registry
from .address import is_loopback, url_for
from .app import ServerState, make_app
from .batching import Dispatcher
from .config import ServerConfig
from .metrics import Metrics
from .oip import INFER_ROUTE_LABEL
from .transport import HttpServer
from .versions import (
    Follower,
    ServedVersion,
    VersionSet,
    check_members,
    check_weights,
    version_of,
)

_FALLBACK_TRIES = 100
_QUIET = 0.1  # seconds without a new request before a draining server closes connections
_PUBLISH_MS = 1000  # how often a worker shares its metrics with the others
_BACKLOG = 1024  # the listen() backlog
_SERVER_OPTIONS = {f.name for f in dataclasses.fields(ServerConfig)} - {
    "host", "port", "max_batch_size", "max_latency_ms", "api_token", "port_fallback"}
_MODEL_OPTIONS = {"name", "apis", "input", "batch", "device"}


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new uvloop event loop (the standard one where uvloop is not installed)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def connection_cap(wanted: int) -> int:
    """``max_connections``, lowered to what the open-file limit leaves (minus headroom for
    the model, logs and the listening sockets)."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, ValueError, OSError):
        return wanted
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(8, min(wanted, soft - max(32, soft // 8)))


def bind(config: ServerConfig, reuse_port: bool = False) -> tuple[list[socket.socket], int, int | None]:
    """Listening sockets for ``config.host``/``config.port``; returns (sockets, port,
    moved_from). A busy port raises ServerError, or with ``port_fallback`` moves on to the
    next free port."""
    port = config.port
    tries = _FALLBACK_TRIES if (config.port_fallback and port) else 1
    last: OSError | None = None
    for candidate in range(port, port + tries):
        try:
            sockets = bind_sockets(candidate, config.host, reuse_port=reuse_port)
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise ServerError(f"cannot listen on {config.host}:{candidate}: {e.strerror}") from None
            last = e
            continue
        bound = sockets[0].getsockname()[1]
        return sockets, bound, (port if candidate != port else None)
    raise ServerError(
        f"port {port} is already in use on {config.host}"
        + (f" (and the next {tries - 1} ports)" if tries > 1 else "")
        + "; pick another port (0 picks any free one)") from last


def bind_sockets(port: int, host: str | None, reuse_port: bool = False) -> list[socket.socket]:
    """Listening sockets on ``port`` for every address ``host`` names ("" or None: all
    interfaces), non-blocking, ``SO_REUSEADDR`` set."""
    sockets: list[socket.socket] = []
    flags = socket.AI_PASSIVE
    infos = socket.getaddrinfo(host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM,
                               0, flags)
    seen = set()
    try:
        for family, kind, proto, _name, address in infos:
            if (family, address) in seen or family not in (socket.AF_INET, socket.AF_INET6):
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:  # the same free port on every address
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            try:
                sock.bind(address)
            except OSError as e:
                # A host name that also resolves to ::1 on a machine without IPv6.
                if e.errno == errno.EADDRNOTAVAIL and family == socket.AF_INET6:
                    sockets.pop().close()
                    continue
                raise
            sock.listen(_BACKLOG)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    if not sockets:
        raise OSError(errno.EADDRNOTAVAIL, f"no address to listen on for {host!r}")
    return sockets


def warn_if_public(config: ServerConfig) -> None:
    """Binding beyond loopback: say so on stderr (and suggest a token when there is none).
    Not inside an image bento_nb built: there 0.0.0.0 is the container's own namespace."""
    from ..config import in_container

    if not is_loopback(config.host) and not in_container():
        who = ("anyone who can reach this machine and has the token" if config.api_token
               else "anyone who can reach this machine; consider --api-token / "
                    "BENTO_NB_API_TOKEN")
        print(f"bento-nb: warning: listening on {config.host or 'all interfaces'}: the model "
              f"can be called by {who}", file=sys.stderr)


class ModelServer:
    """One service — or several versions of one bundle (:mod:`.versions`) — behind one
    HTTP server (:mod:`.transport`) on the current thread's event loop."""

    def __init__(self, service: Any, config: ServerConfig,
                 metrics_dir: str | os.PathLike | None = None,
                 identity_secret: str | None = None, control_token: str | None = None,
                 follow: bool = False, report: Any = None):
        """``service``: a service, or a list of versions of one bundle shared by
        ``config.weights`` (a split). ``metrics_dir``: the folder where the workers of one
        ``bento-nb serve --workers N`` share their metrics (see :mod:`.metrics`).
        ``identity_secret`` and ``control_token``: the secret and control token of the
        registry record this server answers for (see :mod:`.registry`); fresh ones when
        not given. ``on_stop_request`` (set before :meth:`start`) is what ``POST
        /.bento/stop`` calls (:mod:`.control`). ``follow``: swap in the newer versions of
        the served bundle's name as they are packed (:class:`.Follower`);
        ``report(message)`` hears of each swap or refusal (the CLI prints it)."""
        services = list(service) if isinstance(service, (list, tuple)) else [service]
        self.weights = check_weights(config.weights, len(services))
        if len(services) > 1:
            check_members(services)
            if follow:
                raise UsageError("a split serves the versions it was given: it cannot also "
                                 "follow new versions (--watch)")
        self.services = services
        self.service = services[0]
        self.config = config
        self.identity_secret = identity_secret or registry.new_secret()
        self.control_token = control_token or registry.new_secret()
        self.on_stop_request: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.metrics = Metrics(in_flight=lambda: self.state.in_flight if self.state else 0,
                               queue_depths=self._queue_depths, shared_dir=metrics_dir,
                               traffic_routes=[f"/{api.route}"
                                               for api in self.service.apis.values()]
                               + [INFER_ROUTE_LABEL])
        self._publisher: asyncio.TimerHandle | None = None
        self.state: ServerState | None = None
        self.versions: VersionSet | None = None
        self.http: HttpServer | None = None
        self.app: Any = None
        self._stopping = False
        self._follow = follow
        self._report = report
        self.follower: Follower | None = None
        self._retiring: list[ServedVersion] = []  # swapped out, still draining
        self.on_swap: list = []  # called (on the event loop) after each hot swap
        self._unsubscribe: Any = None

    @property
    def dispatchers(self) -> dict[str, Dispatcher]:
        """The dispatchers of the version(s) serving now (see :meth:`.VersionSet.dispatchers`)."""
        return self.versions.dispatchers() if self.versions is not None else {}

    def _members(self) -> list[ServedVersion]:
        return [*(self.versions.members if self.versions else []), *self._retiring]

    def _queue_depths(self) -> dict:
        return {f"{name}\t{member.version}": d.queue_depth for member in self._members()
                for name, d in member.dispatchers.items()}

    def _member(self, service: Any) -> ServedVersion:
        """A version with its dispatchers (not started yet)."""
        config, version = self.config, version_of(service)
        dispatchers = {}
        for api in service.apis.values():
            dispatchers[api.name] = Dispatcher(
                api, self.loop, config.max_batch_size, config.max_latency_ms, config.max_queue,
                on_batch=lambda n, t, _name=api.name: self.metrics.observe_batch(
                    _name, n, t, version),
                request_timeout=config.request_timeout, retry_after_s=config.retry_after_s)
        return ServedVersion(service, dispatchers, self.state)

    def start(self, sockets: list[socket.socket]) -> None:
        """Start serving on ``sockets``; call on the thread that will run the loop."""
        self.loop = asyncio.get_event_loop()
        config = self.config
        members = [self._member(service) for service in self.services]
        self.versions = VersionSet(members, self.weights)
        self.state = ServerState(self.versions, config, self.metrics)
        self.state.identity_secret = self.identity_secret
        self.state.control_token = self.control_token
        self.state.request_stop = self.on_stop_request
        for member in members:
            member.state = self.state
            for dispatcher in member.dispatchers.values():
                dispatcher.start()
        self.app = make_app(self.state)
        self.http = HttpServer(self.app, self.loop,
                               max_connections=connection_cap(config.max_connections),
                               header_timeout=config.header_timeout,
                               body_timeout=config.body_timeout)
        self.app.alone = self.http.alone
        self.http.start(sockets)
        if self.metrics.shared_dir is not None:
            self._publish()
        self.state.ready = True
        if self._follow:
            bundle = getattr(self.service, "bundle", None)
            self.follower = Follower(
                self, folder=bundle.path.parent if bundle is not None else None,
                version=bundle.version if bundle is not None else None, report=self._report)
            self.follower.start()

    # -- hot swap (see .versions) -----------------------------------------------------

    def current_service(self) -> Any:
        return self.versions.primary.service

    def current_version(self) -> str:
        return self.versions.primary.version

    def swap_in(self, service: Any, timeout: float = 30) -> None:
        """Serve ``service`` instead of the version serving now (from any thread but the
        loop's; returns once swapped). Requests routed before finish on the old version,
        whose dispatchers close when nothing is in flight on it."""
        done = threading.Event()
        failure: list[BaseException] = []

        def install() -> None:
            try:
                self._install(service)
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                failure.append(e)
            finally:
                done.set()

        self.loop.call_soon_threadsafe(install)
        if not done.wait(timeout):
            raise ServerError("the server did not take the new version in time")
        if failure:
            raise failure[0]

    def _install(self, service: Any) -> None:
        if self._stopping:
            raise ServerError("the server is stopping")
        member = self._member(service)
        self.app.attach(member)
        for dispatcher in member.dispatchers.values():
            dispatcher.start()
        old = self.versions.primary
        self.versions.swap(old, member)
        self.state.describe()
        self._retiring.append(old)
        asyncio.ensure_future(self._retire(old))
        for callback in self.on_swap:
            callback()

    async def _retire(self, old: ServedVersion) -> None:
        """Let the requests already routed to ``old`` finish, then end its model threads."""
        deadline = time.monotonic() + self.config.request_timeout + 1
        while old.in_flight and time.monotonic() < deadline and not self._stopping:
            await asyncio.sleep(0.005)
        if self._stopping:
            return  # shutdown() drains and joins every member
        old.close()
        loop = asyncio.get_running_loop()
        for dispatcher in old.dispatchers.values():
            await loop.run_in_executor(None, dispatcher.join, 5)
        if old in self._retiring:
            self._retiring.remove(old)

    def announce(self, bundle: Any) -> None:
        """A bundle was packed in this process that may be the next version to serve."""
        if self.follower is not None:
            self.follower.announce(bundle)

    def listen_for_packs(self, subscribe: Any, sources: tuple = ()) -> None:
        """Hear of the packs made in this process (``subscribe``:
        :func:`bento_nb.service.add_pack_listener`): a pack of one of ``sources`` (the
        live object served) or of a new version of the followed name is announced to the
        follower at once, without waiting for its next look at the store."""
        def on_pack(obj: Any, bundle: Any) -> None:
            follower = self.follower
            if follower is None or self._stopping:
                return
            if any(obj is source for source in sources) or (
                    follower.folder is not None and bundle.name == follower.folder.name):
                follower.announce(bundle)

        self._unsubscribe = subscribe(on_pack)

    def _publish(self) -> None:
        self.metrics.write_snapshot()
        self._publisher = self.loop.call_later(_PUBLISH_MS / 1000, self._publish)

    async def shutdown(self, timeout: float | None = None) -> None:
        """Stop accepting, drain in-flight requests (up to ``timeout``), close everything.

        The listening sockets close first (the port is free at once); connections still in
        the kernel's accept queue are accepted before that and answered. Requests already
        received keep being answered; requests arriving on open connections get 503 with
        ``Connection: close``. Once nothing is in flight and no request arrived for
        ``_QUIET`` seconds (a request may be on the wire), connections are closed. If the
        timeout runs out first, every request still waiting gets 503 "shutting down"
        before its connection is closed: none is left without an answer."""
        if self._stopping:
            return
        self._stopping = True
        if self.follower is not None:
            self.follower.stop()
        if self._unsubscribe is not None:
            self._unsubscribe()
        timeout = self.config.drain_timeout if timeout is None else timeout
        state = self.state
        dispatchers = [d for member in self._members() for d in member.dispatchers.values()]
        if state is not None:
            state.draining = True
            state.ready = False
        if self.http is not None:
            self.http.stop_accepting()
        if state is not None:
            # Connections just accepted (here or by the loop's last accept) may have a
            # request on the wire that was not read yet: give them the quiet period.
            state.last_request = time.perf_counter()
        # The dispatchers stay open while draining: a request whose headers came before
        # stop() may still be receiving its body; later ones are refused by ApiCall.
        deadline = time.monotonic() + timeout
        while state is not None and time.monotonic() < deadline:
            quiet = time.perf_counter() - state.last_request >= _QUIET
            if state.in_flight == 0 and quiet:
                break
            await asyncio.sleep(0.005)
        for dispatcher in dispatchers:
            dispatcher.close()
        if state is not None and state.in_flight > 0:
            error = Overloaded("the server is shutting down; retry shortly",
                               retry_after=self.config.retry_after_s)
            for dispatcher in dispatchers:
                dispatcher.abandon(error)
            await asyncio.sleep(0)  # let the 503s be written
        if self.http is not None:
            await self.http.close_connections(max(deadline, time.monotonic() + 0.1))
        if self.app is not None:
            self.app.close()
        for dispatcher in dispatchers:
            await asyncio.get_running_loop().run_in_executor(
                None, dispatcher.join, max(0.1, deadline - time.monotonic()))
        if self._publisher is not None:
            self._publisher.cancel()
            self.metrics.write_snapshot()  # this worker's final counts stay in the sums

    def stats(self) -> dict:
        """:meth:`.Metrics.summary`, plus ``serving`` (version -> weight), and for a
        server that follows new versions ``following`` (the name), ``swapped``
        ({version, tag, at}) and ``refused`` ({version, reason, at})."""
        out = self.metrics.summary()
        out["in_flight"] = self.state.in_flight if self.state else 0
        if self.versions is not None:
            out["serving"] = {m.version: w for m, w in zip(self.versions.members,
                                                           self.versions.weights)}
        if self.follower is not None:
            out.update(self.follower.status())
        return out


class ServerHandle:
    """A server running in a background thread of this process (see :func:`serve`)."""

    def __init__(self, server: ModelServer, port: int, moved_from: int | None):
        config = server.config
        self._server = server
        self.host = config.host
        self.port = port
        self.moved_from = moved_from
        self.url = url_for(config.host, port)
        self.docs_url = self.url + "/"
        self.started_at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()
        self._record_pid = os.getpid()

    @property
    def running(self) -> bool:
        return not self._stopped.is_set()

    @property
    def service(self) -> Any:
        """The service serving now (the first version of a split; the new one after a hot
        swap)."""
        server = self._server
        return server.current_service() if server.versions is not None else server.service

    @property
    def name(self) -> str:
        return self.service.name

    @property
    def tag(self) -> str | None:
        return getattr(self.service, "tag", None)

    @property
    def version(self) -> str:
        return version_of(self.service)

    def announce(self, bundle: Any) -> None:
        """``bundle`` was just packed from what this server serves (``%bento pack clf``
        for the server of ``clf``): a server that follows new versions swaps it in."""
        self._server.announce(bundle)

    @property
    def apis(self) -> list[str]:
        return list(self.service.apis)

    def stats(self) -> dict:
        out = self._server.stats()
        out["status"] = "running" if self.running else "stopped"
        return out

    def record(self) -> dict:
        return {"pid": self._record_pid, "host": self.host, "port": self.port, "url": self.url,
                "tag": self.tag, "name": self.name, "apis": self.apis,
                "started_at": self.started_at, "secret": self._server.identity_secret,
                "control": self._server.control_token, **registry.owner()}

    def _stop_requested(self) -> None:
        """``POST /.bento/stop`` (the Jupyter panel's Stop): :meth:`stop` from a thread of
        its own, since the server's thread cannot wait for its own shutdown."""
        threading.Thread(target=self.stop, daemon=True,
                         name=f"bento-nb-stop-{self.port}").start()

    def stop(self, timeout: float = 10) -> None:
        """Drain in-flight requests (up to ``timeout`` seconds), free the port and end the
        server thread. Safe to call twice and from any thread except the server's own."""
        with self._stop_lock:
            if self._stopped.is_set():
                return
            loop, thread = self._loop, self._thread
            if loop is not None and thread is not None and thread.is_alive():
                if threading.current_thread() is thread:
                    raise ServerError("stop() cannot be called from the server's own thread")
                done = threading.Event()

                async def _shutdown() -> None:
                    try:
                        await self._server.shutdown(timeout)
                    finally:
                        done.set()
                        asyncio.get_running_loop().stop()

                try:
                    loop.call_soon_threadsafe(lambda: asyncio.ensure_future(_shutdown()))
                except RuntimeError:
                    pass
                else:
                    done.wait(timeout + 5)
                thread.join(timeout + 5)
            self._stopped.set()
            registry.discard(self)
            registry.remove_record(self._record_pid, self.port)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<ServerHandle {self.name} {self.url} {state}>"

    def _repr_html_(self) -> str:
        from html import escape

        state = "running" if self.running else "stopped"
        return (f'<b>{escape(self.name)}</b> {state} at <a href="{escape(self.url)}" '
                f'target="_blank">{escape(self.url)}</a> (<a href="{escape(self.docs_url)}" '
                f'target="_blank">docs</a>)')


def serve(target: Any, port: int = 5000, host: str = "127.0.0.1",
          max_batch_size: int | None = None, max_latency_ms: float | None = None,
          api_token: str | None = None, port_fallback: bool = False,
          config: ServerConfig | None = None, follow_objects: tuple = (),
          **options: Any) -> ServerHandle:
    """Serve ``target`` over HTTP from a background thread; returns once it accepts
    connections.

    ``target``: a tag (``"Iris"``, ``"Iris:latest"``, ``"Iris:<version>"``), a bundle path, a
    :class:`~bento_nb.store.Bundle`, a service, or a live model object (wrapped with the
    model options ``name=``, ``apis=``, ``input=``, ``batch=``; no pack needed).
    ``port=0`` picks a free port. A busy port raises ServerError, unless
    ``port_fallback=True`` (the notebook), which moves to the next free port and sets
    ``handle.moved_from``. ``api_token`` (or $BENTO_NB_API_TOKEN) requires
    ``Authorization: Bearer <token>`` on the API routes. Every other
    :class:`~bento_nb.server.config.ServerConfig` field (``max_queue``, ``max_body_bytes``,
    ``drain_timeout``, ``body_timeout``, ``header_timeout``, ``max_connections``,
    ``retry_after_s``, ``request_timeout``) is a keyword
    too; or pass a whole ``config=``. An option that applies to nothing is refused, never
    ignored.

    **Following new versions** (``follow``, :mod:`.versions`): a name without a version
    (``"Iris"``, ``"Iris:latest"``) and a live model object are followed by default: each
    version packed later is loaded beside the one serving, warmed with the bundle's example
    and swapped in (a live object's server follows the bundle it is packed as, by
    ``bento_nb.pack`` or ``%bento pack``). ``"Iris:<version>"``, a path or a
    :class:`~bento_nb.store.Bundle` is pinned; ``follow=False`` turns following off.

    **A split** (A/B in one server): ``target`` a list of versions of one bundle,
    ``weights`` their shares (``serve(["Iris:v1", "Iris:v2"], weights=[0.9, 0.1])``); each
    request goes to one version by weight, the same one for the same
    ``X-Bento-Route-Key`` header. Versions with other names or APIs are refused.
    ``follow_objects``: more objects whose pack means "this server's next version" (the
    model a caller wrapped in the service it passes).
    """
    from ..service import BentoService, add_pack_listener, as_service

    server_options = {k: v for k, v in options.items() if k in _SERVER_OPTIONS}
    model_options = {k: v for k, v in options.items() if k in _MODEL_OPTIONS}
    unknown = sorted(set(options) - set(server_options) - set(model_options))
    if unknown:
        raise UsageError(
            f"serve() got unknown option(s) {', '.join(unknown)}; server options: "
            f"{', '.join(sorted(_SERVER_OPTIONS))}; for a live model: "
            f"{', '.join(sorted(_MODEL_OPTIONS))}")
    if model_options and isinstance(target, (str, os.PathLike, Bundle, BentoService)):
        raise UsageError(f"{', '.join(sorted(model_options))} only apply when serving a live "
                         "model object; a tag, path or service already defines its APIs")
    if config is None:
        config = ServerConfig(host=host, port=port, max_batch_size=max_batch_size,
                              max_latency_ms=max_latency_ms, api_token=api_token,
                              port_fallback=port_fallback, **server_options)
    elif server_options:
        raise UsageError("pass server options either in config= or as keywords, not both")
    targets = list(target) if isinstance(target, (list, tuple)) else [target]
    if not targets:
        raise UsageError("serve() got an empty list: give one target, or the versions to split")
    follow = config.follow
    if follow is None:
        follow = len(targets) == 1 and _follows_by_default(target)
    elif follow and len(targets) == 1 and isinstance(target, (str, os.PathLike)) \
            and _pinned(target):
        raise UsageError(f"{os.fspath(target)} names one version: follow=True follows a "
                         "bundle name (give it without its version)")
    services = [as_service(t, **model_options) for t in targets]
    service = services[0]
    server = ModelServer(services if len(targets) > 1 else service, config, follow=follow)
    sockets, bound_port, moved_from = bind(config)
    warn_if_public(config)
    handle = ServerHandle(server, bound_port, moved_from)
    server.on_stop_request = handle._stop_requested
    if follow:
        server.listen_for_packs(add_pack_listener, sources=(target, service, *follow_objects))
    started = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        loop = new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            server.start(sockets)
            handle._loop = loop
        except BaseException as e:  # noqa: BLE001 - reported to the caller below
            failure.append(e)
            started.set()
            for s in sockets:
                s.close()
            loop.close()
            return
        started.set()
        try:
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                handle._stopped.set()

    thread = threading.Thread(target=run, daemon=True,
                              name=f"bento-nb-server-{service.name}-{bound_port}")
    handle._thread = thread
    thread.start()
    started.wait()
    if failure:
        error = failure[0]
        if isinstance(error, BentoNbError):
            raise error
        raise ServerError(f"the server could not start: {type(error).__name__}: {error}") from error
    registry.add(handle)
    registry.write_record(handle.record())
    # the record names the tag served: a hot swap changes it
    server.on_swap.append(lambda: handle.running and registry.write_record(handle.record()))
    return handle


def _follows_by_default(target: Any) -> bool:
    """A name without a version and a live object follow new versions; a pinned tag, a
    path, a Bundle (one version) do not."""
    if isinstance(target, (str, os.PathLike, Bundle)):
        return not _pinned(target)
    return target is not None


def _pinned(target: Any) -> bool:
    if isinstance(target, Bundle):
        return True
    if not isinstance(target, (str, os.PathLike)):
        return False
    if looks_like_path(target):
        return True
    try:
        return Tag.parse(os.fspath(target)).version is not None
    except BentoNbError:
        return True


def running_servers() -> list[ServerHandle]:
    """Handles of the servers running in this process, oldest first."""
    return [h for h in registry.running() if h.running]


def stop_all(timeout: float = 10) -> None:
    """Stop every server of this process."""
    for handle in registry.running():
        handle.stop(timeout)
