"""Issue 10 item 1: the model store against crafted archives, edited manifests, symbolic
links, a full disk and hand-made folder names.

Every attack goes through what a user runs (``Store().import_`` / ``bento-nb import``,
``bento_nb.load`` / ``bento-nb run``, ``bento-nb list``, ``bento-nb delete``, ``pack``) and
asserts on what the user would notice: a one-line error of the documented class, no file
written or deleted outside the store, nothing half-imported inside it."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import yaml

import bento_nb
from bento_nb.errors import BundleCorrupted, DiskFull, StoreError, UnsafeArchive
from bento_nb.store import MANIFEST, Store

ROW = [[5.1, 3.5, 1.4, 0.2]]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bento_nb", *args], capture_output=True,
                          text=True, timeout=120)


def assert_one_line_error(out: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert out.returncode == code, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bento-nb: error: "), out.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


def members_of(archive: Path) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    with tarfile.open(archive) as tar:
        return [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]


def write_archive(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def member(name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    return info, data if kind in (tarfile.REGTYPE, tarfile.AREGTYPE) else None


def edit_manifest(text: bytes, change) -> bytes:
    manifest = yaml.safe_load(text)
    change(manifest)
    return yaml.safe_dump(manifest, sort_keys=False).encode()


def store_is_untouched(home: Path) -> bool:
    """No bundle and no leftover under ``home/repository`` (the ``.tmp`` folder may exist)."""
    repository = home / "repository"
    if not repository.exists():
        return True
    return [p.name for p in repository.iterdir()] in ([], [".tmp"]) and \
        not any((repository / ".tmp").iterdir() if (repository / ".tmp").exists() else [])


@pytest.fixture
def exported(iris_bundle, tmp_path, monkeypatch):
    """(archive of a real bundle, the bundle); the store is then switched to an empty one."""
    archive = Store().export(iris_bundle.tag, tmp_path / "iris.tar.gz")
    monkeypatch.setenv("BENTO_NB_HOME", str(tmp_path / "importing_home"))
    return archive, iris_bundle


# -- import: member names, types, counts, sizes ------------------------------------------


def test_double_slash_member_cannot_write_outside_the_store(exported, tmp_path):
    archive, bundle = exported
    outside = tmp_path / "outside" / "x"
    outside.parent.mkdir()
    evil = members_of(archive) + [member(f"{bundle.name}/{bundle.version}/{outside}", b"pwned")]
    assert f"{bundle.version}//" in evil[-1][0].name
    crafted = write_archive(tmp_path / "evil.tar.gz", evil)
    out = cli("import", str(crafted))
    assert_one_line_error(out, UnsafeArchive.exit_code, "refusing member", "not a plain relative path")
    assert not outside.exists()
    assert store_is_untouched(tmp_path / "importing_home")


@pytest.mark.parametrize("name, kind", [
    ("{p}/./service.pkl", tarfile.REGTYPE),
    ("{p}/artifacts\\model.pkl", tarfile.REGTYPE),
    ("{p}/", tarfile.REGTYPE),
    ("{p}/fifo", tarfile.FIFOTYPE),
    ("{p}/tty", tarfile.CHRTYPE),
    ("{p}/contiguous", tarfile.CONTTYPE),
    ("{p}/\x1b[2J", tarfile.REGTYPE),
])
def test_odd_member_names_and_types_are_refused(name, kind, exported, tmp_path):
    archive, bundle = exported
    crafted = write_archive(tmp_path / "evil.tar.gz", members_of(archive) + [
        member(name.format(p=f"{bundle.name}/{bundle.version}"), b"x", kind)])
    with pytest.raises(UnsafeArchive, match="refusing member"):
        Store().import_(crafted)
    assert store_is_untouched(tmp_path / "importing_home")


def test_a_member_that_comes_twice_is_refused(exported, tmp_path):
    archive, bundle = exported
    prefix = f"{bundle.name}/{bundle.version}"
    crafted = write_archive(tmp_path / "twice.tar.gz", members_of(archive) + [
        member(f"{prefix}/requirements.txt", b"evil-package==6.6.6\n")])
    with pytest.raises(UnsafeArchive, match="comes twice"):
        Store().import_(crafted)
    assert store_is_untouched(tmp_path / "importing_home")


def test_members_the_manifest_does_not_list_are_refused(exported, tmp_path):
    archive, bundle = exported
    prefix = f"{bundle.name}/{bundle.version}"
    crafted = write_archive(tmp_path / "junk.tar.gz", members_of(archive) + [
        member(f"{prefix}/junk.bin", b"\0" * (4 << 20))])   # 4 MiB of zeros: a few KB packed
    assert crafted.stat().st_size < 20_000
    out = cli("import", str(crafted))
    assert_one_line_error(out, UnsafeArchive.exit_code, "junk.bin", "does not list it")
    assert store_is_untouched(tmp_path / "importing_home")


def test_member_count_is_bounded(exported, tmp_path):
    archive, bundle = exported
    prefix = f"{bundle.name}/{bundle.version}"
    many = members_of(archive) + [member(f"{prefix}/m{i}", b"") for i in range(10_001)]
    crafted = write_archive(tmp_path / "many.tar.gz", many)
    with pytest.raises(UnsafeArchive, match="more than 10,000 members"):
        Store().import_(crafted)
    assert store_is_untouched(tmp_path / "importing_home")


def test_total_size_is_bounded_by_the_headers_before_any_read(exported, tmp_path):
    archive, bundle = exported
    prefix = f"{bundle.name}/{bundle.version}"
    huge = tarfile.TarInfo(f"{prefix}/artifacts/model.pkl")
    huge.size = 100 << 30  # a header that claims 100 GiB; the archive is a few KB
    entries = [(m, d) for m, d in members_of(archive) if m.name != huge.name]
    with tarfile.open(tmp_path / "huge.tar.gz", "w:gz") as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
        tar.addfile(huge)  # header only
    with pytest.raises(UnsafeArchive, match="add up to more than 64.0 GB"):
        Store().import_(tmp_path / "huge.tar.gz")
    small = Store().import_(archive, max_bytes=1 << 30)  # the bound is a parameter
    assert small.tag == bundle.tag
    Store().delete(small.tag)
    with pytest.raises(UnsafeArchive, match="add up to more than 1.0 KB"):
        Store().import_(archive, max_bytes=1024)
    assert [e.tag for e in Store().bundles()] == []


# -- manifests: confined paths, digest over bento.yml and requirements.txt --------------


def _strip_digest(bundle_dir: Path, change=lambda m: None) -> None:
    """Edit a bundle's manifest the way the previous version wrote it (no digest)."""
    manifest = yaml.safe_load((bundle_dir / MANIFEST).read_text())
    manifest.pop("digest", None)
    change(manifest)
    (bundle_dir / MANIFEST).write_text(yaml.safe_dump(manifest, sort_keys=False))


