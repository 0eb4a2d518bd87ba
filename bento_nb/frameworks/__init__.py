"""Framework-specific artifacts (``bento_nb.frameworks.sklearn``), kept seed-compatible."""
