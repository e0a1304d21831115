"""Typed settings for Strongroom: a TOML file plus STRONGROOM_* environment variables.

Nothing here talks to the network or the disk beyond reading the config file;
every other package receives a :class:`config.settings.Settings` instance.
``config.errors`` holds the error base every package derives from (this is the
bottom layer, so all of them can).
"""
