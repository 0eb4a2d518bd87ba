"""The model store: names, atomic saves, checksums, archives, faults."""

from __future__ import annotations

import gzip
import io
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

import bento_nb
from bento_nb.errors import BundleCorrupted, BundleNotFound, InvalidName, UnsafeArchive, UsageError
from bento_nb.store import Store, Tag, new_version

ROW = [[5.1, 3.5, 1.4, 0.2]]


@pytest.mark.parametrize("name", ["../x", "a/b", "", "x" * 64, ".hidden", "a b", "a:b", "..", "é"])
def test_bad_names_are_refused_before_any_disk_write(name, iris_clf, bento_home):
    with pytest.raises(InvalidName):
        bento_nb.pack(iris_clf, name=name)
    assert not (bento_home / "repository").exists()


def test_longest_valid_name_is_accepted(iris_clf):
    bundle = bento_nb.pack(iris_clf, name="N" * 63)
    assert bundle.name == "N" * 63


@pytest.mark.parametrize("tag", ["Iris:../x", "Iris:a/b", "../Iris:latest", ":v1", "Iris:" + "v" * 64,
                                 "Iris:"])
def test_bad_tags_are_refused(tag):
    with pytest.raises(InvalidName):
        Store().get(tag)


def test_empty_version_is_refused_not_taken_for_latest(iris_bundle):
    with pytest.raises(InvalidName, match="empty version after ':'; use IrisClassifier or "
                                          "IrisClassifier:latest"):
        Tag.parse("IrisClassifier:")
    with pytest.raises(InvalidName):
        bento_nb.load("IrisClassifier:")


def test_tags_latest_and_versions_sort_by_creation(iris_clf):
    first = bento_nb.pack(iris_clf, name="Iris")
    second = bento_nb.pack(iris_clf, name="Iris")
    assert first.version < second.version
    store = Store()
    assert store.get("Iris").version == second.version
    assert store.get("Iris:latest").version == second.version
    assert store.get(f"Iris:{first.version}").version == first.version
    assert [b.version for b in store.bundles("Iris")] == [first.version, second.version]
    assert new_version(1.0) < new_version(2.0)
    assert str(Tag.parse("Iris")) == "Iris:latest"


def test_missing_bundle_is_a_clear_error():
    with pytest.raises(BundleNotFound, match="no bundle named 'Nope'"):
        Store().get("Nope")


def test_manifest_is_readable_and_complete(iris_bundle):
    manifest = (iris_bundle.path / "bento.yml").read_text()
    for key in ("name: IrisClassifier", "version:", "created_at:", "python_version:",
                "apis:", "route: /predict", "artifacts:", "sha256:", "requirements:", "labels:"):
        assert key in manifest
    assert "type: SklearnModelArtifact" in manifest
    for file in ("requirements.txt", "README.md", "Dockerfile", "service.pkl", "artifacts/model.pkl"):
        assert (iris_bundle.path / file).is_file(), file


def test_requirements_are_pinned_from_real_imports_only(iris_bundle):
    from importlib.metadata import version

    reqs = (iris_bundle.path / "requirements.txt").read_text().split()
    assert f"scikit-learn=={version('scikit-learn')}" in reqs
    assert f"numpy=={version('numpy')}" in reqs
    joined = " ".join(reqs).lower()
    for unwanted in ("tornado", "jupyter", "ipywidgets", "ipython", "pytest", "bento"):
        assert unwanted not in joined


def test_user_requirements_override_inferred(iris_clf):
    bundle = bento_nb.pack(iris_clf, name="Iris", requirements=["numpy>=1.20", "requests==2.0"])
    reqs = bundle.requirements
    assert "numpy>=1.20" in reqs and "requests==2.0" in reqs
    assert not any(r.startswith("numpy==") for r in reqs)


def test_flipped_byte_names_the_file(iris_bundle):
    artifact = iris_bundle.path / "artifacts" / "model.pkl"
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    with pytest.raises(BundleCorrupted, match="artifacts/model.pkl"):
        bento_nb.load(iris_bundle.tag)


def test_corrupt_manifest_hides_only_that_bundle(iris_clf):
    good = bento_nb.pack(iris_clf, name="Good")
    bad = bento_nb.pack(iris_clf, name="Bad")
    (bad.path / "bento.yml").write_text("name: [unclosed\n")
    gone = bento_nb.pack(iris_clf, name="Gone")
    (gone.path / "bento.yml").unlink()
    entries = {e.name: e for e in Store().list()}
    assert entries["Good"].bundle is not None
    assert "not valid YAML (expected ',' or ']', but got '<stream end>' at line 2, column 1)" \
        in entries["Bad"].error
    assert "\n" not in entries["Bad"].error
    assert "no bento.yml" in entries["Gone"].error
    with pytest.raises(BundleCorrupted):
        bento_nb.load("Bad")
    assert bento_nb.load(good.tag).apis["predict"](ROW).tolist() == [0]


