"""scikit-learn models: ``SklearnModelArtifact('model')``, as in BentoML 0.x.

Saved like any pickle (large arrays out-of-band); checked at pack time to be a fitted-looking
estimator with ``predict``. Its ``n_features_in_`` / ``feature_names_in_`` tell a
:class:`~bento_nb.adapters.DataframeInput` what width of row to accept.
"""

from __future__ import annotations

from typing import Any

from ..service.artifacts import PickleArtifact
from ..errors import PackError


class SklearnModelArtifact(PickleArtifact):
    """A scikit-learn estimator or pipeline."""

    def check(self, obj: Any) -> Any:
        if not hasattr(obj, "predict") and not hasattr(obj, "transform"):
            raise PackError(
                f"artifact {self.name!r}: expected a scikit-learn estimator with predict() "
                f"or transform(), got {type(obj).__name__}")
        return obj
