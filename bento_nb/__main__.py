"""``python -m bento_nb`` is the ``bento-nb`` CLI."""

from .cli import main

raise SystemExit(main())
