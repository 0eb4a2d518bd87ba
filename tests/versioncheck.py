"""Clients for the tests of servers holding several versions (tests/ is on sys.path:
``from versioncheck import Client, Load``).

The models answer row ``i`` with ``i + k``, ``k`` known per version (see
``tests/server/versioned_models.py``), so :class:`Load` checks every answer against the
version its ``X-Bento-Version`` header names.
"""

from __future__ import annotations

import http.client
import json
import threading


class Client:
    """A keep-alive client: POST row ``i``, read (status, version header, value)."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def post(self, i: int, path: str = "/predict", headers: dict | None = None,
             body: bytes | None = None) -> tuple[int, str | None, float | None]:
        self.conn.request("POST", path, body=body or json.dumps([[i, 0]]).encode(),
                          headers={"Content-Type": "application/json", **(headers or {})})
        response = self.conn.getresponse()
        data = response.read()
        value = None
        if response.status == 200:
            answer = json.loads(data)
            value = answer[0] if isinstance(answer, list) else answer["outputs"][0]["data"][0]
        return response.status, response.getheader("X-Bento-Version"), value

    def close(self) -> None:
        self.conn.close()


class Load:
    """Threads POSTing distinct rows until stopped; every answer is checked against the
    offset of the version its header names."""

    def __init__(self, port: int, offsets: dict, threads: int = 4):
        self.port = port
        self.offsets = offsets  # version -> k (filled in as versions are packed)
        self.failed: list = []
        self.answers: list = []  # (row, version header, value) of every 200
        self.versions: list[str] = []  # version of each answer, in order
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                         for n in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)

    @property
    def wrong(self) -> list:
        """The answers whose value is not that of the version their header names (checked
        against ``offsets`` as it is now: a new version may answer before the test learns
        its number)."""
        with self._lock:
            answers = list(self.answers)
        return [(i, version, value) for i, version, value in answers
                if version not in self.offsets or value != i + self.offsets[version]]

    def _run(self, n: int) -> None:
        client = Client(self.port)
        i = n * 1_000_000
        try:
            while not self._stop.is_set():
                i += 1
                try:
                    status, version, value = client.post(i)
                except OSError as e:
                    with self._lock:
                        self.failed.append((i, repr(e)))
                    client.close()
                    client = Client(self.port)
                    continue
                with self._lock:
                    if status != 200:
                        self.failed.append((i, status))
                    else:
                        self.answers.append((i, version, value))
                        self.versions.append(version)
        finally:
            client.close()

    def answered_by(self, version: str, last: int = 50) -> bool:
        """The last ``last`` answers all came from ``version``."""
        with self._lock:
            tail = self.versions[-last:]
        return len(tail) == last and set(tail) == {version}

    def count(self) -> int:
        with self._lock:
            return len(self.versions)
