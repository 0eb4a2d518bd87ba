"""``@web_static_content``: the folder travels in the bundle and a real server serves its
files under ``/`` (native routes first), and nothing outside it, whatever the path."""

from __future__ import annotations

import os

import pytest

import bento_nb
from bento_nb import BentoService, api
from bento_nb.adapters import JsonInput
from bento_nb.errors import BundleCorrupted, PackError

from .conftest import post_json, request


@pytest.fixture
def ui(tmp_path, monkeypatch):
    """A UI folder next to a secret file, defined from its parent folder (a relative path)."""
    (tmp_path / "secret.txt").write_text("top secret")
    folder = tmp_path / "static"
    (folder / "css").mkdir(parents=True)
    (folder / "docs").mkdir()
    (folder / "index.html").write_text("<h1>My UI</h1>")
    (folder / "css" / "app.css").write_text("h1 { color: red }")
    (folder / "app.js").write_text("console.log(1)")
    (folder / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    (folder / "docs" / "index.html").write_text("<p>user docs</p>")
    (folder / "healthz").write_text("shadowed")
    monkeypatch.chdir(tmp_path)
    return folder


def _service():
    @bento_nb.web_static_content("./static")
    class WithUI(BentoService):
        @api(input=JsonInput())
        def predict(self, value):
            return value

    return WithUI()


def test_the_folder_is_served_under_root_from_the_bundle(ui, serve_model, tmp_path):
    bundle = _service().save_bundle()
    listed = {r["file"]: r for r in bundle.manifest["files"]}
    assert bundle.manifest["web_static_content"] == "web_static_content"
    assert "web_static_content/css/app.css" in listed and "web_static_content/logo.png" in listed
    (ui / "index.html").write_text("changed after saving")  # the bundle has its own copy
    handle = serve_model(bento_nb.load(bundle.tag))
    url = handle.url

    root = request(url + "/")
    assert root.status == 200 and root.body == b"<h1>My UI</h1>"
    assert root.headers["content-type"] == "text/html; charset=utf-8"
    css = request(url + "/css/app.css")
    assert css.body == b"h1 { color: red }" and css.headers["content-type"].startswith("text/css")
    assert request(url + "/app.js").headers["content-type"].split(";")[0] in (
        "application/javascript", "text/javascript")
    png = request(url + "/logo.png")
    assert png.headers["content-type"] == "image/png" and png.body.endswith(bytes(range(256)))
    # native routes keep priority: the API, /healthz, /docs and the Swagger files
    assert post_json(url + "/predict", {"a": 1}).json() == {"a": 1}
    assert request(url + "/healthz").json() == {"status": "ok"}
    docs = request(url + "/docs")
    assert docs.status == 200 and b"swagger-ui" in docs.body
    assert request(url + "/docs.json").json()["paths"]
    assert request(url + "/static/swagger-ui/swagger-ui.css").status == 200
    assert request(url + "/docs/").body == b"<p>user docs</p>"  # a folder's index.html
    missing = request(url + "/nope.html")
    assert missing.status == 404 and missing.json()["error"]["type"] == "NotFound"
    assert request(url + "/", method="HEAD").status == 200


@pytest.mark.parametrize("target", [
    "/../secret.txt", "/css/../../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt",
    "/css/%2e%2e/%2e%2e/secret.txt", "//etc/passwd", "/%2fetc%2fpasswd", "/..\\secret.txt",
    "/static/../secret.txt", "/index.html%00.png", "/web_static_content/index.html/..",
])
def test_no_path_reaches_outside_the_folder(ui, serve_model, target):
    handle = serve_model(bento_nb.load(_service().save_bundle().tag))
    answer = request(handle.url + target)
    assert answer.status in (400, 404), (target, answer)
    assert b"top secret" not in answer.body and b"root:" not in answer.body


def test_a_link_in_the_folder_is_refused_when_saving(ui):
    os.symlink(ui.parent / "secret.txt", ui / "leak.txt")
    svc = _service()
    with pytest.raises(PackError, match="leak.txt is a symbolic link"):
        svc.save_bundle()
    assert bento_nb.list_bundles() == []


def test_a_link_or_file_planted_in_the_bundle_is_not_served(ui, serve_model):
    bundle = _service().save_bundle()
    folder = bundle.path / "web_static_content"
    os.symlink(ui.parent / "secret.txt", folder / "planted.txt")
    (folder / "unlisted.txt").write_text("top secret, put there after saving")
    os.unlink(folder / "app.js")
    os.symlink(ui.parent / "secret.txt", folder / "app.js")  # a listed file swapped for a link
    with pytest.raises(BundleCorrupted):
        bento_nb.load(bundle.tag)  # verified on load: the listed file is now a link
    handle = serve_model(bento_nb.load(bundle.tag, verify=False))
    for target in ("/planted.txt", "/app.js", "/unlisted.txt"):
        answer = request(handle.url + target)
        assert answer.status == 404 and b"top secret" not in answer.body, target


def test_a_missing_folder_is_a_one_line_error_at_definition(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PackError, match="web_static_content: './ui' is not a folder"):
        bento_nb.web_static_content("./ui")


def test_without_an_index_root_stays_swagger(ui, serve_model):
    os.unlink(ui / "index.html")
    handle = serve_model(bento_nb.load(_service().save_bundle().tag))
    assert b"swagger-ui" in request(handle.url + "/").body
    assert request(handle.url + "/css/app.css").status == 200
