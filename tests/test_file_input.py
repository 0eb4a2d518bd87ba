"""FileInput hands the API a file-like object that is also bytes (as BentoML 0.x's
FileLike, and as bento_nb did before); MultiFileInput spreads named uploads over the API's
arguments. Real server."""

from __future__ import annotations

import pytest

from netcheck import exchange, multipart

from bento_nb import BentoService, api
from bento_nb.adapters import FileInput, FileLike, MultiFileInput


class FileService(BentoService):
    @api(input=FileInput())
    def stream(self, file):
        head = file.read(3)
        return {"head": head.decode(), "rest": file.read().decode(), "bytes": file.decode(),
                "name": file.name}

    @api(input=FileInput(), batch=True)
    def sizes(self, files):
        return [len(f) for f in files]

    @api(input=MultiFileInput(input_names=("a", "b")), batch=True)
    def both(self, a_files, b_files):
        return [a.read().decode() + "+" + b.read().decode() for a, b in zip(a_files, b_files)]


def test_a_file_is_a_stream_and_bytes(serve_model):
    port = serve_model(FileService()).port
    raw = exchange("127.0.0.1", port, "POST", "/stream", b"abcdef", "application/octet-stream")
    assert raw.json() == {"head": "abc", "rest": "def", "bytes": "abcdef", "name": None}
    body, content_type = multipart({"file": ("notes.txt", b"xyz123")})
    upload = exchange("127.0.0.1", port, "POST", "/stream", body, content_type)
    assert upload.json() == {"head": "xyz", "rest": "123", "bytes": "xyz123", "name": "notes.txt"}
    sizes = exchange("127.0.0.1", port, "POST", "/sizes", b"12345", "application/octet-stream")
    assert sizes.json() == 5


def test_multi_file_input_spreads_the_named_files(serve_model):
    port = serve_model(FileService()).port
    body, content_type = multipart({"b": ("b.txt", b"two"), "a": ("a.txt", b"one")})
    answer = exchange("127.0.0.1", port, "POST", "/both", body, content_type)
    assert answer.status == 200, answer.body
    assert answer.json() == "one+two"
    body, content_type = multipart({"a": ("a.txt", b"one")})
    missing = exchange("127.0.0.1", port, "POST", "/both", body, content_type)
    assert missing.status == 400 and "['b']" in missing.json()["error"]["message"]
    raw = exchange("127.0.0.1", port, "POST", "/both", b"x", "application/octet-stream")
    assert raw.status == 400 and "multipart/form-data" in raw.json()["error"]["message"]


def test_in_process_calls_take_bytes_or_streams():
    import io

    svc = FileService()
    assert svc.apis["stream"](b"hello")["bytes"] == "hello"
    assert svc.apis["stream"](io.BytesIO(b"hello"))["head"] == "hel"
    file = FileLike(b"data", "d.bin")
    assert file == b"data" and isinstance(file, bytes) and file.name == "d.bin"
    with pytest.raises(Exception, match="2 files"):
        svc.apis["both"]([b"only one"])
