"""Which units a caller may see, and the one filter every query uses.

A scope is either every unit (``units is None``: the CLI, admins and auditors
without ``--unit``, case-system tokens with ``all_units``) or a fixed set of
unit codes, already widened to their descendants in the ``[units]`` tree. An
item without a unit belongs to no agency's scope: only all-unit callers see it.

Out of scope is answered exactly like missing, so a token cannot learn that an
item of another agency exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, false

from archive.models import Evidence


@dataclass(frozen=True)
class Scope:
    """The units a caller covers; None means all of them."""

    units: frozenset[str] | None = None

    @property
    def all_units(self) -> bool:
        return self.units is None

    def covers(self, unit: str | None) -> bool:
        """Whether an item of ``unit`` is visible to this scope."""
        return self.units is None or (unit is not None and unit in self.units)

    def where(self, query: Select[Any]) -> Select[Any]:
        """``query`` (over :class:`Evidence`) limited to this scope."""
        if self.units is None:
            return query
        if not self.units:
            return query.where(false())
        return query.where(Evidence.unit.in_(sorted(self.units)))

    def to_dict(self) -> dict[str, Any]:
        """How custody events and link rows record the scope."""
        return {"all_units": True} if self.units is None else {"units": sorted(self.units)}


#: the CLI and every all-unit token
ALL_UNITS = Scope(None)
