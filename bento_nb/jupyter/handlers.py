"""REST handlers of the extension, under ``<base_url>/bento/api/`` (see :mod:`bento_nb.jupyter`).

Thin classes, one per route; ``GET api/bundles/<name>`` lists the versions of one name, and
any other path under ``api/`` gets a JSON 404 from :class:`NotFoundHandler`. Each method is
``@web.authenticated`` and ``@authorized`` (resource ``"bento"``: read for GET, write for
POST/DELETE), so a request without a token or login cookie gets 403 (never a 404 that would
tell it what exists), and tornado's XSRF check refuses cookie-authenticated writes that lack
the ``_xsrf`` token (JupyterLab's ``ServerConnection`` sends it). Errors use the bento_nb
shape ``{"error": {"type", "message"}}`` with the status of the error class.
"""

from __future__ import annotations

import asyncio
import json
import re
import time

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .._processes import pid_alive
from ..containerize.images import built_from
from ..containerize.reference import validate_image
from ..errors import (BadGateway, BadInput, BentoNbError, BundleNotFound, Forbidden,
                      GatewayTimeout, InvalidName, NotFound, StaleServer)
from ..server.control import HEADER as CONTROL_HEADER
from ..server.control import STATS_PATH, STOP_PATH
from ..store import ListEntry, Store, Tag, validate_name
from .base import AUTH_RESOURCE, JSONErrors, bento_errors
from .discovery import proxy_path
from .jobs import JobRunner

class BentoAPIHandler(JSONErrors, APIHandler):
    """Base of the JSON routes."""

    auth_resource = AUTH_RESOURCE

    def initialize(self, settings, runner: JobRunner) -> None:
        self.bento_settings = settings
        self.runner = runner

    async def running_servers(self, tag: str | None = None) -> tuple[list[dict], list[dict]]:
        """``(servers, bad_records)``: the registry of running bento_nb servers (those
        serving ``tag`` if given) and the registry files that are not usable records
        (``{"path", "error"}``, each logged once). Each server has a ``status`` from the
        proxy's identity check: "running" (then ``proxy_url`` is its proxied root),
        "unverified" (something answers on the port but cannot prove it wrote the record),
        "unreachable" or "not on loopback"; ``proxy_url`` is None unless "running". Its
        ``url`` is the record's own address when that is an ``http(s)://`` loopback URL,
        else None; the record's secret and control token are never included.

        Also, for the panel: ``id`` (``<pid>-<port>``, for ``DELETE api/servers/<id>``),
        ``owner`` (``{"kind": "kernel", "kernel_id", "notebook"}`` with the notebook path
        from this Jupyter server's sessions, None for a kernel it does not run; or
        ``{"kind": "process", "pid", "command"}``), ``stats`` (the live figures of a
        running server, see :mod:`bento_nb.server.control`; else None) and
        ``bundle_deleted`` (it serves a tag no longer in the store)."""
        from ..server.registry import public, read_records
        from .identity import NotVerified, loopback_target, loopback_url, verify

        records, bad = read_records()
        self._log_bad_records(bad)
        records = [r for r in records if tag is None or r.get("tag") == tag]
        base_url = self.settings["base_url"]
        client = AsyncHTTPClient()
        notebooks = await self._kernel_notebooks() if any(
            r.get("kernel_id") for r in records) else {}
        store = Store()

        async def describe(record: dict) -> dict:
            server = public(record)
            server["id"] = server_id(record)
            server["url"] = loopback_url(record.get("url"))
            server["proxy_url"] = None
            server["owner"] = _owner(record, notebooks)
            server["stats"] = None
            server["bundle_deleted"] = _bundle_deleted(store, record.get("tag"))
            target = loopback_target(record.get("host"))
            if target is None:
                server["status"] = "not on loopback"
                return server
            try:
                await verify(client, record, target, self.bento_settings,
                             self.bento_settings.health_timeout)
            except NotVerified as e:
                server["status"] = "unverified" if e.reachable else "unreachable"
            else:
                server["status"] = "running"
                server["proxy_url"] = proxy_path(base_url, record["port"])
                server["stats"] = await _control(client, record, target, STATS_PATH, "GET",
                                                 self.bento_settings.health_timeout)
            return server

        servers = await asyncio.gather(*(describe(r) for r in records))
        return list(servers), [b.to_json() for b in bad]

    async def _kernel_notebooks(self) -> dict[str, str]:
        """kernel id -> the path of the notebook (or console) its session is for."""
        try:
            sessions = await self.session_manager.list_sessions()
        except Exception:  # noqa: BLE001 - no session manager: owners shown by kernel id
            self.log.debug("bento_nb: cannot list sessions", exc_info=True)
            return {}
        return {s["kernel"]["id"]: s.get("path") for s in sessions
                if isinstance(s.get("kernel"), dict) and s["kernel"].get("id")}

    def _log_bad_records(self, bad: list) -> None:
        seen: set = self.bento_settings.__dict__.setdefault("_reported_records", set())
        for record in bad:
            if (record.path, record.error) not in seen:
                seen.add((record.path, record.error))
                self.log.warning("bento_nb: skipping registry file %s: %s (remove it if no "
                                 "server of yours wrote it)", record.path, record.error)


