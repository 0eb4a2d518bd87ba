"""FileInput and MultiFileInput: uploaded files, from the body itself or from a
``multipart/form-data`` upload, handed to the API as :class:`FileLike` objects (as in
BentoML 0.x: ``.read()``, ``.name``, ``.stream``), which are also ``bytes``::

    f = FileInput().parse(b"\\x89PNG...", "image/png").value
    f.read()[:4], f[:4], f.name          # b'\\x89PNG', b'\\x89PNG', None

    MultiFileInput(input_names=("image", "meta")).parse(body, "multipart/form-data; ...")
    # value: (FileLike, FileLike), one per input name; the API is called with one
    # argument per name (a list of files each, for a batch=True API)
"""

from __future__ import annotations

import io
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, Sequence

from ..errors import BadInput
from .base import InputAdapter, Payload, _media_type


class FileLike(bytes):
    """An uploaded file: its bytes (a ``bytes`` subclass, so code written for bytes keeps
    working), readable as a stream (``read``, ``seek``, ``readline``, ``stream``), with the
    upload's file ``name`` (None for a raw body)."""

    name: str | None

    def __new__(cls, data: bytes = b"", name: str | None = None) -> "FileLike":
        self = super().__new__(cls, data)
        self.name = name
        self._stream = None
        return self

    @property
    def stream(self) -> io.BytesIO:
        if self._stream is None:
            self._stream = io.BytesIO(self)
        return self._stream

    @property
    def bytes_(self) -> bytes:
        return bytes(self)

    def read(self, size: int = -1) -> bytes:
        return self.stream.read(size)

    def readline(self, size: int = -1) -> bytes:
        return self.stream.readline(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.stream.seek(offset, whence)

    def tell(self) -> int:
        return self.stream.tell()

    def close(self) -> None:
        """Nothing to release: the bytes stay readable."""

    def __reduce__(self) -> tuple:
        return (FileLike, (bytes(self), self.name))

    def __repr__(self) -> str:
        return f"<FileLike name={self.name!r} {len(self)} bytes>"


def multipart_files(body: bytes, content_type: str | None) -> list[tuple[str | None, FileLike]]:
    """The parts of a ``multipart/form-data`` body as ``(field name, file)``, in order;
    BadInput when it holds none."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + (content_type or "").encode("latin-1", "replace")
        + b"\r\n\r\n" + body)
    parts = []
    for part in message.iter_parts() if message.is_multipart() else ():
        data = part.get_payload(decode=True)
        if data is not None:
            field = part.get_param("name", header="content-disposition")
            parts.append((field, FileLike(data, part.get_filename())))
    if not parts:
        raise BadInput("multipart body holds no file part")
    return parts


def as_file(value: Any) -> FileLike:
    """An in-process argument (bytes, str, a path-less stream or a FileLike) as a FileLike."""
    if isinstance(value, FileLike):
        return value
    if isinstance(value, str):
        return FileLike(value.encode())
    if hasattr(value, "read"):
        return FileLike(value.read(), getattr(value, "name", None))
    try:
        return FileLike(bytes(value))
    except TypeError:
        raise BadInput(f"expected bytes or a file, got {type(value).__name__}") from None


class FileInput(InputAdapter):
    """One file: the body itself, or the first file of a ``multipart/form-data`` body, as a
    :class:`FileLike` (readable like a stream, and ``bytes``)."""

    kind = "file"
    media_types = ("application/octet-stream", "multipart/form-data")

    def example_body(self, value: Any) -> Any:
        raise BadInput("a file API takes no documented example (examples are JSON or text)")

    def parse(self, body: bytes, content_type: str | None = None) -> Payload:
        if _media_type(content_type) == "multipart/form-data":
            return Payload(multipart_files(body, content_type)[0][1])
        return Payload(FileLike(body))

    def from_python(self, value: Any) -> Payload:
        return Payload(as_file(value))

    def openapi_request(self, example: Any = None) -> dict:
        return {"required": True, "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "file": {"type": "string", "format": "binary"}}}},
        }}


class MultiFileInput(InputAdapter):
    """Several named files of one ``multipart/form-data`` request (``input_names``, as in
    BentoML 0.x): the API is called with one argument per name, a :class:`FileLike` each
    (``batch=False``) or a list of them (``batch=True``). A missing name is a 400 unless
    ``allow_none=True`` (it is then None)."""

    kind = "multi_file"
    media_types = ("multipart/form-data",)
    spreads_arguments = True

    def __init__(self, input_names: Sequence[str] = ("file",), allow_none: bool = False):
        if isinstance(input_names, str):
            input_names = (input_names,)
        self.input_names = tuple(str(n) for n in input_names)
        if not self.input_names:
            raise ValueError("input_names must name at least one file field")
        self.allow_none = bool(allow_none)

    def example_body(self, value: Any) -> Any:
        raise BadInput("a file API takes no documented example (examples are JSON or text)")

    def _files(self, body: bytes, content_type: str | None) -> tuple:
        if _media_type(content_type) != "multipart/form-data":
            raise BadInput(f"send the files {list(self.input_names)} as multipart/form-data "
                           f"fields (got {_media_type(content_type) or 'no content type'})")
        by_name = {}
        for field, file in multipart_files(body, content_type):
            by_name.setdefault(field, file)
        missing = [n for n in self.input_names if n not in by_name]
        if missing and not self.allow_none:
            raise BadInput(f"multipart body lacks the field(s) {missing}; expected "
                           f"{list(self.input_names)}")
        return tuple(by_name.get(n) for n in self.input_names)

    def parse(self, body: bytes, content_type: str | None = None) -> Payload:
        return Payload(self._files(body, content_type))

    def from_python(self, value: Any) -> Payload:
        if isinstance(value, dict):
            value = [value.get(n) for n in self.input_names]
        value = tuple(value)
        if len(value) != len(self.input_names):
            raise BadInput(f"expected {len(self.input_names)} files {list(self.input_names)}, "
                           f"got {len(value)}")
        return Payload(tuple(None if v is None else as_file(v) for v in value))

    def make_batch(self, payloads: Sequence[Payload]) -> Any:
        return tuple(list(files) for files in zip(*(p.value for p in payloads)))

    def config(self) -> dict:
        return {"type": type(self).__name__, "input_names": list(self.input_names),
                "allow_none": self.allow_none}

    def openapi_request(self, example: Any = None) -> dict:
        return {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": [] if self.allow_none else list(self.input_names),
            "properties": {n: {"type": "string", "format": "binary"} for n in self.input_names}}}}}
