"""The store under faults: kill -9 during delete and export, several processes at once."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

import bento_nb
from bento_nb import _pickling
from bento_nb.store import repository as store_repository
from bento_nb.errors import BundleNotFound
from bento_nb.store import Store

ROW = [[5.1, 3.5, 1.4, 0.2]]

# Runs a store operation in a child with one step slowed down, prints STARTED at that
# step, and is killed there by the test.
_SLOWED = textwrap.dedent("""
    import sys, time, shutil, tarfile, bento_nb
    from bento_nb.store import Store
    op, tag, where = sys.argv[1], sys.argv[2], sys.argv[3]
    def stall(*a, **k):
        print("STARTED", flush=True); time.sleep(60)
    if op == "delete":
        shutil.rmtree = stall            # after the rename out of sight, before removal
        Store().delete(tag)
    else:
        real_add = tarfile.TarFile.addfile
        def slow_addfile(self, *a, **k):
            real_add(self, *a, **k); stall()
        tarfile.TarFile.addfile = slow_addfile
        Store().export(tag, where)
""")


def _kill_at_step(*args) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _SLOWED, *args], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "STARTED"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)


def test_kill_9_during_delete(iris_clf, bento_home):
    keep = bento_nb.pack(iris_clf, name="Keep")
    doomed = bento_nb.pack(iris_clf, name="Doomed")
    _kill_at_step("delete", doomed.tag, "-")
    assert [e.name for e in Store().list()] == ["Keep"]
    with pytest.raises(BundleNotFound):
        Store().get(doomed.tag)
    assert bento_nb.load(keep.tag).apis["predict"](ROW).tolist() == [0]
    bento_nb.pack(iris_clf, name="Next")  # the next writer removes the dead one's leftovers
    assert list((bento_home / "repository" / ".tmp").iterdir()) == []


def test_kill_9_during_export_leaves_no_half_archive(iris_bundle, tmp_path):
    target = tmp_path / "iris.tar.gz"
    _kill_at_step("export", iris_bundle.tag, str(target))
    assert not target.exists()
    assert Store().get(iris_bundle.tag).tag == iris_bundle.tag
    Store().export(iris_bundle.tag, target)  # and a later export works
    assert target.stat().st_size > 0


def test_a_bundle_deleted_while_loading_is_not_found_and_latest_moves_on(iris_clf, monkeypatch):
    older = bento_nb.pack(iris_clf, name="Moving")
    newer = bento_nb.pack(iris_clf, name="Moving")
    real_load = _pickling.load
    deleted = []

    def delete_then_load(bundle_dir, record):  # another process deletes it mid-load
        if not deleted:
            deleted.append(Store().delete(newer.tag))
        return real_load(bundle_dir, record)

    monkeypatch.setattr(_pickling, "load", delete_then_load)
    svc = bento_nb.load("Moving:latest")         # resolves again, to what is newest now
    assert svc.bundle.tag == older.tag and deleted
    deleted.clear()
    newer = bento_nb.pack(iris_clf, name="Moving")
    with pytest.raises(BundleNotFound, match="deleted while it was being loaded"):
        bento_nb.load(newer.tag)                  # a pinned version cannot move on


def test_list_skips_a_bundle_deleted_between_listdir_and_reading_it(iris_clf, monkeypatch):
    keep = bento_nb.pack(iris_clf, name="Keep")
    doomed = bento_nb.pack(iris_clf, name="Doomed")
    real_read = store_repository.read_manifest

    def delete_then_read(path):
        if path == doomed.path:
            Store().delete(doomed.tag)
        return real_read(path)

    monkeypatch.setattr(store_repository, "read_manifest", delete_then_read)
    assert [e.path for e in Store().list()] == [keep.path]


_WORKER = textwrap.dedent("""
    import sys, bento_nb
    from bento_nb.errors import BundleNotFound
    from bento_nb.store import Store
    from sklearn import svm, datasets
    X, y = datasets.load_iris(return_X_y=True)
    clf = svm.SVC().fit(X, y)
    me = sys.argv[1]
    sys.stdin.readline()
    for i in range(6):
        bundle = bento_nb.pack(clf, name="Shared", labels={"worker": me, "i": str(i)})
        assert bento_nb.load(bundle.tag).apis["predict"]([[5.1, 3.5, 1.4, 0.2]]).tolist() == [0]
        for entry in Store().list():
            assert entry.bundle is not None, entry.error
        try:
            bento_nb.load("Shared:latest")          # may vanish under us: a clean error only
        except BundleNotFound:
            pass
        if i % 2:
            Store().delete(bundle.tag)
    print("OK")
""")


def test_concurrent_pack_delete_list_from_several_processes():
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(n)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n in range(3)]
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [p.communicate(timeout=180) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0 and out.strip() == "OK", err
    bundles = Store().bundles("Shared")
    assert len(bundles) == 3 * 3  # each worker kept its even iterations
    for bundle in bundles:
        bento_nb.load(bundle.tag)
