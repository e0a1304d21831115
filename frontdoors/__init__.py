"""The front doors: the ``strongroom`` command line and the HTTP server (JSON API
and web pages).

They sit above everything they call – ``config`` ← ``archive`` ← ``verify`` ←
``ingest`` ← ``frontdoors`` – and nothing below imports them (the import-linter
contracts in ``pyproject.toml`` check it). Inside, ``main`` dispatches to ``cli``,
and ``cli`` may start the HTTP server (``run``, ``serve``); the server never
imports the command line. They hold no rules of their own: parsing, rendering
and authentication only.
"""
