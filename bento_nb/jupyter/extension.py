"""Wiring of the jupyter-server extension: its settings and its routes.

Every knob is a traitlet, settable in any Jupyter config file or on the command line::

    c.BentoExtension.proxy_timeout = 120          # seconds for one proxied request
    jupyter lab --BentoExtension.max_jobs=10
"""

from __future__ import annotations

from traitlets import Float, Int
from traitlets.config import Configurable

from .discovery import advertise, normalize_base_url


class BentoExtension(Configurable):
    """Settings of the bento_nb Jupyter server extension."""

    proxy_timeout = Float(
        60.0, help="Seconds a request forwarded by bento/proxy/ may take before a 504."
    ).tag(config=True)
    proxy_max_body_bytes = Int(
        100 * 1024 * 1024, help="Largest response body the proxy relays (bytes)."
    ).tag(config=True)
    health_timeout = Float(
        1.0, help="Seconds api/servers waits for each server's identity check."
    ).tag(config=True)
    stop_timeout = Float(
        30.0, help="Seconds DELETE api/servers/<id> waits for a server to drain and stop."
    ).tag(config=True)
    max_jobs = Int(
        50, help="Finished containerize jobs remembered by api/jobs; older ones are dropped."
    ).tag(config=True)
    max_log_lines = Int(
        5000, help="Log lines kept per containerize job (the oldest are dropped)."
    ).tag(config=True)


def load(serverapp) -> None:
    """Add the handlers to ``serverapp.web_app`` and advertise the extension to kernels."""
    from .jobs import JobRunner

    settings = BentoExtension(parent=serverapp)
    web_app = serverapp.web_app
    base_url = web_app.settings["base_url"]
    runner = JobRunner(max_jobs=settings.max_jobs, max_log_lines=settings.max_log_lines)
    web_app.add_handlers(".*$", route_specs(base_url, settings, runner))
    advertise(base_url)
    serverapp.log.info("bento_nb extension: %sbento/ (bundles, servers, containerize, proxy)",
                       normalize_base_url(base_url))


def route_specs(base_url: str, settings, runner) -> list[tuple]:
    """The (pattern, handler, kwargs) list for ``web_app.add_handlers``."""
    from .handlers import (BundleHandler, BundlesHandler, ContainerizeHandler, JobHandler,
                           JobsHandler, NotFoundHandler, ServerHandler, ServersHandler)
    from .proxy import ProxyHandler

    root = normalize_base_url(base_url) + "bento/"
    context = {"settings": settings, "runner": runner}
    name = r"([^/]+)"
    return [
        (root + rf"api/bundles(?:/{name})?/?", BundlesHandler, context),
        (root + rf"api/bundles/{name}/{name}/?", BundleHandler, context),
        (root + r"api/servers/?", ServersHandler, context),
        (root + rf"api/servers/{name}/?", ServerHandler, context),
        (root + r"api/containerize/?", ContainerizeHandler, context),
        (root + r"api/jobs/?", JobsHandler, context),
        (root + rf"api/jobs/{name}/?", JobHandler, context),
        (root + r"api(?:/.*)?", NotFoundHandler, context),  # after every api/ route
        (root + r"proxy/(\d{1,5})(/.*)?", ProxyHandler, context),
    ]
