"""REST handlers of the extension, under ``<base_url>/bento/api/`` (see :mod:`bento_nb.jupyter`).

Thin classes, one per route. Each method is ``@web.authenticated`` and ``@authorized``
(resource ``"bento"``: read for GET, write for POST/DELETE), so a request without a token
or login cookie gets 403, and tornado's XSRF check refuses cookie-authenticated writes that
lack the ``_xsrf`` token (JupyterLab's ``ServerConnection`` sends it). Errors use the
bento_nb shape ``{"error": {"type", "message"}}`` with the status of the error class.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from ..errors import BadInput, BentoNbError, NotFound
from ..store import Store, Tag, validate_name
from . import discovery
from .jobs import JobRunner

AUTH_RESOURCE = "bento"
_IMAGE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}\Z")


def route_specs(base_url: str, settings, runner: JobRunner) -> list[tuple]:
    """The (pattern, handler, kwargs) list for ``web_app.add_handlers``."""
    from .proxy import ProxyHandler

    root = discovery._normalize_base_url(base_url) + "bento/"
    context = {"settings": settings, "runner": runner}
    name = r"([^/]+)"
    return [
        (root + r"api/bundles/?", BundlesHandler, context),
        (root + rf"api/bundles/{name}/{name}/?", BundleHandler, context),
        (root + r"api/servers/?", ServersHandler, context),
        (root + r"api/containerize/?", ContainerizeHandler, context),
        (root + r"api/jobs/?", JobsHandler, context),
        (root + r"api/jobs/([0-9a-f]{1,64})/?", JobHandler, context),
        (root + r"proxy/(\d{1,5})(/.*)?", ProxyHandler, context),
    ]


def bento_errors(method):
    """Answer a BentoNbError raised by ``method`` with its status and JSON shape."""

    @functools.wraps(method)
    async def wrapper(self, *args, **kwargs):
        try:
            result = method(self, *args, **kwargs)
            if inspect.isawaitable(result):
                await result
        except BentoNbError as e:
            self.set_status(e.http_status)
            self.finish(e.to_json())

    return wrapper


class JSONErrors:
    """Mixin: tornado's own errors (403, 404, 405, XSRF, 500) in the bento_nb error shape
    instead of Jupyter's HTML or ``{"message", "reason"}``."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        message = self._reason
        exc = (kwargs.get("exc_info") or (None, None))[1]
        if isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        self.set_header("Content-Type", "application/json")
        self.finish({"error": {"type": f"HTTP{status_code}", "message": message}})


class BentoAPIHandler(JSONErrors, APIHandler):
    """Base of the JSON routes."""

    auth_resource = AUTH_RESOURCE

    def initialize(self, settings, runner: JobRunner) -> None:
        self.bento_settings = settings
        self.runner = runner


def _tag(name: str, version: str) -> Tag:
    validate_name(name)
    return Tag(name, None if version == "latest" else validate_name(version, "version"))


def _registered_servers() -> list[dict]:
    from ..server.registry import list_servers

    return list_servers()


class BundlesHandler(BentoAPIHandler):
    """``GET api/bundles``: every bundle, oldest first; unreadable ones with their error."""

    @web.authenticated
    @authorized
    @bento_errors
    def get(self) -> None:
        bundles = []
        for entry in Store().list():
            if entry.bundle is not None:
                bundles.append(entry.bundle.info())
            else:
                bundles.append({"tag": f"{entry.name}:{entry.version}", "name": entry.name,
                                "version": entry.version, "path": str(entry.path),
                                "error": entry.error})
        self.finish({"bundles": bundles})


class BundleHandler(BentoAPIHandler):
    """``GET|DELETE api/bundles/<name>/<version>`` (``latest`` means the newest)."""

    @web.authenticated
    @authorized
    @bento_errors
    def get(self, name: str, version: str) -> None:
        bundle = Store().get(_tag(name, version))
        info = bundle.info()
        info["manifest"] = bundle.manifest
        info["servers"] = [s for s in _registered_servers() if s.get("tag") == bundle.tag]
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
    """``GET api/servers``: the registry of running bento_nb servers, each with
    ``proxy_url`` and a ``status`` from a quick ``/healthz`` ("running"/"unreachable")."""

    @web.authenticated
    @authorized
    @bento_errors
    async def get(self) -> None:
        from .proxy import loopback_target

        servers = [dict(s) for s in _registered_servers()]
        base_url = self.settings["base_url"]

        async def health(server: dict) -> None:
            target = loopback_target(server.get("host"))
            server["proxy_url"] = discovery.proxy_path(base_url, server["port"]) \
                if target else None
            if target is None:
                server["status"] = "not on loopback"
                return
            timeout = self.bento_settings.health_timeout
            request = HTTPRequest(f"http://{target}:{int(server['port'])}/healthz",
                                  connect_timeout=timeout, request_timeout=timeout)
            try:
                response = await AsyncHTTPClient().fetch(request, raise_error=False)
            except (OSError, HTTPClientError):
                server["status"] = "unreachable"
            else:
                server["status"] = "running" if response.code == 200 else "unreachable"

        await asyncio.gather(*(health(s) for s in servers))
        self.finish({"servers": servers})


class ContainerizeHandler(BentoAPIHandler):
    """``POST api/containerize`` ``{"tag", "image"?, "base_image"?}`` -> 202 with the job."""

    @web.authenticated
    @authorized
    @bento_errors
    def post(self) -> None:
        body = self.get_json_body()
        if not isinstance(body, dict) or not isinstance(body.get("tag"), str):
            raise BadInput('expected a JSON object {"tag": "Name:version", "image": ...}')
        image = _image_arg(body.get("image"), "image")
        base_image = _image_arg(body.get("base_image"), "base_image")
        bundle = Store().get(body["tag"])
        job = self.runner.submit(bundle.tag, image=image, base_image=base_image)
        self.set_status(202)
        self.set_header("Location", f"{self.request.path.rstrip('/').rsplit('/', 1)[0]}"
                                    f"/jobs/{job.id}")
        self.finish(job.to_json())


def _image_arg(value: Any, what: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _IMAGE_RE.match(value):
        raise BadInput(f"invalid {what} {value!r}: expected a Docker image name like "
                       "'iris-classifier:1.0'")
    return value


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