def test_delete(iris_clf):
    a = bento_nb.pack(iris_clf, name="Iris")
    b = bento_nb.pack(iris_clf, name="Iris")
    Store().delete(b.tag)
    assert Store().get("Iris").version == a.version
    Store().delete("Iris")
    with pytest.raises(BundleNotFound):
        Store().get("Iris")


def test_export_import_into_another_home_predicts_identically(iris_clf, iris, tmp_path, monkeypatch):
    X, _ = iris
    bundle = bento_nb.pack(iris_clf, name="Iris")
    archive = Store().export(bundle.tag, tmp_path / "iris.tar.gz")
    expected = bento_nb.load(bundle.tag).apis["predict"](X.tolist())
    other = tmp_path / "other_home"
    monkeypatch.setenv("BENTO_NB_HOME", str(other))
    imported = Store().import_(archive)
    assert imported.tag == bundle.tag
    assert imported.path.is_relative_to(other)
    got = bento_nb.load(bundle.tag).apis["predict"](X.tolist())
    assert got.tolist() == expected.tolist()
    with pytest.raises(InvalidName, match="already exists"):
        Store().import_(archive)


def _archive(tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    path = tmp_path / "crafted.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


@pytest.mark.parametrize("evil", [
    lambda: [_file("Iris/v1/bento.yml"), _file("Iris/v1/../../../escaped.txt")],
    lambda: [_file("Iris/v1/bento.yml"), _file("/tmp/escaped.txt")],
    lambda: [_file("../escaped.txt")],
    lambda: [_file("Iris/v1/bento.yml"), _link("Iris/v1/link", "/etc/passwd", tarfile.SYMTYPE)],
    lambda: [_file("Iris/v1/bento.yml"), _link("Iris/v1/hard", "/etc/passwd", tarfile.LNKTYPE)],
    lambda: [_file("Iris/v1/bento.yml"), _file("Other/v1/bento.yml")],
])
def test_crafted_archives_are_refused_and_write_nothing(evil, tmp_path, bento_home):
    archive = _archive(tmp_path, evil())
    before = set(tmp_path.rglob("*"))
    with pytest.raises(UnsafeArchive):
        Store().import_(archive)
    assert set(tmp_path.rglob("*")) == before
    assert not Path("/tmp/escaped.txt").exists()
    repository = bento_home / "repository"
    assert not repository.exists() or not list(repository.glob("Iris*"))


def _link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def test_not_an_archive(tmp_path):
    bogus = tmp_path / "bogus.tar.gz"
    bogus.write_bytes(b"not a tar")
    with pytest.raises(UnsafeArchive, match=r"bogus.tar.gz: not a bento_nb archive \(not a gzip'd tar file\)$"):
        Store().import_(bogus)


def test_missing_or_truncated_archive(iris_bundle, tmp_path, monkeypatch):
    with pytest.raises(BundleNotFound, match="no such file: .*missing.tar.gz"):
        Store().import_(tmp_path / "missing.tar.gz")
    archive = Store().export(iris_bundle.tag, tmp_path / "iris.tar.gz")
    archive.write_bytes(archive.read_bytes()[:-100])
    monkeypatch.setenv("BENTO_NB_HOME", str(tmp_path / "other"))
    with pytest.raises(BundleCorrupted, match="damaged or truncated archive"):
        Store().import_(archive)
    assert Store().list() == []


@pytest.mark.parametrize("name, header", [
    ("iris.tar.gz", b"iris.tar"), ("iris.tgz", b"iris.tgz"), ("iris.bento", b"iris.bento")])
def test_export_suffixes_and_the_name_in_the_gzip_header(name, header, iris_bundle, tmp_path):
    archive = Store().export(iris_bundle.tag, tmp_path / name)
    data = archive.read_bytes()
    assert data[3] & 0x08  # FNAME: gzip keeps the archive's own name, not the temp file's
    assert data[10:data.index(b"\0", 10)] == header  # (minus .gz, as gzip does)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    with tarfile.open(archive) as tar:
        assert f"{iris_bundle.name}/{iris_bundle.version}/bento.yml" in tar.getnames()


def test_export_refuses_bad_targets_before_writing(iris_bundle, tmp_path):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(UsageError, match="must end in .tar.gz, .tgz or .bento"):
        Store().export(iris_bundle.tag, tmp_path / "iris.zip")
    with pytest.raises(UsageError, match="it is a directory"):
        Store().export(iris_bundle.tag, tmp_path)
    with pytest.raises(UsageError, match="missing does not exist"):
        Store().export(iris_bundle.tag, tmp_path / "missing" / "iris.tar.gz")
    with pytest.raises(UsageError, match="file.txt is not a folder"):
        Store().export(iris_bundle.tag, tmp_path / "file.txt" / "iris.tar.gz")
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]
    (tmp_path / "iris.tar.gz").write_text("an older file")  # an existing file is replaced
    assert tarfile.is_tarfile(Store().export(iris_bundle.tag, tmp_path / "iris.tar.gz"))


