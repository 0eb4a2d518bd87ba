"""sha256 of the files of a bundle: of a file on disk, or of bytes as they are written.

Every file a manifest lists carries its sha256 and size; these two compute them in one
pass over the data::

    with HashingWriter(folder / "model.bin") as out:
        out.write(data)
    record = out.close()            # {"sha256": "...", "size": len(data)}
    assert sha256_file(folder / "model.bin") == record["sha256"]
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def sha256_file(path: str | os.PathLike, chunk: int = 8 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(chunk)
        view = memoryview(buf)
        while n := f.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


class HashingWriter:
    """A binary file that hashes what is written to it: one pass for write and sha256."""

    def __init__(self, path: Path):
        self.path = path
        self._file = open(path, "wb")
        self._hash = hashlib.sha256()
        self._pool: ThreadPoolExecutor | None = None
        self.size = 0

    _CHUNK = 16 << 20

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        if len(view) <= self._CHUNK:
            self._hash.update(view)
            self._file.write(view)
        else:
            # Large buffers: hash each chunk in a helper thread while the chunk is written
            # (hashlib and file writes both release the GIL), so hashing costs little time.
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="bento-nb-sha256")
            for start in range(0, len(view), self._CHUNK):
                chunk = view[start:start + self._CHUNK]
                hashed = self._pool.submit(self._hash.update, chunk)
                self._file.write(chunk)
                hashed.result()
        self.size += len(view)
        return len(view)

    def close(self) -> dict:
        self._file.close()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        return {"sha256": self._hash.hexdigest(), "size": self.size}

    def __enter__(self) -> "HashingWriter":
        return self

    def __exit__(self, *exc) -> None:
        if not self._file.closed:
            self.close()
