"""ImageInput and MultiImageInput on a real server: image bodies and multipart uploads
reach the API as H x W x C uint8 arrays; what is no image (or not an accepted format) is a
400 naming the problem; concurrent distinct images each get their own answer."""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from netcheck import exchange, multipart

Image = pytest.importorskip("PIL.Image")

from bento_nb import BentoService, api  # noqa: E402
from bento_nb.adapters import (AnnotatedImageInput, ImageInput,  # noqa: E402
                               MultiImageInput, adapter_from_config)


def image_bytes(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def picture(seed: int, height: int = 6, width: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def describe(image: np.ndarray) -> dict:
    return {"shape": list(image.shape), "dtype": str(image.dtype), "sum": int(image.sum())}


class ImageService(BentoService):
    @api(input=ImageInput(), batch=True)
    def predict(self, images):
        # a batch is one array: images of one shape stacked on axis 0
        assert isinstance(images, np.ndarray) and images.ndim == 4
        return [describe(image) for image in images]

    @api(input=ImageInput(accept_image_formats=[".png", ".jpg"], pilmode="L"), batch=False)
    def gray(self, image):
        return describe(image)

    @api(input=AnnotatedImageInput(), batch=True)
    def annotated(self, images, annotations):
        return [{**describe(i), "notes": a} for i, a in zip(images, annotations)]

    @api(input=MultiImageInput(input_names=("left", "right")), batch=True)
    def pair(self, lefts, rights):
        return [[describe(a), describe(b)] for a, b in zip(lefts, rights)]


@pytest.fixture
def server(serve_model):
    handle = serve_model(ImageService())

    def post(route: str, body: bytes, content_type: str):
        return exchange("127.0.0.1", handle.port, "POST", f"/{route}", body, content_type)

    return post


def test_png_and_jpeg_bodies_reach_the_api_as_uint8_arrays(server):
    array = picture(1)
    answer = server("predict", image_bytes(array), "image/png")
    assert answer.status == 200, answer.body
    assert answer.json() == describe(array)
    jpeg = server("predict", image_bytes(array, "JPEG"), "image/jpeg")
    assert jpeg.status == 200, jpeg.body
    assert jpeg.json()["shape"] == [6, 5, 3] and jpeg.json()["dtype"] == "uint8"


def test_a_multipart_upload_is_decoded(server):
    array = picture(2)
    body, content_type = multipart({"image_file": ("cat.png", image_bytes(array))})
    answer = server("predict", body, content_type)
    assert answer.status == 200, answer.body
    assert answer.json() == describe(array)


def test_bytes_that_are_no_image_get_a_400_naming_it(server):
    answer = server("predict", b"this is not a picture", "image/png")
    assert answer.status == 400, answer.body
    assert answer.headers["content-type"].startswith("application/json")
    assert "not an image" in answer.json()["error"]["message"]


def test_a_truncated_image_gets_a_400(server):
    answer = server("predict", image_bytes(picture(3))[:40], "image/png")
    assert answer.status == 400, answer.body
    assert "image" in answer.json()["error"]["message"]


def test_accept_image_formats_refuses_a_gif(server):
    gif = image_bytes(picture(4), "GIF")
    answer = server("gray", gif, "image/gif")
    assert answer.status == 400, answer.body
    assert "image format GIF is not accepted" in answer.json()["error"]["message"]
    body, content_type = multipart({"image": ("photo.gif", gif)})
    named = server("gray", body, content_type)
    assert named.status == 400 and "'photo.gif'" in named.json()["error"]["message"]


def test_pilmode_converts_the_image(server):
    answer = server("gray", image_bytes(picture(5)), "image/png")
    assert answer.status == 200, answer.body
    assert answer.json()["shape"] == [6, 5]


def test_64_concurrent_distinct_images_each_get_their_own_answer(server):
    # two sizes: images of different shapes must never be stacked together
    arrays = [picture(100 + i, 6 + i % 2, 5) for i in range(64)]
    assert len({a.tobytes() for a in arrays}) == 64

    def one(i: int):
        return server("predict", image_bytes(arrays[i]), "image/png")

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one, range(64)))
    for i, answer in enumerate(answers):
        assert answer.status == 200, (i, answer.body)
        assert answer.json() == describe(arrays[i]), i


def test_multi_image_input_calls_the_api_with_one_argument_per_name(server):
    left, right = picture(7), picture(8, 4, 4)
    body, content_type = multipart({"right": ("r.png", image_bytes(right)),
                                    "left": ("l.png", image_bytes(left))})
    answer = server("pair", body, content_type)
    assert answer.status == 200, answer.body
    assert answer.json() == [describe(left), describe(right)]
    body, content_type = multipart({"left": ("l.png", image_bytes(left))})
    missing = server("pair", body, content_type)
    assert missing.status == 400 and "'right'" in missing.json()["error"]["message"]


def test_image_adapters_are_rebuilt_from_their_config():
    adapter = ImageInput(accept_image_formats=["png"], pilmode="L")
    again = adapter_from_config(json.loads(json.dumps(adapter.config())))
    assert isinstance(again, ImageInput)
    assert again.accept_image_formats == (".png",) and again.pilmode == "L"
    multi = adapter_from_config(MultiImageInput(input_names=("a", "b")).config())
    assert multi.input_names == ("a", "b")
    with pytest.raises(TypeError, match="MultiImageInput"):
        ImageInput(input_names=("a",))


def test_annotated_image_input_gives_the_image_and_its_annotations(server):
    array = picture(9)
    body, content_type = multipart({"image": ("a.png", image_bytes(array)),
                                    "annotations": ("a.json", b'{"boxes": [[1, 2, 3, 4]]}')})
    answer = server("annotated", body, content_type)
    assert answer.status == 200, answer.body
    assert answer.json() == {**describe(array), "notes": {"boxes": [[1, 2, 3, 4]]}}
    body, content_type = multipart({"image": ("a.png", image_bytes(array))})
    assert server("annotated", body, content_type).json()["notes"] is None
    body, content_type = multipart({"image": ("a.png", image_bytes(array)),
                                    "annotations": ("a.json", b"{not json")})
    bad = server("annotated", body, content_type)
    assert bad.status == 400 and "annotations: malformed JSON" in bad.json()["error"]["message"]
