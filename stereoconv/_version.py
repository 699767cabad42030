"""The package's version, apart from the package's ``__init__`` so that any module can read it without importing the
public API (which loads the drivers)."""

__version__ = "0.1.0"
