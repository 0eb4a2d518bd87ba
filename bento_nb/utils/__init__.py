"""BentoML 0.x's ``bentoml.utils`` names that user code imports.

    from bento_nb.utils import cached_property

    class Service(BentoService):
        @cached_property
        def labels(self): ...        # computed once per instance, then an attribute
"""

from __future__ import annotations

from typing import Any, Callable


class cached_property:
    """A method computed on first access and stored on the instance (as
    :func:`functools.cached_property`, without its lock: a service class using it is
    pickled into the bundle, and a lock cannot be pickled)."""

    def __init__(self, func: Callable[[Any], Any]):
        self.func = func
        self.attrname: str | None = None
        self.__doc__ = func.__doc__
        self.__module__ = func.__module__

    def __set_name__(self, owner: type, name: str) -> None:
        self.attrname = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        name = self.attrname or self.func.__name__
        value = self.func(instance)
        instance.__dict__[name] = value
        return value


__all__ = ["cached_property"]
