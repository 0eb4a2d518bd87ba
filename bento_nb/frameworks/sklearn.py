"""scikit-learn models: ``SklearnModelArtifact('model')``, as in BentoML 0.x.

Saved like any pickle (large arrays out-of-band); checked at pack time to be a fitted-looking
estimator with ``predict``. Its ``n_features_in_`` / ``feature_names_in_`` tell a
:class:`~bento_nb.adapters.DataframeInput` what width of row to accept, and
:func:`takes_numbers` whether the row must be numbers.
"""

from __future__ import annotations

from pathlib import Path
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

    def modules(self, bundle_dir: Path, record: dict) -> set[str]:
        """What the pickle refers to, and scikit-learn always (as 0.x's artifact did): the
        scikit-learn API of another library (``lightgbm.LGBMRegressor``) imports it to
        load and predict while its pickle names only that library's module."""
        return super().modules(bundle_dir, record) | {"sklearn"}


# Steps that take raw columns of any type: they choose what to do with each column.
_ANY_COLUMNS = ("ColumnTransformer", "FunctionTransformer")


def takes_numbers(model: Any) -> bool | None:
    """Whether a fitted scikit-learn model takes only numbers: True when what first sees the
    input (the first step of a Pipeline, the best estimator of a search) is a scikit-learn
    estimator that validates its input as numeric; False when it is documented to take
    other values (encoders, text vectorizers, column transformers, function transformers);
    None when it cannot be told (another library, or a meta-estimator that passes its input
    on to estimators of its own, which may be anything)."""
    for _ in range(100):  # a pipeline of pipelines, never a cycle
        if hasattr(model, "steps") and isinstance(model.steps, list) and model.steps:
            steps = [s for _, s in model.steps if s is not None and s != "passthrough"]
            if not steps:
                return None
            model = steps[0]
        elif hasattr(model, "best_estimator_"):
            model = model.best_estimator_
        else:
            break
    module = type(model).__module__
    if not module.startswith("sklearn."):
        return None
    if type(model).__name__ in _ANY_COLUMNS or module.startswith("sklearn.feature_extraction"):
        return False
    try:
        from sklearn.utils import get_tags

        tags = get_tags(model).input_tags
        if tags.categorical or tags.string or tags.dict:
            return False
        params = model.get_params(deep=False)
    except Exception:  # noqa: BLE001 - an older scikit-learn or a broken estimator: unknown
        return None
    if any(hasattr(v, "fit") for v in _flatten(params.values())):
        return None  # a meta-estimator: its estimators see the input
    return True


def _flatten(values):
    for value in values:
        if isinstance(value, (list, tuple)):
            yield from _flatten(value)
        else:
            yield value