def server_id(record: dict) -> str:
    """A server's id in ``api/servers``: ``<pid>-<port>``, the name of its registry file."""
    return f"{record['pid']}-{record['port']}"


_SERVER_ID = re.compile(r"([1-9][0-9]{0,9})-([1-9][0-9]{0,4})")


def _owner(record: dict, notebooks: dict[str, str]) -> dict:
    kernel_id = record.get("kernel_id")
    if kernel_id:
        return {"kind": "kernel", "kernel_id": kernel_id, "notebook": notebooks.get(kernel_id)}
    return {"kind": "process", "pid": record["pid"], "command": record.get("command")}


def _bundle_deleted(store: Store, tag: str | None) -> bool:
    """Whether the bundle ``tag`` names is gone from the store (False for a live object)."""
    if not tag:
        return False
    try:
        store.resolve(Tag.parse(tag))
    except BundleNotFound:
        return True
    except BentoNbError:  # a tag we cannot read or a link: not ours to call deleted
        return False
    return False


async def _control(client: AsyncHTTPClient, record: dict, host: str, path: str, method: str,
                   timeout: float) -> dict | None:
    """Call a control route of a verified server (:mod:`bento_nb.server.control`); its JSON
    answer when 2xx, else None (an older server without the route, say)."""
    token = record.get("control")
    if not token:
        return None
    request = HTTPRequest(f"http://{host}:{record['port']}{path}", method=method,
                          body=b"" if method == "POST" else None,
                          headers={CONTROL_HEADER: token}, follow_redirects=False,
                          connect_timeout=timeout, request_timeout=timeout)
    try:
        response = await client.fetch(request, raise_error=False)
        if 200 <= response.code < 300:
            answer = json.loads(response.body)
            return answer if isinstance(answer, dict) else None
    except (OSError, ValueError, HTTPClientError):
        pass
    return None


def _tag(name: str, version: str) -> Tag:
    validate_name(name)
    return Tag(name, None if version == "latest" else validate_name(version, "version"))


def _bundle_entry(entry: ListEntry, latest: bool = False) -> dict:
    """One entry of ``api/bundles``: the bundle's info, or its name, version and error;
    ``latest``: whether ``<name>:latest`` means this version; ``images``: the Docker images
    built from it, newest first (:mod:`bento_nb.containerize.images`)."""
    if entry.bundle is not None:
        out = entry.bundle.info()
    else:
        out = {"tag": f"{entry.name}:{entry.version}", "name": entry.name,
               "version": entry.version, "path": str(entry.path), "error": entry.error}
    out["latest"] = latest
    out["images"] = built_from(entry.name, entry.version) if entry.version != "*" else []
    return out


def _bundle_entries(entries: list[ListEntry]) -> list[dict]:
    """:func:`_bundle_entry` of each, the newest version of each name marked ``latest``
    (the one ``Name:latest`` resolves to: the last version in sort order)."""
    newest: dict[str, str] = {}
    for entry in entries:
        if entry.version != "*":
            newest[entry.name] = max(newest.get(entry.name, entry.version), entry.version)
    return [_bundle_entry(e, newest.get(e.name) == e.version) for e in entries]


class BundlesHandler(BentoAPIHandler):
    """``GET api/bundles``: every bundle, oldest first; unreadable ones with their error.
    ``GET api/bundles/<name>``: the versions of that name only (404 when it has none)."""

    @web.authenticated
    @authorized
    @bento_errors
    def get(self, name: str | None = None) -> None:
        store = Store()
        entries = store.list(name)  # checks the name: 400 for "..", "a/b", ...
        if name is not None and not entries:
            raise BundleNotFound(f"no bundle named {name!r} in {store.root}; "
                                 "see GET api/bundles")
        self.finish({"bundles": _bundle_entries(entries)})


