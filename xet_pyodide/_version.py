"""The package version: the bottom of the import graph, so any layer may read it (the wheel's
metadata takes it from here too, see pyproject.toml)."""

__version__ = "0.1.0"
