"""Versions in a real kernel: ``%bento serve NAME`` follows re-packs under load (0 failed,
0 wrong), a live-object server swaps when its variable is packed, the widget says what it
serves and why a version was refused; ``%bento serve A:v1 A:v2 --split`` shows both."""

from __future__ import annotations

from collections import Counter

import pytest
from polling import wait_for
from versioncheck import Client, Load

from .conftest import Kernel, error_outputs, kernel_env, shown_url

SETUP = """\
%load_ext bento_nb
import numpy as np
import bento_nb.notebook
from bento_nb.notebook.session import current

class Offset:
    def __init__(self, k):
        self.k = k
    def predict(self, rows):
        return np.asarray(rows, dtype=float)[:, 0] + self.k

class FailsOnceLoaded(Offset):
    def __setstate__(self, state):
        self.__dict__.update(state)
        self.loaded = True
    def predict(self, rows):
        if getattr(self, "loaded", False):
            raise ValueError("model weights are NaN after loading")
        return super().predict(rows)
"""


@pytest.fixture(scope="module")
def kernel(module_home):
    k = Kernel(module_home, kernel_env(module_home))
    k.run(SETUP)
    yield k
    k.shutdown()


def pack(k: Kernel, var: str, model: str, name: str) -> str:
    """``VAR = MODEL`` then ``%bento pack VAR``; the version packed."""
    k.run(f"{var} = {model}")
    outputs = k.magic(f"pack {var} --name {name} --example [[1.0,2.0]]")
    assert not error_outputs(outputs), k.text(outputs)
    return k.text(k.run("print(current().last_packed)")).strip().split(":")[1]


def widget_text(k: Kernel) -> str:
    return k.text(k.run("w = current().server_widgets[-1]; w.refresh(); print(w.stats_html.value)"))


def test_serve_name_swaps_to_a_repacked_version_under_load(kernel):
    k = kernel
    v1 = pack(k, "m", "Offset(1000)", "Off")
    _, port = shown_url(k.magic("serve Off --port 0"))
    offsets = {v1: 1000}
    with Load(port, offsets) as load:
        assert wait_for(lambda: load.count() > 200, 20), load.failed
        v2 = pack(k, "m", "Offset(2000)", "Off")  # retrained, packed again
        offsets[v2] = 2000
        assert wait_for(lambda: load.answered_by(v2), 10), Counter(load.versions)
    assert load.failed == [] and load.wrong == []
    assert Counter(load.versions)[v1] > 0
    assert wait_for(lambda: f"now serving {v2} (swapped at " in widget_text(k), 10)

    # a version whose example fails once loaded: not swapped in, the widget says why
    bad = pack(k, "m", "FailsOnceLoaded(5000)", "Off")
    assert wait_for(lambda: f"version {bad} was not swapped in: its example fails"
                    in widget_text(k), 10), widget_text(k)
    assert Client(port).post(4) == (200, v2, 2004)
    k.magic("stop all")


def test_a_live_object_server_swaps_when_its_variable_is_packed(kernel):
    k = kernel
    k.run("live = Offset(1000)")
    _, port = shown_url(k.magic("serve live --port 0"))
    client = Client(port)
    assert client.post(1) == (200, "live", 1001)
    v1 = pack(k, "live", "live", "LiveOff")  # the very object served, now a bundle
    assert wait_for(lambda: client.post(1) == (200, v1, 1001), 10)
    v2 = pack(k, "live", "Offset(3000)", "LiveOff")  # retrained and packed again
    assert wait_for(lambda: client.post(1) == (200, v2, 3001), 10)
    k.magic("stop all")


def test_serve_a_pinned_version_and_a_split(kernel):
    k = kernel
    v1 = pack(k, "s", "Offset(1000)", "Ab")
    v2 = pack(k, "s", "Offset(2000)", "Ab")
    _, pinned = shown_url(k.magic(f"serve Ab:{v1} --port 0"))
    outputs = k.magic(f"serve Ab:{v1} Ab:{v2} --split 90,10 --port 0")
    _, port = shown_url(outputs)
    client = Client(port)
    seen = Counter(client.post(i)[1] for i in range(300))
    assert set(seen) == {v1, v2} and seen[v1] > seen[v2], seen
    text = widget_text(k)
    assert v1 in text and v2 in text and "90%" in text and "10%" in text
    assert Client(pinned).post(2) == (200, v1, 1002)
    outputs = k.magic(f"serve Ab:{v1} Ab:{v2} --split 90 --port 0")
    assert "1 weight(s) for 2 version(s)" in k.text(outputs)
    k.magic("stop all")
