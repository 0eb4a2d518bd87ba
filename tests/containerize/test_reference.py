"""Image names are checked against Docker's reference grammar before Docker is reached."""

from __future__ import annotations

import pytest

from bento_nb.containerize.reference import default_image, split_image, validate_image
from bento_nb.errors import InvalidName


@pytest.mark.parametrize("name", [
    "iris", "iris:1", "iris-classifier:latest", "library/iris:1.0.2", "a__b", "a.b_c-d--e",
    "localhost:5000/iris:dev", "registry.example.com/team/iris:2026-11_a", "Registry.io/x/iris",
    "iris:" + "t" * 128, "127.0.0.1:5000/iris",
])
def test_valid_names_pass_unchanged(name):
    assert validate_image(name) == name


@pytest.mark.parametrize("name, reason", [
    ("", "empty"),
    ("Iris:1", "lowercase"),
    ("iris:1 ", "whitespace"),
    ("iris::1", "not a valid"),
    ("iris:-dev", "tag"),
    ("iris:" + "t" * 129, "tag"),
    ("-iris", "path component"),
    ("iris-", "path component"),
    ("ir__._is", "path component"),
    ("team//iris", "path component"),
    ("/iris", "path component"),
    ("iris@sha256:" + "a" * 64, "digest"),
    ("a" * 256, "255"),
    ("bad_host:99x/iris", "registry host"),
])
def test_invalid_names_give_one_line_reason(name, reason):
    with pytest.raises(InvalidName) as info:
        validate_image(name)
    assert reason in info.value.message
    assert "\n" not in info.value.message


def test_digest_allowed_only_where_asked():
    ref = "registry.example.com/iris@sha256:" + "0" * 64
    assert validate_image(ref, allow_digest=True) == ref
    with pytest.raises(InvalidName):
        validate_image("iris@sha256:xyz", allow_digest=True)


@pytest.mark.parametrize("name, version, expected", [
    ("IrisClassifier", "20261124_143000_123_9f3a1c", "irisclassifier:20261124_143000_123_9f3a1c"),
    ("my.model_", "v1", "my.model:v1"),
    ("a-_b..c", "1.0", "a-b-c:1.0"),
    ("___", "1", "bento:1"),
])
def test_default_image_is_always_valid(name, version, expected):
    assert default_image(name, version) == expected


def test_split_image():
    assert split_image("localhost:5000/iris") == ("localhost:5000/iris", "latest")
    assert split_image("localhost:5000/iris:7") == ("localhost:5000/iris", "7")
