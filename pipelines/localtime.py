"""The facility's clock: which time zone decides a record's day and month.

A reporting month, a length of stay and a working-day deadline are all counted in the
days of the facility where care happened: a patient admitted at 00:15 on 1 October in
London is an October admission, although the same instant is 23:15 on 30 September in
UTC. So timestamps are stored as the facility's local wall-clock time (naive), and
every sender's offset is resolved here, once, at extraction:

* a timestamp with an offset (``2026-10-01T00:15:00+01:00``, ``...Z``) is converted to
  the zone of the record's facility;
* a timestamp without an offset (CSV exports often have none) is taken as already
  local, as written;
* dates without a time (``birthDate``) are local dates.

The zone of a facility comes from ``CAREQI_FACILITY_TIMEZONES`` (``id=Zone`` pairs,
comma-separated, IANA zone names), else the system's zone ``CAREQI_TIMEZONE`` (default
UTC). With a single zone for the whole system nothing is looked up per row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipelines.errors import ConfigError

if TYPE_CHECKING:  # pandas is imported by the functions that need it: settings load fast
    import pandas as pd

DEFAULT_ZONE = "UTC"


def check_zone(name: str, where: str) -> str:
    """An IANA zone name that this machine knows, or a ConfigError saying where it came from."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ConfigError(f"{where}: unknown time zone {name!r} (use an IANA name such as Europe/London)") from None
    return name


def parse_facility_zones(text: str) -> dict[str, str]:
    """``"fac-a=Europe/London, fac-b=America/New_York"`` -> ``{"fac-a": "Europe/London", ...}``."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        facility, sep, zone = part.partition("=")
        if not sep or not facility.strip() or not zone.strip():
            raise ConfigError(f"CAREQI_FACILITY_TIMEZONES: expected facility_id=Zone pairs, got {part!r}")
        out[facility.strip()] = check_zone(zone.strip(), f"CAREQI_FACILITY_TIMEZONES ({facility.strip()})")
    return out


@dataclass(frozen=True)
class TimeZones:
    """The system's zone and the facilities that keep another one."""

    default: str = DEFAULT_ZONE
    facilities: Mapping[str, str] = field(default_factory=dict)

    @property
    def single(self) -> bool:
        """True when every facility keeps the system's zone (no per-row lookup needed)."""
        return all(zone == self.default for zone in self.facilities.values())

    def zone_of(self, facility_ids: pd.Series) -> pd.Series:
        """The zone name per row, from a facility id per row (missing or unknown: the default)."""
        import pandas as pd

        if self.single:
            return pd.Series(self.default, index=facility_ids.index, dtype="string")
        zones = facility_ids.astype("string").map(dict(self.facilities))
        return zones.fillna(self.default).astype("string")


def to_local(utc: pd.Series, zones: pd.Series | str) -> pd.Series:
    """Naive UTC instants -> naive local wall-clock times, per row's zone."""
    if isinstance(zones, str):
        if zones == "UTC":
            return utc
        return utc.dt.tz_localize("UTC").dt.tz_convert(zones).dt.tz_localize(None).astype(utc.dtype)
    out = utc.copy()
    for zone in zones.dropna().unique():
        rows = (zones == zone).to_numpy(dtype=bool, na_value=False)
        if zone == "UTC" or not rows.any():
            continue
        part = utc[rows].dt.tz_localize("UTC").dt.tz_convert(str(zone)).dt.tz_localize(None)
        out[rows] = part.astype(utc.dtype).to_numpy()
    return out


__all__ = ["DEFAULT_ZONE", "TimeZones", "check_zone", "parse_facility_zones", "to_local"]
