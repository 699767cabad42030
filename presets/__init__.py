"""Shipped presets: this folder is installed as the ``stereoconv.presets`` package (see pyproject.toml)."""
