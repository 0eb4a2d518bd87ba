"""Framework artifacts, one module per framework, as in BentoML 0.x::

    from bento_nb.frameworks.xgboost import XgboostModelArtifact
    from bento_nb.frameworks.pytorch import PytorchModelArtifact

Each saves its model in the framework's own format and imports its framework only when
used: importing bento_nb (or this package) never imports torch or tensorflow.
"""