def test_a_manifest_cannot_point_into_another_bundle(iris_clf):
    victim = bento_nb.pack(lambda rows: ["other bundle's pickle"] * len(rows), name="Other")
    evil = bento_nb.pack(iris_clf, name="Evil")
    other_record = yaml.safe_load((victim.path / MANIFEST).read_text())["artifacts"][0]

    def point_elsewhere(manifest):
        manifest["artifacts"][0].update(
            file=f"../../Other/{victim.version}/artifacts/model.pkl",
            sha256=other_record["sha256"], size=other_record["size"])

    _strip_digest(evil.path, point_elsewhere)
    with pytest.raises(BundleCorrupted, match=r"field 'artifacts\[0\].file' must be a relative "
                                              r"path inside the bundle"):
        bento_nb.load(evil.tag)
    out = cli("run", evil.tag, "predict", "--input", "[[5.1,3.5,1.4,0.2]]")
    assert_one_line_error(out, BundleCorrupted.exit_code, "artifacts[0].file")
    assert out.stdout == ""


@pytest.mark.parametrize("path", ["/etc/passwd", "artifacts//model.pkl", "./service.pkl",
                                  "artifacts\\model.pkl", "", "a/" * 9 + "x"])
def test_every_path_a_manifest_names_is_confined(path, iris_bundle):
    _strip_digest(iris_bundle.path, lambda m: m["service"].update(file=path))
    with pytest.raises(BundleCorrupted, match="field 'service.file'"):
        bento_nb.load(iris_bundle.tag)


def test_requirements_txt_and_bento_yml_are_covered_by_the_digest(iris_clf):
    tampered_requirements = bento_nb.pack(iris_clf, name="Reqs")
    with open(tampered_requirements.path / "requirements.txt", "a") as f:
        f.write("evil-package==6.6.6\n")
    with pytest.raises(BundleCorrupted, match="checksum mismatch in requirements.txt"):
        bento_nb.load(tampered_requirements.tag)

    tampered_manifest = bento_nb.pack(iris_clf, name="Yml")
    text = (tampered_manifest.path / MANIFEST).read_text()
    (tampered_manifest.path / MANIFEST).write_text(
        text.replace("requirements:\n", "requirements:\n- evil-package==6.6.6\n", 1))
    with pytest.raises(BundleCorrupted, match="bento.yml does not match its digest"):
        bento_nb.load(tampered_manifest.tag)
    out = cli("run", tampered_manifest.tag, "predict", "--input", "[[5.1,3.5,1.4,0.2]]")
    assert_one_line_error(out, BundleCorrupted.exit_code, "does not match its digest")
    entries = {e.name: e for e in Store().list()}
    assert "digest" in entries["Yml"].error and entries["Reqs"].bundle is not None


