"""The organisation hierarchy: system -> facility -> department (service) -> ward.

Committees sit at every level (a trust board, a hospital's quality committee, a
department's governance meeting, a ward's huddle), so results roll up and drill down
along one tree. The tree is built from the warehouse's FHIR Locations (a ward is
``partOf`` its department, every location is managed by its facility) and a
configuration file (``CAREQI_ORGANISATION``, YAML, loaded safely) that names the system
and may place wards in departments explicitly, which wins over ``partOf``::

    system: North Region Health System
    departments:
      loc-northfield-dept-surgery:
        name: Surgery
        wards: [loc-northfield-ward-oak, loc-northfield-ward-elm]

A ward that neither places in a department is under "no department" of its facility:
still counted, never dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from pipelines.errors import ConfigError

NO_DEPARTMENT = "(no department)"
LEVELS = ("system", "facility", "department", "ward")


@dataclass(frozen=True)
class Organisation:
    """Names and parents of every unit; ``department_of`` maps a ward to its department."""

    system_name: str = "Health system"
    names: Mapping[str, str] = field(default_factory=dict)
    department_of: Mapping[str, str] = field(default_factory=dict)
    facility_of: Mapping[str, str] = field(default_factory=dict)

    def name(self, unit: str) -> str:
        if unit == NO_DEPARTMENT:
            return unit
        return self.names.get(unit, unit)

    def departments(self, wards: pd.Series) -> pd.Series:
        """The department of each ward id (``NO_DEPARTMENT`` when unknown)."""
        keys = wards.astype("string").fillna("").to_numpy(dtype=object)
        return pd.Series([self.department_of.get(k, NO_DEPARTMENT) for k in keys], index=wards.index, dtype="string")


def read_config(path: Path | None) -> dict[str, Any]:
    """The configuration file's content ({} when there is none)."""
    if path is None or not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the organisation file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with 'system' and optionally 'departments'")
    unknown = sorted(set(data) - {"system", "departments"})
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}")
    return data


def build_organisation(config: Mapping[str, Any], organizations: pd.DataFrame, locations: pd.DataFrame) -> Organisation:
    """The tree from the configuration and the warehouse's organizations and locations
    (columns ``organization_id, name`` and ``location_id, name, type_code,
    organization_id, part_of``)."""
    names: dict[str, str] = {}
    for oid, name in zip(organizations["organization_id"], organizations["name"], strict=True):
        names[str(oid)] = str(name) if isinstance(name, str) and name else str(oid)
    department_of: dict[str, str] = {}
    facility_of: dict[str, str] = {}
    loc = locations
    for rec in loc.to_dict("records"):
        lid = str(rec["location_id"])
        nm = rec.get("name")
        names[lid] = str(nm) if isinstance(nm, str) and nm else lid
        org = rec.get("organization_id")
        if isinstance(org, str) and org:
            facility_of[lid] = org
    kind = dict(zip(loc["location_id"].astype(str), loc["type_code"].astype("string").fillna(""), strict=True))
    parent = dict(zip(loc["location_id"].astype(str), loc["part_of"].astype("string").fillna(""), strict=True))
    for lid, up in parent.items():
        if up and kind.get(up) == "wi":  # a wing/department (FHIR location-physical-type "wi")
            department_of[lid] = up
    departments = config.get("departments") or {}
    if not isinstance(departments, dict):
        raise ConfigError("organisation: 'departments' must map a department id to its name and wards")
    for dept, spec in departments.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("wards", []), list):
            raise ConfigError(f"organisation: department {dept!r} needs 'name' and a list of 'wards'")
        if spec.get("name"):
            names[str(dept)] = str(spec["name"])
        for ward in spec.get("wards", []):
            department_of[str(ward)] = str(dept)
    return Organisation(
        system_name=str(config.get("system") or "Health system"),
        names=names,
        department_of=department_of,
        facility_of=facility_of,
    )


__all__ = ["LEVELS", "NO_DEPARTMENT", "Organisation", "build_organisation", "read_config"]
