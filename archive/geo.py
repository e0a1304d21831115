"""Distances on the Earth for ``find --near``: a circle, its bounding box, haversine.

The catalog stores latitude and longitude as plain indexed numbers, so the
search runs the same on SQLite and PostgreSQL with no spatial extension: SQL
narrows to the circle's bounding box (an index range), and :meth:`Circle.contains`
then keeps only the points whose great-circle (haversine) distance is within
the radius. Pure: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: mean Earth radius in metres (IUGG), the one haversine uses
EARTH_RADIUS_M = 6_371_008.8
#: half the Earth's circumference: a larger radius covers every point anyway
MAX_RADIUS_M = math.pi * EARTH_RADIUS_M


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two points in degrees."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlambda = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def parse_point(text: str) -> tuple[float, float]:
    """``"LAT,LON"`` in decimal degrees; ``ValueError`` saying what is wrong."""
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        latitude, longitude = (float(p) for p in parts)
    except ValueError:
        raise ValueError(f"{text!r} is not LAT,LON in decimal degrees") from None
    if not (math.isfinite(latitude) and math.isfinite(longitude)):
        raise ValueError(f"{text!r} is not LAT,LON in decimal degrees")
    if abs(latitude) > 90 or abs(longitude) > 180:
        raise ValueError(f"{text!r}: latitude must be within ±90 and longitude within ±180")
    return latitude, longitude


def check_radius(radius_m: float) -> float:
    """A search radius in metres: positive and finite; ``ValueError`` otherwise."""
    if not (math.isfinite(radius_m) and radius_m > 0):
        raise ValueError(f"radius {radius_m!r} must be a positive number of metres")
    return radius_m


@dataclass(frozen=True)
class Circle:
    """Every point within ``radius_m`` metres of (``latitude``, ``longitude``)."""

    latitude: float
    longitude: float
    radius_m: float

    def contains(self, latitude: float | None, longitude: float | None) -> bool:
        """The exact test (haversine); a point not known is not near anything."""
        if latitude is None or longitude is None:
            return False
        return haversine_m(self.latitude, self.longitude, latitude, longitude) <= self.radius_m

    def latitude_range(self) -> tuple[float, float]:
        """The box's latitudes (clipped at the poles)."""
        spread = math.degrees(min(self.radius_m, MAX_RADIUS_M) / EARTH_RADIUS_M)
        return max(-90.0, self.latitude - spread), min(90.0, self.latitude + spread)

    def longitude_ranges(self) -> list[tuple[float, float]] | None:
        """The box's longitudes as one or two ranges (two when it crosses ±180°),
        or None when every longitude is in it (a pole inside, or a huge radius)."""
        south, north = self.latitude_range()
        if south <= -90 or north >= 90:
            return None
        angular = min(self.radius_m, MAX_RADIUS_M) / EARTH_RADIUS_M
        ratio = math.sin(angular) / math.cos(math.radians(self.latitude))
        if ratio >= 1:
            return None
        spread = math.degrees(math.asin(ratio))
        west, east = self.longitude - spread, self.longitude + spread
        if west < -180:
            return [(west + 360, 180.0), (-180.0, east)]
        if east > 180:
            return [(west, 180.0), (-180.0, east - 360)]
        return [(west, east)]

    def to_dict(self) -> dict[str, float]:
        return {"latitude": self.latitude, "longitude": self.longitude, "radius_m": self.radius_m}