def test_a_tampered_requirements_txt_in_an_archive_is_refused(exported, tmp_path):
    archive, _bundle = exported
    entries = [(m, d + b"evil-package==6.6.6\n" if m.name.endswith("/requirements.txt") else d)
               for m, d in members_of(archive)]
    with pytest.raises(BundleCorrupted, match="requirements.txt"):
        Store().import_(write_archive(tmp_path / "reqs.tar.gz", entries))
    assert store_is_untouched(tmp_path / "importing_home")


def test_a_manifest_pointing_outside_in_an_archive_is_refused(exported, tmp_path):
    archive, _bundle = exported

    def escape(manifest):
        manifest.pop("digest")
        manifest["service"]["file"] = "../../../../etc/passwd"

    entries = [(m, edit_manifest(d, escape) if m.name.endswith("/bento.yml") else d)
               for m, d in members_of(archive)]
    with pytest.raises(BundleCorrupted, match="field 'service.file'"):
        Store().import_(write_archive(tmp_path / "escape.tar.gz", entries))
    assert store_is_untouched(tmp_path / "importing_home")


def test_bundles_and_archives_of_the_previous_version_still_load_and_import(iris_bundle, tmp_path,
                                                                           monkeypatch):
    # The previous version wrote no `files` and no `digest`, and exported the whole folder
    # (folders included) with tar.add.
    _strip_digest(iris_bundle.path, lambda m: m.pop("files", None))
    assert bento_nb.load(iris_bundle.tag).apis["predict"](ROW).tolist() == [0]
    old_style = tmp_path / "old.tar.gz"
    with tarfile.open(old_style, "w:gz") as tar:
        tar.add(iris_bundle.path, arcname=f"{iris_bundle.name}/{iris_bundle.version}")
    monkeypatch.setenv("BENTO_NB_HOME", str(tmp_path / "other"))
    imported = Store().import_(old_style)
    assert (imported.path / "requirements.txt").is_file() and (imported.path / "Dockerfile").is_file()
    assert bento_nb.load(imported.tag).apis["predict"](ROW).tolist() == [0]
    exported = Store().export(imported.tag, tmp_path / "again.tar.gz")  # and it exports again
    with tarfile.open(exported) as tar:
        assert f"{imported.name}/{imported.version}/README.md" in tar.getnames()


# -- malformed manifests: BundleCorrupted naming the field, in load, run and serve -------


@pytest.mark.parametrize("change, field", [
    (lambda m: m.update(artifacts="model.pkl"), "'artifacts' must be a list"),
    (lambda m: m["apis"][0]["input"].update(no_such_option=1), "'apis[0].input'"),
    (lambda m: m["apis"][0].update(input={"type": "NoSuchInput"}), "'apis[0].input'"),
    (lambda m: m["artifacts"][0].update(size="big"), "'artifacts[0].size'"),
    (lambda m: m.update(service=["service.pkl"]), "'service' must be a mapping"),
    (lambda m: m.update(labels="owner"), "'labels' must be a mapping"),
])
def test_a_malformed_manifest_is_bundle_corrupted_naming_the_field(change, field, iris_bundle):
    _strip_digest(iris_bundle.path, change)
    with pytest.raises(BundleCorrupted, match=field.replace("[", r"\[").replace("]", r"\]")):
        bento_nb.load(iris_bundle.tag)
    out = cli("run", iris_bundle.tag, "predict", "--input", "[[5.1,3.5,1.4,0.2]]")
    assert_one_line_error(out, BundleCorrupted.exit_code, field)
    out = cli("serve", iris_bundle.tag, "--port", "0")
    assert_one_line_error(out, BundleCorrupted.exit_code, field)


def test_yaml_aliases_are_refused(iris_bundle):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi"))
    (iris_bundle.path / MANIFEST).write_text(bomb + "name: X\nversion: v\n")
    with pytest.raises(BundleCorrupted, match="aliases are not allowed"):
        bento_nb.load(iris_bundle.tag)


# -- symbolic links inside the store ------------------------------------------------------


def test_cleaning_never_follows_a_symlinked_tmp_folder(iris_clf, bento_home, tmp_path):
    victim = tmp_path / "victim"
    (victim / "Precious.999999999.cafe").mkdir(parents=True)  # looks like a dead writer's dir
    (victim / "Precious.999999999.cafe" / "data.txt").write_text("keep me")
    (bento_home / "repository").mkdir()
    (bento_home / "repository" / ".tmp").symlink_to(victim, target_is_directory=True)
    with pytest.raises(StoreError, match="symbolic link"):
        bento_nb.pack(iris_clf, name="Iris")
    with pytest.raises(StoreError, match="symbolic link"):
        Store().clean_leftovers()
    assert (victim / "Precious.999999999.cafe" / "data.txt").read_text() == "keep me"