def test_archive_with_tampered_file_is_refused(iris_bundle, tmp_path, monkeypatch):
    archive = Store().export(iris_bundle.tag, tmp_path / "iris.tar.gz")
    data = bytearray(gzip.decompress(archive.read_bytes()))
    marker = data.find(b"sklearn")
    data[marker] ^= 0x20
    archive.write_bytes(gzip.compress(bytes(data)))
    monkeypatch.setenv("BENTO_NB_HOME", str(tmp_path / "other"))
    with pytest.raises(BundleCorrupted):
        Store().import_(archive)
    assert Store().list() == []


def test_large_arrays_are_out_of_band_and_memory_mapped(tmp_path):
    weights = np.arange(4_000_000, dtype=np.float64)  # 32 MB

    class Big:
        def __init__(self, w):
            self.w = w

        def predict(self, df):
            return df.sum(axis=1) + self.w[1]

    bundle = bento_nb.pack(Big(weights), name="Big", input="dataframe")
    buffers = bundle.path / "artifacts" / "model.buffers"
    assert buffers.stat().st_size >= weights.nbytes
    assert (bundle.path / "artifacts" / "model.pkl").stat().st_size < 100_000
    svc = bento_nb.load("Big")
    loaded = svc.artifacts.model.w
    assert not loaded.flags.owndata  # a view on the mapped file, not a copy
    np.testing.assert_array_equal(loaded, weights)
    loaded[0] = 42.0  # copy-on-write: the bundle on disk is unchanged
    bento_nb.load("Big")  # checksums still hold
    assert svc.apis["predict"]([[1, 2]]).tolist() == [4.0]


_SLOW_PACK = textwrap.dedent("""
    import os, sys, numpy as np, bento_nb
    from bento_nb import _pickling
    real_dump = _pickling.dump
    def slow_dump(*args, **kwargs):
        record = real_dump(*args, **kwargs)
        print("WRITING", flush=True)
        import time; time.sleep(30)
        return record
    _pickling.dump = slow_dump
    bento_nb.pack(np.zeros(10), name="Victim", apis=["sum"], input="json")
""")


def test_kill_9_mid_save_leaves_no_visible_bundle(tmp_path, iris_clf, bento_home):
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_PACK], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "WRITING"
        tmp_dirs = list((bento_home / "repository" / ".tmp").iterdir())
        assert tmp_dirs, "the half-written bundle should sit in .tmp while being written"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert Store().list() == []
    with pytest.raises(BundleNotFound):
        Store().get("Victim")
    bento_nb.pack(iris_clf, name="After")  # the next writer cleans the dead one's leftovers
    assert [e.name for e in Store().list()] == ["After"]
    assert list((bento_home / "repository" / ".tmp").iterdir()) == []


_PACK_ONE = textwrap.dedent("""
    import sys, bento_nb
    from sklearn import svm, datasets
    X, y = datasets.load_iris(return_X_y=True)
    clf = svm.SVC().fit(X, y)
    print("ready", flush=True)
    sys.stdin.readline()   # start together
    print(bento_nb.pack(clf, name="Twin").tag)
""")


def test_two_processes_packing_one_name_get_two_valid_versions():
    procs = [subprocess.Popen([sys.executable, "-c", _PACK_ONE], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    assert [p.stdout.readline() for p in procs] == ["ready\n"] * 2  # both about to pack
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    tags = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(set(tags)) == 2
    for tag in tags:
        assert bento_nb.load(tag).apis["predict"](ROW).tolist() == [0]
    assert len(Store().bundles("Twin")) == 2


def test_store_root_follows_environment(bento_home, iris_clf):
    bundle = bento_nb.pack(iris_clf, name="Iris")
    assert bundle.path.is_relative_to(bento_home / "repository" / "Iris")
    assert os.environ["BENTO_NB_HOME"] == str(bento_home)
