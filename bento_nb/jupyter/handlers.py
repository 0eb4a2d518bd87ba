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

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web
from tornado.httpclient import AsyncHTTPClient

from ..containerize.reference import validate_image
from ..errors import BadInput, BundleNotFound, InvalidName, NotFound
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
        else None; the record's secret is never included."""
        from ..server.registry import read_records
        from .identity import NotVerified, loopback_target, loopback_url, verify

        records, bad = read_records()
        self._log_bad_records(bad)
        records = [r for r in records if tag is None or r.get("tag") == tag]
        base_url = self.settings["base_url"]
        client = AsyncHTTPClient()

        async def describe(record: dict) -> dict:
            server = {k: v for k, v in record.items() if k != "secret"}
            server["url"] = loopback_url(record.get("url"))
            server["proxy_url"] = None
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
            return server

        servers = await asyncio.gather(*(describe(r) for r in records))
        return list(servers), [b.to_json() for b in bad]

    def _log_bad_records(self, bad: list) -> None:
        seen: set = self.bento_settings.__dict__.setdefault("_reported_records", set())
        for record in bad:
            if (record.path, record.error) not in seen:
                seen.add((record.path, record.error))
                self.log.warning("bento_nb: skipping registry file %s: %s (remove it if no "
                                 "server of yours wrote it)", record.path, record.error)


def _tag(name: str, version: str) -> Tag:
    validate_name(name)
    return Tag(name, None if version == "latest" else validate_name(version, "version"))


def _bundle_entry(entry: ListEntry) -> dict:
    """One entry of ``api/bundles``: the bundle's info, or its name, version and error."""
    if entry.bundle is not None:
        return entry.bundle.info()
    return {"tag": f"{entry.name}:{entry.version}", "name": entry.name,
            "version": entry.version, "path": str(entry.path), "error": entry.error}


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
        self.finish({"bundles": [_bundle_entry(e) for e in entries]})


class BundleHandler(BentoAPIHandler):
    """``GET|DELETE api/bundles/<name>/<version>`` (``latest`` means the newest)."""

    @web.authenticated
    @authorized
    @bento_errors
    async def get(self, name: str, version: str) -> None:
        bundle = Store().get(_tag(name, version))
        info = bundle.info()
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
