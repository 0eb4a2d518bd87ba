"""The options of BentoML 0.13's ``@env``, checked: each is honoured or refused by name.

:func:`bento_nb.service.env` takes the options bento_nb honours (requirements, the Docker
base image, a setup script); every other 0.x option arrives here and is refused with a
one-line :class:`~bento_nb.errors.PackError` naming it, unless it is empty (``None``,
``[]``, ``False``: the 0.x default), so user code never loses a setting silently::

    @env(conda_dependencies=["faiss"])   # PackError: conda_dependencies is not supported...
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import PackError

# 0.13 option -> why it is refused and what to write instead
_REFUSED = {
    "conda_dependencies": "bento_nb images use pip; list them in pip_packages",
    "conda_channels": "bento_nb images use pip, not conda; drop it",
    "conda_env_yml_file": "bento_nb images use pip; list the packages in pip_packages",
    "conda_override_channels": "bento_nb images use pip, not conda; drop it",
    "conda_overwrite_channels": "bento_nb images use pip, not conda; drop it",
    "pip_index_url": "set PIP_INDEX_URL in a setup_sh script or in the build environment",
    "pip_extra_index_url": "set PIP_EXTRA_INDEX_URL in a setup_sh script or in the build environment",
    "pip_trusted_host": "set PIP_TRUSTED_HOST in a setup_sh script or in the build environment",
    "zipimport_archives": "put the code in a local module next to the service file instead",
}


def check_unsupported(options: dict[str, Any]) -> None:
    """Refuse any non-empty option bento_nb does not honour, naming it."""
    for name, value in options.items():
        if value in (None, False, "", [], (), {}):
            continue
        reason = _REFUSED.get(name)
        if reason is None:
            raise PackError(f"@env({name}=...) is not an option of @env; see help(bento_nb.env)")
        raise PackError(f"{name} is not supported: {reason}")


def read_requirements_txt(path: str | os.PathLike) -> list[str]:
    """The requirements a requirements.txt lists (comments and blank lines skipped). Pip
    options (``-r``, ``--index-url``...) are refused by name: they would be lost."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise PackError(f"requirements_txt_file {os.fspath(path)!r} cannot be read: "
                        f"{e.strerror or e}") from None
    requirements = []
    for number, line in enumerate(lines, 1):
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            raise PackError(f"requirements_txt_file {os.fspath(path)}:{number}: pip option "
                            f"{line.split()[0]!r} is not supported; list requirements only")
        requirements.append(line)
    return requirements


def read_setup_sh(value: str) -> str:
    """``setup_sh`` as 0.13 takes it: the path of a shell script, or the script itself."""
    if not isinstance(value, str):
        raise PackError(f"setup_sh expects a script or its path, got {type(value).__name__}")
    if "\n" not in value and os.path.isfile(value):
        with open(value, encoding="utf-8") as f:
            return f.read()
    if "\n" not in value.strip() and value.strip().endswith(".sh"):
        raise PackError(f"setup_sh file {value!r} not found")
    return value


def check_base_image(reference: str) -> None:
    """A Docker image reference fit for the Dockerfile's ``FROM`` line."""
    if not isinstance(reference, str) or not reference.strip():
        raise PackError("docker_base_image expects an image name, e.g. python:3.11-slim")
    if any(c.isspace() for c in reference):
        raise PackError(f"docker_base_image {reference!r} is not an image name: it contains whitespace")