class BundleHandler(BentoAPIHandler):
    """``GET|DELETE api/bundles/<name>/<version>`` (``latest`` means the newest)."""

    # GET: the entry of api/bundles (latest, images) + its manifest and its servers

    @web.authenticated
    @authorized
    @bento_errors
    async def get(self, name: str, version: str) -> None:
        store = Store()
        bundle = store.get(_tag(name, version))
        info = bundle.info()
        info["images"] = built_from(bundle.name, bundle.version)
        info["latest"] = store.resolve(Tag(bundle.name, None)) == bundle.path
        info["manifest"] = bundle.manifest
        info["servers"], _bad = await self.running_servers(tag=bundle.tag)
        self.finish(info)

    @web.authenticated
    @authorized
    @bento_errors
    def delete(self, name: str, version: str) -> None:
        store = Store()
        tag = _tag(name, version)
        path = store.resolve(tag)
        exact = f"{path.parent.name}:{path.name}"
        store.delete(exact)
        self.log.info("bento_nb: deleted bundle %s", exact)
        self.finish({"deleted": exact})


class ServersHandler(BentoAPIHandler):
    """``GET api/servers``: ``{"servers": [...], "bad_records": [...]}``, every running
    bento_nb server with its ``status``, ``proxy_url`` and loopback-only ``url``, and the
    registry files skipped (:meth:`BentoAPIHandler.running_servers`)."""

    @web.authenticated
    @authorized
    @bento_errors
    async def get(self) -> None:
        servers, bad = await self.running_servers()
        self.finish({"servers": servers, "bad_records": bad})


class ServerHandler(BentoAPIHandler):
    """``DELETE api/servers/<pid>-<port>``: stop that server (the panel's Stop), answering
    ``{"stopped": id, "tag"}`` once it has drained and its record is gone.

    How: the record (user-only, so only this user's servers are listed at all) holds a
    per-server control token. After the same identity check as the proxy (the process on
    the port proves the record's secret), the token goes to the server's ``POST
    /.bento/stop`` (:mod:`bento_nb.server.control`), which drains and stops it: an
    in-kernel server stops its handle (its widget shows "stopped", the kernel lives on), a
    ``bento-nb serve`` process exits 0. No signal is sent from here: a kernel's pid must
    never be killed to stop one of its servers, and a pid alone may have been reused.

    Refusals: 400 for an id that is not ``<pid>-<port>``; 404 when no running server has
    that id (stopped already, or its process is gone); 403 for a record file of another
    user; 409 (``StaleServer``) when the record cannot be acted on: nothing on its port
    proves it wrote the record (a stale record, the port taken by another program), it does
    not listen on loopback, or it was written by a bento_nb without Stop; 504 when it has not
    stopped within ``BentoExtension.stop_timeout`` seconds."""

    @web.authenticated
    @authorized
    @bento_errors
    async def delete(self, ident: str) -> None:
        from ..server.registry import read_records, record_path
        from .identity import NotVerified, loopback_target, verify

        found = _SERVER_ID.fullmatch(ident)
        if found is None:
            raise BadInput(f"{ident[:40]!r} is not a server id; ids are <pid>-<port>, "
                           "as GET api/servers lists them")
        pid, port = int(found.group(1)), int(found.group(2))
        records, bad = read_records()
        record = next((r for r in records if r["pid"] == pid and r["port"] == port), None)
        if record is None:
            path = str(record_path(pid, port))
            problem = next((b.error for b in bad if b.path == path), None)
            if problem is not None and "another user" in problem:
                raise Forbidden(f"server {ident} is not yours: its record is {problem}")
            if problem is not None:
                raise StaleServer(f"server {ident}: its registry file {path} is not a usable "
                                  f"record ({problem}); remove it if no server of yours wrote it")
            raise NotFound(f"no running server {ident} (stopped already, or its process is "
                           "gone); see GET api/servers")
        if not record.get("control"):
            raise StaleServer(f"server {ident} was started by a bento_nb without remote stop; "
                              "stop it where it runs (%bento stop, Ctrl-C)")
        target = loopback_target(record.get("host"))
        if target is None:
            raise StaleServer(f"server {ident} does not listen on loopback "
                              f"({record.get('host')}); stop it where it runs")
        client = AsyncHTTPClient()
        timeout = self.bento_settings.health_timeout
        try:
            await verify(client, record, target, self.bento_settings, timeout)
        except NotVerified as e:
            raise StaleServer(f"server {ident}: its record looks stale, nothing was stopped "
                              f"(port {port}: {e})") from None
        answer = await _control(client, record, target, STOP_PATH, "POST", max(timeout, 5.0))
        if answer is None:
            raise BadGateway(f"server {ident} did not accept the stop request")
        self.log.info("bento_nb: stopping server %s (%s)", ident, record.get("tag"))
        deadline = time.monotonic() + self.bento_settings.stop_timeout
        path = record_path(pid, port)
        while path.exists() and pid_alive(pid):
            if time.monotonic() > deadline:
                raise GatewayTimeout(f"server {ident} is still draining after "
                                     f"{self.bento_settings.stop_timeout:g} s")
            await asyncio.sleep(0.05)
        self.finish({"stopped": ident, "tag": record.get("tag")})


