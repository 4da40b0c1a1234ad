"""The synthetic hospital system: facilities, departments, wards, clinics and EDs.

The catalogue is fixed (not drawn from the seed) so that ids and names are stable
across runs and seeds, and so reports always show the same three hospitals. Two
deliberate weak spots give comparisons something real to find: Riverside has more
falls, slower complaint handling and less satisfied patients, and one ward in each
of two hospitals falls well above its peers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipelines.generate.codes import LOCATION_PHYSICAL, ORG_TYPE, SERVICES


@dataclass(frozen=True)
class Ward:
    id: str
    name: str
    service: str
    department_id: str
    facility_id: str
    physical_type: str = "wa"  # wa ward; area for clinics and emergency departments
    falls_factor: float = 1.0


@dataclass(frozen=True)
class Facility:
    id: str
    name: str
    short: str
    weight: float  # share of the population registered here
    falls_factor: float = 1.0
    ack_slow: float = 0.1  # probability a complaint acknowledgement misses the 3-working-day standard
    resolve_days: tuple[float, float] = (3.0, 45.0)  # complaint resolution time range (days)
    satisfaction: float = 0.0  # shift on the latent patient-experience score
    wards: dict[str, tuple[Ward, ...]] = field(default_factory=dict)
    clinics: dict[str, Ward] = field(default_factory=dict)
    ed: Ward | None = None


_LAYOUT: tuple[tuple[str, str, float, float, tuple[float, float], float, dict[str, tuple[str, ...]]], ...] = (
    (
        "northfield",
        "Northfield General Hospital",
        0.42,
        1.0,
        (3.0, 40.0),
        0.05,
        {
            "general-medicine": ("Ash", "Holly"),
            "surgery": ("Birch", "Cedar"),
            "orthopaedics": ("Hawthorn",),
            "elderly-care": ("Oak", "Rowan"),
            "cardiology": ("Willow",),
        },
    ),
    (
        "riverside",
        "Riverside Community Hospital",
        0.33,
        1.8,
        (5.0, 60.0),
        -0.35,
        {
            "general-medicine": ("Avon", "Severn"),
            "surgery": ("Thames",),
            "orthopaedics": ("Trent",),
            "elderly-care": ("Tyne", "Wye"),
            "cardiology": ("Mersey",),
        },
    ),
    (
        "stanne",
        "St Anne's University Hospital",
        0.25,
        0.9,
        (3.0, 35.0),
        0.15,
        {
            "general-medicine": ("Nightingale", "Seacole"),
            "surgery": ("Lister", "Fleming"),
            "orthopaedics": ("Jenner",),
            "elderly-care": ("Cavell",),
            "cardiology": ("Harvey",),
        },
    ),
)
#: Wards whose falls rate is well above their hospital's.
_FALLS_HOTSPOTS = {"loc-northfield-ward-holly": 1.8, "loc-riverside-ward-tyne": 2.0}
_ACK_SLOW = {"northfield": 0.08, "riverside": 0.35, "stanne": 0.06}


def build_catalogue() -> tuple[Facility, ...]:
    facilities = []
    for short, name, weight, falls, resolve, sat, layout in _LAYOUT:
        fid = f"org-{short}"
        wards: dict[str, tuple[Ward, ...]] = {}
        clinics: dict[str, Ward] = {}
        for service, names in layout.items():
            dept = f"loc-{short}-dept-{service}"
            wards[service] = tuple(
                Ward(
                    id=f"loc-{short}-ward-{n.lower()}",
                    name=f"{n} Ward",
                    service=service,
                    department_id=dept,
                    facility_id=fid,
                    falls_factor=_FALLS_HOTSPOTS.get(f"loc-{short}-ward-{n.lower()}", 1.0),
                )
                for n in names
            )
            clinics[service] = Ward(
                id=f"loc-{short}-clinic-{service}",
                name=f"{SERVICES[service]} Outpatient Clinic",
                service=service,
                department_id=dept,
                facility_id=fid,
                physical_type="area",
            )
        ed = Ward(
            id=f"loc-{short}-ed",
            name="Emergency Department",
            service="emergency",
            department_id=f"loc-{short}-dept-emergency",
            facility_id=fid,
            physical_type="area",
        )
        facilities.append(
            Facility(
                id=fid,
                name=name,
                short=short,
                weight=weight,
                falls_factor=falls,
                ack_slow=_ACK_SLOW[short],
                resolve_days=resolve,
                satisfaction=sat,
                wards=wards,
                clinics=clinics,
                ed=ed,
            )
        )
    return tuple(facilities)


def _ref(kind: str, rid: str, display: str | None = None) -> dict[str, str]:
    out = {"reference": f"{kind}/{rid}"}
    if display is not None:
        out["display"] = display
    return out


def _physical(code: str) -> dict[str, Any]:
    names = {"si": "Site", "wi": "Wing", "wa": "Ward", "area": "Area"}
    return {"coding": [{"system": LOCATION_PHYSICAL, "code": code, "display": names[code]}]}


def organization_resources(facilities: tuple[Facility, ...]) -> list[dict[str, Any]]:
    return [
        {
            "resourceType": "Organization",
            "id": f.id,
            "active": True,
            "type": [{"coding": [{"system": ORG_TYPE, "code": "prov", "display": "Healthcare Provider"}]}],
            "name": f.name,
        }
        for f in facilities
    ]


def location_resources(facilities: tuple[Facility, ...]) -> list[dict[str, Any]]:
    """Site -> department (wing) -> ward / clinic / ED area, all managed by the facility."""
    out: list[dict[str, Any]] = []

    def loc(lid: str, name: str, code: str, fac: Facility, part_of: str | None) -> None:
        r: dict[str, Any] = {
            "resourceType": "Location",
            "id": lid,
            "status": "active",
            "name": name,
            "mode": "instance",
            "physicalType": _physical(code),
            "managingOrganization": _ref("Organization", fac.id, fac.name),
        }
        if part_of:
            r["partOf"] = {"reference": f"Location/{part_of}"}
        out.append(r)

    for f in facilities:
        site = f"loc-{f.short}"
        loc(site, f.name, "si", f, None)
        for service, wards in f.wards.items():
            dept = wards[0].department_id
            loc(dept, f"{SERVICES[service]} Department", "wi", f, site)
            for w in wards:
                loc(w.id, w.name, w.physical_type, f, dept)
            c = f.clinics[service]
            loc(c.id, c.name, c.physical_type, f, dept)
        assert f.ed is not None
        loc(f.ed.department_id, "Emergency Medicine Department", "wi", f, site)
        loc(f.ed.id, f.ed.name, f.ed.physical_type, f, f.ed.department_id)
    return out
