"""Models whose answers tell their version apart, for the hot-swap and split tests.

``Offset(k).predict(rows)`` answers ``row[0] + k`` per row: a client that sent row ``i``
and got ``i + k`` knows which version answered, so an answer from the wrong version (or a
header that names another version than the one that computed it) is detectable. Kept
apart from the tests (imports numpy only): a bundle pickles this module by value.
"""

from __future__ import annotations

import numpy as np


class Offset:
    def __init__(self, k: float):
        self.k = k

    def predict(self, rows):
        return np.asarray(rows, dtype=float)[:, 0] + self.k


class BrokenOnLoad(Offset):
    """Packs (its example runs on the live object) but cannot be loaded back: as a model
    whose library is missing where it is served."""

    def __setstate__(self, state):
        raise RuntimeError("cannot restore the model: its weights file is missing")


class FailsOnceLoaded(Offset):
    """Packs and loads, but every call fails after loading: its example does not answer."""

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.loaded = True

    def predict(self, rows):
        if getattr(self, "loaded", False):
            raise ValueError("model weights are NaN after loading")
        return super().predict(rows)


class SlowOffset(Offset):
    """Takes ``delay`` seconds per call: a request is still in flight when a swap happens."""

    def __init__(self, k: float, delay: float):
        super().__init__(k)
        self.delay = delay

    def predict(self, rows):
        import time

        time.sleep(self.delay)
        return super().predict(rows)
