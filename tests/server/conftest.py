"""Fixtures for the server tests: running servers and a tiny bounded HTTP client."""

from __future__ import annotations

import http.client
import json
import threading
import time
from urllib.parse import urlsplit

import pytest
from netcheck import Response, exchange

TIMEOUT = 10



def request(url: str, method: str = "GET", body: bytes | str | None = None,
            content_type: str | None = "application/json", headers: dict | None = None,
            conn: http.client.HTTPConnection | None = None) -> Response:
    """One HTTP request with a timeout (a new connection unless ``conn`` is given)."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return exchange(parts.hostname, parts.port, method, target, body,
                    content_type, headers, TIMEOUT, conn)


def post_json(url: str, value, **kwargs) -> Response:
    return request(url, "POST", json.dumps(value), **kwargs)


class EchoModel:
    """predict(df) -> the first column: every client can check it got its own rows back."""

    def predict(self, df):
        return df.iloc[:, 0].to_numpy()


class SlowEchoModel(EchoModel):
    """Echo that takes ``delay`` seconds per call, so concurrent requests pile up."""

    def __init__(self, delay: float = 0.02):
        self.delay = delay

    def predict(self, df):
        time.sleep(self.delay)
        return super().predict(df)


class PoisonModel(SlowEchoModel):
    """Raises when any row's first value is the marker -1."""

    def predict(self, df):
        if (df.iloc[:, 0] == -1).any():
            raise ValueError("poisoned row: first value -1 is not allowed")
        return super().predict(df)


class GateModel:
    """Blocks inside predict until ``gate`` is set; records every batch size it saw."""

    def __init__(self):
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.sizes: list[int] = []

    def predict(self, df):
        self.entered.set()
        if not self.gate.wait(TIMEOUT):
            raise TimeoutError("gate never opened")
        self.sizes.append(len(df))
        if (df.iloc[:, 0] == -1).any():
            raise ValueError("poisoned row: first value -1 is not allowed")
        return df.iloc[:, 0].to_numpy()


def metric_value(text: str, name: str, **labels) -> float:
    """Sum of the samples ``name{labels...}`` in Prometheus text."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        sample, value = line.rsplit(" ", 1)
        if all(f'{k}="{v}"' in sample for k, v in labels.items()):
            total += float(value)
    return total



@pytest.fixture
def iris_server(iris_bundle, serve_model):
    return serve_model(iris_bundle.tag)


@pytest.fixture
def echo_rows():
    def rows(client: int, count: int = 1):
        return [[float(client * 1000 + k), 1.0, 2.0, 3.0] for k in range(count)]

    return rows
