"""ImageInput and MultiImageInput: uploaded images decoded with Pillow into ``imageio``-style
numpy arrays (height × width × channels, ``uint8``), as in BentoML 0.x::

    ImageInput().parse(png_bytes, "image/png").value.shape          # (28, 28, 3)
    ImageInput(accept_image_formats=[".png"]).parse(gif_bytes, "image/gif")
    # BadInput: image format GIF is not accepted: send one of .png

The body is the image itself, or the first file of a ``multipart/form-data`` upload.
A ``batch=True`` API receives the images of a batch stacked on axis 0 (N × H × W × C):
only images of the same shape share a call (each payload's ``columns`` is its shape,
which the dispatcher groups by), so every request gets its own answer back.
"""

from __future__ import annotations

import io
import warnings
from typing import Any, Sequence

import numpy as np

from ..errors import BadInput
from .base import InputAdapter, Payload, _media_type
from .file_input import FileLike, as_file, multipart_files

# As BentoML 0.x's get_default_accept_image_formats: the extensions Pillow reads.
_DEFAULT_FORMATS = (".bmp", ".gif", ".ico", ".jpeg", ".jpg", ".png", ".ppm", ".tif",
                    ".tiff", ".webp")


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise BadInput("this server cannot read images: pip install pillow") from None
    return Image


def _formats(accept: Sequence[str] | None) -> tuple[str, ...]:
    if accept is None:
        return _DEFAULT_FORMATS
    if isinstance(accept, str):
        accept = [accept]
    out = []
    for ext in accept:
        ext = str(ext).lower().strip()
        out.append(ext if ext.startswith(".") else f".{ext}")
    if not out:
        raise ValueError("accept_image_formats must name at least one format, e.g. ['.png']")
    return tuple(out)


def decode_image(file: FileLike, accept: tuple[str, ...], pilmode: str,
                 field: str = "image") -> np.ndarray:
    """``file`` as an H × W × C (or H × W for ``pilmode='L'``) array; BadInput naming the
    problem when it is no image, or not one of the ``accept``-ed formats."""
    Image = _pillow()
    name = getattr(file, "name", None)
    if name and "." in name and not name.lower().endswith(accept):
        raise BadInput(f"{field} {name!r}: file type is not accepted: send one of "
                       f"{', '.join(accept)}")
    if not len(file):
        raise BadInput(f"{field}: empty body: send the image's bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(file))
            kind = image.format or "?"
            extensions = {e for e, f in Image.registered_extensions().items() if f == kind}
            if not extensions & set(accept):
                raise BadInput(f"{field}: image format {kind} is not accepted: send one of "
                               f"{', '.join(accept)}")
            array = np.asarray(image.convert(pilmode))
    except BadInput:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadInput(f"{field}: the image has too many pixels (more than "
                       f"{Image.MAX_IMAGE_PIXELS:,})") from None
    except Image.UnidentifiedImageError:
        raise BadInput(f"{field}: the body is not an image Pillow can read (send PNG, JPEG, "
                       f"...: one of {', '.join(accept)})") from None
    except (OSError, ValueError, SyntaxError) as e:  # truncated or corrupt image data
        raise BadInput(f"{field}: the image could not be decoded: {e}") from None
    return array


class ImageInput(InputAdapter):
    """One image per request → a numpy array (H × W × C, ``uint8``); ``pilmode`` as
    Pillow's ``Image.convert`` ("RGB", "L", "RGBA", ...); ``accept_image_formats``: the
    extensions accepted (default: what Pillow commonly reads)."""

    kind = "image"
    media_types = ("image/*", "multipart/form-data")

    def __init__(self, accept_image_formats: Sequence[str] | None = None, pilmode: str = "RGB",
                 **options: Any):
        if "input_names" in options:
            raise TypeError("ImageInput takes no input_names; use MultiImageInput for several "
                            "images per request")
        if options:
            raise TypeError(f"ImageInput got unexpected option(s) {sorted(options)}")
        self.accept_image_formats = _formats(accept_image_formats)
        self.pilmode = str(pilmode)

    def _decode(self, file: FileLike) -> Payload:
        array = decode_image(file, self.accept_image_formats, self.pilmode)
        return Payload(array, columns=("image", *array.shape))

    def parse(self, body: bytes, content_type: str | None = None) -> Payload:
        if _media_type(content_type) == "multipart/form-data":
            return self._decode(multipart_files(body, content_type)[0][1])
        return self._decode(FileLike(body))

    def from_python(self, value: Any) -> Payload:
        if isinstance(value, np.ndarray):
            return Payload(value, columns=("image", *value.shape))
        return self._decode(as_file(value))

    def make_batch(self, payloads: Sequence[Payload]) -> Any:
        return np.stack([p.value for p in payloads])

    def example_body(self, value: Any) -> Any:
        raise BadInput("an image API takes no documented example (examples are JSON or text)")

    def config(self) -> dict:
        return {"type": type(self).__name__, "accept_image_formats": list(self.accept_image_formats),
                "pilmode": self.pilmode}

    def openapi_request(self, example: Any = None) -> dict:
        return {"required": True, "content": {
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "image_file": {"type": "string", "format": "binary"}}}},
        }}


