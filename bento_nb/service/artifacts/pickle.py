"""BentoML 0.13's ``bentoml.service.artifacts.pickle``.

    from bento_nb.service.artifacts.pickle import PickleArtifact
"""

from . import PickleArtifact

__all__ = ["PickleArtifact"]
