"""The script ``spark-submit`` runs for a bento_nb file-to-file job (see
:mod:`bento_nb.spark`); ``python -m bento_nb.spark --script`` prints its path."""

from bento_nb.spark import main

if __name__ == "__main__":
    raise SystemExit(main())
