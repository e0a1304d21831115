"""Noticing dock files and moving each through the archive pipeline, plus the
daemon and command-line wiring that ties the packages together."""
