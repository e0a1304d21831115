"""One error base: every Strongroom error answers with the code and status the
README's table documents, through the API's one mapping, and the CLI's exit
code follows its kind."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from archive.db import CatalogUnavailable
from archive.dsse import EnvelopeError
from archive.merkle import ProofError
from archive.note import NoteError
from archive.store import AlreadyExists, ContentChanged, NotFound
from config.errors import StrongroomError, UnknownEvidence
from config.settings import ConfigError
from frontdoors.api.deps import not_found
from frontdoors.api.errors import install_error_handlers, status_and_code
from frontdoors.cli.common import EXIT_CONFIG, EXIT_FAILED, exit_code
from verify.bagread import BagPathError
from verify.offline import KeyFileError

README = Path(__file__).resolve().parent.parent / "README.md"
PACKAGES = ("config", "archive", "verify", "ingest", "frontdoors")


def _import_everything() -> None:
    for name in PACKAGES:
        package = importlib.import_module(name)
        for module in pkgutil.walk_packages(package.__path__, f"{name}."):
            if ".migrations" not in module.name:  # Alembic scripts run only under Alembic
                importlib.import_module(module.name)


def _subclasses(cls: type[StrongroomError]) -> Iterator[type[StrongroomError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _documented() -> dict[str, tuple[int, str]]:
    """``module.Class`` -> (status, code), from the README's error table."""
    table: dict[str, tuple[int, str]] = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        row = re.fullmatch(r"\| (\d{3}) \| `([a-z_]+)` \| (.+) \|", line)
        if row:
            for name in re.findall(r"`([\w.]+)`", row[3]):
                table[name] = (int(row[1]), row[2])
    return table


def _errors() -> list[type[StrongroomError]]:
    _import_everything()
    return sorted({StrongroomError, *_subclasses(StrongroomError)}, key=_name)


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _instance(cls: type[StrongroomError]) -> StrongroomError:
    """One of each, made as the code makes them."""
    if issubclass(cls, UnknownEvidence):
        return cls("ev-000000000000000000000000")
    if cls in (AlreadyExists, NotFound):
        return cls("originals/sha256/00")
    if cls is ContentChanged:
        return cls("the store computed another SHA-256")
    if cls is CatalogUnavailable:
        return cls("the catalog cannot be reached", retryable=True)
    try:
        return cls("something went wrong")
    except TypeError:  # an error with fields of its own, all text (e.g. ProbeError)
        params = inspect.signature(cls.__init__).parameters.values()
        required = [p for p in params if p.name != "self" and p.default is p.empty]
        return cls(*["something went wrong"] * len(required))


def test_every_error_derives_from_the_base_and_is_documented_with_its_code() -> None:
    errors = _errors()
    documented = _documented()
    assert len(errors) > 40  # the walk found the product's errors, not just the base
    assert {_name(cls) for cls in errors} == set(documented), (
        "every StrongroomError subclass has a row in the README's error table, "
        "and every row names one"
    )
    for cls in errors:
        assert status_and_code(_instance(cls)) == documented[_name(cls)], _name(cls)


def test_the_offline_verifiers_errors_stay_outside_the_base() -> None:
    """An auditor runs verify.offline with only PyNaCl: its errors import no config."""
    for error in (EnvelopeError, ProofError, NoteError, BagPathError, KeyFileError):
        assert issubclass(error, ValueError) and not issubclass(error, StrongroomError)


def test_the_api_answers_each_error_with_its_documented_status_and_code() -> None:
    errors = _errors()
    documented = _documented()
    app = FastAPI()
    install_error_handlers(app)
    by_name = {_name(cls): cls for cls in errors}

    @app.get("/raise/{name}")
    def _raise(name: str) -> None:
        raise _instance(by_name[name])

    client = TestClient(app, raise_server_exceptions=False)
    for name, (status, code) in documented.items():
        response = client.get(f"/raise/{name}")
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), name
        if status >= 500:  # our words only: the error's text stays in the log
            assert "something went wrong" not in response.text, name


def test_one_unknown_evidence_with_the_same_body_as_a_scope_miss() -> None:
    _import_everything()
    for module in (
        "archive.caselinks",
        "archive.retention",
        "verify.export",
        "verify.custody_report",
    ):
        assert getattr(importlib.import_module(module), "UnknownEvidence", None) in (
            None,
            UnknownEvidence,
        ), module
    named = {c for c in _subclasses(StrongroomError) if c.__name__ == "UnknownEvidence"}
    assert named == {UnknownEvidence}
    # an item outside the caller's scope and a missing one must read the same
    assert str(UnknownEvidence("ev-1")) == not_found("ev-1").message
    missing = UnknownEvidence(["ev-1", "ev-2"])
    assert isinstance(missing, KeyError) and missing.args == ("ev-1, ev-2",)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ConfigError("bad key"), EXIT_CONFIG),
        (CatalogUnavailable("refused", retryable=False), EXIT_CONFIG),
        (UnknownEvidence("ev-1"), EXIT_FAILED),
        (NotFound("originals/sha256/00"), EXIT_FAILED),
    ],
)
def test_the_cli_exit_code_follows_the_kind(error: StrongroomError, expected: int) -> None:
    assert exit_code(error) == expected
