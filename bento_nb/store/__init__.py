"""The local model store: versioned bundles on disk.

Layout under ``$BENTO_NB_HOME`` (see :mod:`bento_nb.config`)::

    repository/<Name>/<version>/bento.yml        person-readable manifest: lists every
                                                  other file with its sha256, and its own
                                                  ``digest``
                                /requirements.txt
                                /service.pkl      the service definition (cloudpickle)
                                /service.py       its source, when it is a class
                                /artifacts/...    the packed models
                                /README.md, Dockerfile
    repository/.tmp/                               bundles being written

One idea per module, each importing only those listed before it:

- :mod:`.tags` names, versions, ``Name:version`` tags, and "tag or path?"
- :mod:`.display` text for people: terminal-safe names, sizes
- :mod:`.hashing` sha256 of files, and of bytes as they are written
- :mod:`.filesystem` paths confined as text, links never followed, a full disk
- :mod:`.manifest` ``bento.yml``: read, checked, written, its digest
- :mod:`.bundle` :class:`Bundle`, the record of one saved bundle
- :mod:`.archive` the export archive: written, and checked member by member when read
- :mod:`.repository` :class:`Store` (save atomically, list, get, delete, export, import)
  and :func:`find_bundle`

This package exposes what the rest of bento_nb uses::

    store = Store()
    bundle = store.get("IrisClassifier:latest")
    print(bundle.tag, bundle.path, bundle.size)
"""

from .bundle import Bundle
from .display import human_size, printable
from .hashing import HashingWriter
from .manifest import MANIFEST, check_manifest
from .repository import ListEntry, Store, find_bundle
from .tags import Tag, looks_like_path, new_version, validate_name

__all__ = ["Bundle", "HashingWriter", "ListEntry", "MANIFEST", "Store", "Tag",
           "check_manifest", "find_bundle", "human_size", "looks_like_path", "new_version",
           "printable", "validate_name"]