class ContainerizeHandler(BentoAPIHandler):
    """``POST api/containerize`` ``{"tag", "image"?, "base_image"?}`` -> 202 with the job.

    The whole request is checked before a job exists: 400 for a body that is not such an
    object (unknown key, wrong type), a bad tag or a name Docker would refuse; 404 when no
    bundle matches the tag."""

    @web.authenticated
    @authorized
    @bento_errors
    def post(self) -> None:
        tag, image, base_image = _containerize_request(self.request.body)
        bundle = Store().get(tag)
        job = self.runner.submit(bundle.tag, image=image, base_image=base_image)
        self.set_status(202)
        self.set_header("Location", f"{self.request.path.rstrip('/').rsplit('/', 1)[0]}"
                                    f"/jobs/{job.id}")
        self.finish(job.to_json())


_CONTAINERIZE_USAGE = ('expected a JSON object {"tag": "Name[:version]", "image"?: '
                       '"iris-classifier:1.0", "base_image"?: "python:3.11-slim"}')


def _containerize_request(raw: bytes) -> tuple[Tag, str | None, str | None]:
    """``(tag, image, base_image)`` of a containerize body, each checked; ``image`` and
    ``base_image`` are None when absent, null or ""."""
    from ..adapters.decoding import loads_json  # numpy only when a job is asked for

    try:
        body = loads_json(raw) if raw.strip() else None
    except BadInput as e:  # not JSON, not UTF-8, too deep, too long an integer
        raise BadInput(f"the body is not JSON we can read ({e.message}); "
                       f"{_CONTAINERIZE_USAGE}") from None
    if not isinstance(body, dict):
        raise BadInput(_CONTAINERIZE_USAGE)
    for key, value in body.items():
        if key not in ("tag", "image", "base_image"):
            raise BadInput(f"unknown key {key!r}; {_CONTAINERIZE_USAGE}")
        if not (isinstance(value, str) or (value is None and key != "tag")):
            raise BadInput(f"{key!r} must be a string{'' if key == 'tag' else ' or null'}, "
                           f"not {json.dumps(value)[:40]}; {_CONTAINERIZE_USAGE}")
    if "tag" not in body:
        raise BadInput(f"missing 'tag'; {_CONTAINERIZE_USAGE}")
    return (Tag.parse(body["tag"]), _image_arg(body, "image"),
            _image_arg(body, "base_image"))


def _image_arg(body: dict, key: str) -> str | None:
    """``body[key]`` checked by :func:`~bento_nb.containerize.reference.validate_image`
    (what ``docker build`` accepts; a base image may be pinned by digest)."""
    value = body.get(key)
    if not value:
        return None
    try:
        return validate_image(value, allow_digest=key == "base_image")
    except InvalidName as e:
        raise InvalidName(f"{key}: {e.message}") from None


class JobsHandler(BentoAPIHandler):
    """``GET api/jobs``: every remembered containerize job (no logs), newest first."""

    @web.authenticated
    @authorized
    def get(self) -> None:
        self.finish({"jobs": [job.summary() for job in self.runner.jobs()]})


class JobHandler(BentoAPIHandler):
    """``GET api/jobs/<id>[?since=N]``: status, result or error, and log lines from N."""

    @web.authenticated
    @authorized
    @bento_errors
    def get(self, job_id: str) -> None:
        job = self.runner.get(job_id)
        if job is None:
            raise NotFound(f"no containerize job {job_id!r} (jobs are forgotten on restart)")
        try:
            since = int(self.get_argument("since", "0"))
        except ValueError:
            raise BadInput("since must be an integer line number") from None
        self.finish(job.to_json(since=since))


def _guarded(method):
    """``@web.authenticated @authorized @bento_errors`` as a call. Use one call per HTTP
    method: ``@authorized`` keeps the read/write action of the first request it sees."""
    return web.authenticated(authorized(bento_errors(method)))


class NotFoundHandler(BentoAPIHandler):
    """Any other path under ``api/``, any method: a JSON 404 (not Jupyter's HTML page),
    after the same authentication and authorization as the real routes."""

    def _no_route(self, *_args: str) -> None:
        raise NotFound(f"no bento_nb API route {self.request.method} {self.request.path}; "
                       "see api/bundles, api/servers, api/containerize, api/jobs")

    get = _guarded(_no_route)
    head = _guarded(_no_route)
    post = _guarded(_no_route)
    put = _guarded(_no_route)
    patch = _guarded(_no_route)
    delete = _guarded(_no_route)
