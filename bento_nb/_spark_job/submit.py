"""The script ``spark-submit`` runs for a bento_nb file-to-file job (see
:mod:`bento_nb.spark`); ``python -m bento_nb.spark --script`` prints its path.

It lives in a folder of its own: Python puts a script's folder first on ``sys.path``, and in
``bento_nb/`` itself the 0.x module ``bento_nb/types.py`` would shadow the standard
library's ``types``."""

from bento_nb.spark import main

if __name__ == "__main__":
    raise SystemExit(main())