class MultiImageInput(InputAdapter):
    """Several named images per ``multipart/form-data`` request (``input_names``, as in
    BentoML 0.x): the API is called with one argument per name, an array each
    (``batch=False``) or a tuple of arrays (``batch=True``)."""

    kind = "multi_image"
    media_types = ("multipart/form-data",)
    spreads_arguments = True

    def __init__(self, input_names: Sequence[str] = ("image",), pilmode: str = "RGB",
                 accept_image_formats: Sequence[str] | None = None):
        if isinstance(input_names, str):
            input_names = (input_names,)
        self.input_names = tuple(str(n) for n in input_names)
        if not self.input_names:
            raise ValueError("input_names must name at least one image field")
        self.pilmode = str(pilmode)
        self.accept_image_formats = _formats(accept_image_formats)

    def parse(self, body: bytes, content_type: str | None = None) -> Payload:
        if _media_type(content_type) != "multipart/form-data":
            raise BadInput(f"send the images {list(self.input_names)} as multipart/form-data "
                           f"fields (got {_media_type(content_type) or 'no content type'})")
        by_name: dict = {}
        for field, file in multipart_files(body, content_type):
            by_name.setdefault(field, file)
        missing = [n for n in self.input_names if n not in by_name]
        if missing:
            raise BadInput(f"multipart body lacks the image field(s) {missing}; expected "
                           f"{list(self.input_names)}")
        return Payload(tuple(decode_image(by_name[n], self.accept_image_formats, self.pilmode, n)
                             for n in self.input_names))

    def from_python(self, value: Any) -> Payload:
        if isinstance(value, dict):
            value = [value[n] for n in self.input_names]
        return Payload(tuple(v if isinstance(v, np.ndarray) else
                             decode_image(as_file(v), self.accept_image_formats, self.pilmode, n)
                             for n, v in zip(self.input_names, value)))

    def make_batch(self, payloads: Sequence[Payload]) -> Any:
        return tuple(tuple(images) for images in zip(*(p.value for p in payloads)))

    def example_body(self, value: Any) -> Any:
        raise BadInput("an image API takes no documented example (examples are JSON or text)")

    def config(self) -> dict:
        return {"type": type(self).__name__, "input_names": list(self.input_names),
                "pilmode": self.pilmode, "accept_image_formats": list(self.accept_image_formats)}

    def openapi_request(self, example: Any = None) -> dict:
        return {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": list(self.input_names),
            "properties": {n: {"type": "string", "format": "binary"} for n in self.input_names}}}}}


class AnnotatedImageInput(InputAdapter):
    """An image plus optional JSON annotations in one ``multipart/form-data`` request
    (BentoML 0.x's ``AnnotatedImageInput``): the API is called with ``(image, annotations)``
    (``batch=False``) or ``(images, annotations)`` tuples (``batch=True``); annotations
    are None when the field is absent."""

    kind = "annotated_image"
    media_types = ("multipart/form-data",)
    spreads_arguments = True

    def __init__(self, image_input_name: str = "image", annotation_input_name: str = "annotations",
                 pilmode: str = "RGB", accept_image_formats: Sequence[str] | None = None):
        self.image_input_name = str(image_input_name)
        self.annotation_input_name = str(annotation_input_name)
        self.pilmode = str(pilmode)
        self.accept_image_formats = _formats(accept_image_formats)

    def parse(self, body: bytes, content_type: str | None = None) -> Payload:
        from .decoding import loads_json

        if _media_type(content_type) != "multipart/form-data":
            raise BadInput(f"send the image as multipart/form-data field "
                           f"{self.image_input_name!r} (got "
                           f"{_media_type(content_type) or 'no content type'})")
        by_name: dict = {}
        for field, file in multipart_files(body, content_type):
            by_name.setdefault(field, file)
        if self.image_input_name not in by_name:
            raise BadInput(f"multipart body lacks the image field {self.image_input_name!r}")
        image = decode_image(by_name[self.image_input_name], self.accept_image_formats,
                             self.pilmode, self.image_input_name)
        notes = by_name.get(self.annotation_input_name)
        try:
            annotations = None if notes is None else loads_json(bytes(notes))
        except BadInput as e:
            raise BadInput(f"{self.annotation_input_name}: {e.message}") from None
        return Payload((image, annotations))

    def from_python(self, value: Any) -> Payload:
        image, annotations = value
        if not isinstance(image, np.ndarray):
            image = decode_image(as_file(image), self.accept_image_formats, self.pilmode)
        return Payload((image, annotations))

    def make_batch(self, payloads: Sequence[Payload]) -> Any:
        return (tuple(p.value[0] for p in payloads), tuple(p.value[1] for p in payloads))

    def example_body(self, value: Any) -> Any:
        raise BadInput("an image API takes no documented example (examples are JSON or text)")

    def config(self) -> dict:
        return {"type": type(self).__name__, "image_input_name": self.image_input_name,
                "annotation_input_name": self.annotation_input_name, "pilmode": self.pilmode,
                "accept_image_formats": list(self.accept_image_formats)}

    def openapi_request(self, example: Any = None) -> dict:
        return {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": [self.image_input_name], "properties": {
                self.image_input_name: {"type": "string", "format": "binary"},
                self.annotation_input_name: {"type": "string", "format": "binary",
                                             "description": "JSON annotations"}}}}}}
