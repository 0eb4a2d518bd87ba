"""Calls a lower layer makes into a higher one it may not import (imports flow one way:
server → service, never back).

The package root (``bento_nb/__init__.py``, imported before any of its modules) fills each
hook in; a caller finds it set whenever ``bento_nb`` is importable::

    from .. import hooks
    handle = hooks.serve_in_process(svc, port=5000)   # bento_nb.serve: a server thread

``serve_in_process(target, port=..., host=..., **options)``: what ``bento_nb.serve``
does (:func:`bento_nb.server.serve`): serve ``target`` from a thread of this process and
return its handle; ``svc.start_dev_server()`` (:mod:`bento_nb.service.compat`) uses it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

serve_in_process: Callable[..., Any] | None = None
