"""BentoML 0.13's ``bentoml.service.artifacts.common``: the framework-free artifacts.

    from bento_nb.service.artifacts.common import PickleArtifact, JSONArtifact
"""

from . import JSONArtifact, PickleArtifact, TextFileArtifact

__all__ = ["JSONArtifact", "PickleArtifact", "TextFileArtifact"]
