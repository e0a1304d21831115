"""Typed settings for Strongroom: a TOML file plus STRONGROOM_* environment variables.

Nothing here talks to the network or the disk beyond reading the config file;
every other package receives a :class:`config.settings.Settings` instance.
"""
