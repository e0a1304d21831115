"""The ``[incidents]`` and ``[heartbeat]`` sections (issue 19, parts 3 and 4).

``[incidents]`` decides how evidence meets dispatch (警情/CAD) incidents: how
much a recorder's clock may be off (``slack_minutes``), and whether a match
links at once (``confirm = false``, the default) or waits for a person.

``[heartbeat]`` decides how often each daemon writes its station's heartbeat
row into the catalog, and after how long without one a station counts as silent.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class IncidentSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slack_minutes: float = Field(
        5.0,
        ge=0,
        le=24 * 60,
        description="recorder clock drift allowed on each side of an incident's window",
    )
    confirm: bool = Field(
        False,
        description="propose matches for a person to confirm (links pending/confirm/reject) "
        "instead of linking them at once",
    )
    sweep_minutes: float = Field(
        10.0,
        gt=0,
        description="how often the daemon re-runs matching for incidents and items it has "
        "not matched yet (a crash between seal and match, a store outage during a link)",
    )


class HeartbeatSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(30.0, gt=0, description="how often each daemon writes its heartbeat")
    silent_after_seconds: float = Field(
        600.0, gt=0, description="`status --stations` flags a station silent after this long"
    )