def test_links_inside_tmp_are_removed_not_followed(iris_clf, bento_home, tmp_path):
    victim = tmp_path / "victim"
    (victim / "sub").mkdir(parents=True)
    (victim / "sub" / "data.txt").write_text("keep me")
    bento_nb.pack(iris_clf, name="First")
    leftover = bento_home / "repository" / ".tmp" / "Dead.999999999.beef"
    leftover.symlink_to(victim, target_is_directory=True)
    bento_nb.pack(iris_clf, name="Second")  # cleans leftovers
    assert not os.path.lexists(leftover)
    assert (victim / "sub" / "data.txt").read_text() == "keep me"


def test_delete_never_goes_through_a_symlinked_name_folder(iris_bundle, bento_home, tmp_path):
    outside = tmp_path / "outside"
    shutil.copytree(iris_bundle.path, outside / iris_bundle.version)
    (bento_home / "repository" / "Linked").symlink_to(outside, target_is_directory=True)
    out = cli("delete", f"Linked:{iris_bundle.version}", "-y")
    assert_one_line_error(out, StoreError.exit_code, "symbolic link")
    out = cli("delete", "Linked", "-y")
    assert_one_line_error(out, StoreError.exit_code, "symbolic link")
    with pytest.raises(StoreError):
        bento_nb.load("Linked")
    assert (outside / iris_bundle.version / MANIFEST).is_file()
    listed = {e.name: e for e in Store().list()}
    assert "symbolic link" in listed["Linked"].error and listed[iris_bundle.name].bundle


def test_a_symlinked_version_folder_is_never_followed(iris_bundle, bento_home, tmp_path):
    outside = tmp_path / "outside_version"
    shutil.copytree(iris_bundle.path, outside)
    link = iris_bundle.path.parent / "99999999_000000_000_ffffff"  # would be the newest
    link.symlink_to(outside, target_is_directory=True)
    with pytest.raises(StoreError, match="symbolic link"):
        Store().delete(iris_bundle.name)
    assert (outside / MANIFEST).is_file() and iris_bundle.path.is_dir()


def test_a_symlinked_file_inside_a_bundle_is_corrupted(iris_bundle, tmp_path):
    outside = tmp_path / "requirements.txt"
    shutil.copy(iris_bundle.path / "requirements.txt", outside)
    (iris_bundle.path / "requirements.txt").unlink()
    (iris_bundle.path / "requirements.txt").symlink_to(outside)
    with pytest.raises(BundleCorrupted, match="requirements.txt is not a regular file"):
        bento_nb.load(iris_bundle.tag)


# -- bento-nb list: hand-made folder names --------------------------------------------------


def test_list_escapes_control_characters_in_folder_names(iris_bundle, bento_home):
    evil = bento_home / "repository" / "\x1b[31mRed\x1b]0;owned\x07"
    (evil / "v\x1b[2J").mkdir(parents=True)
    out = cli("list")
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout
    assert "\\x1b[31mRed" in out.stdout and iris_bundle.tag in out.stdout
    assert "not a valid bundle name" in out.stdout


# -- a full disk ----------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MiB file system (tmpfs), mounted for the test; root only."""
    mount = tmp_path / "small_disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs",
                                            str(mount)], capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_pack_on_a_full_disk_is_one_error_and_leaves_nothing(small_disk, monkeypatch):
    monkeypatch.setenv("BENTO_NB_HOME", str(small_disk))
    weights = np.ones(300_000)  # 2.4 MB: more than the disk holds
    with pytest.raises(DiskFull, match="no space left on device") as caught:
        bento_nb.pack(lambda rows: weights[: len(rows)], name="Big")
    assert "\n" not in caught.value.message
    assert Store().list() == []
    assert list((small_disk / "repository" / ".tmp").iterdir()) == []
    assert bento_nb.pack(lambda rows: [1] * len(rows), name="Small").tag  # and space is back


def test_export_and_import_on_a_full_disk_are_one_error_and_leave_nothing(tmp_path, small_disk,
                                                                       monkeypatch):
    noise = np.random.default_rng(0).random(300_000)  # 2.4 MB that gzip cannot shrink
    big = bento_nb.pack(lambda rows, w=noise: w[: len(rows)], name="Big")
    out = cli("export", big.tag, str(small_disk / "big.tar.gz"))
    assert_one_line_error(out, DiskFull.exit_code, "no space left")
    assert list(small_disk.iterdir()) == []
    archive = Store().export(big.tag, tmp_path / "big.tar.gz")
    monkeypatch.setenv("BENTO_NB_HOME", str(small_disk / "home"))
    out = cli("import", str(archive))
    assert_one_line_error(out, DiskFull.exit_code, "nothing was written")
    assert store_is_untouched(small_disk / "home")
