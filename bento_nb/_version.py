"""The version of bento_nb, in the one place every module (and the build) reads it."""

__version__ = "0.1.0"
