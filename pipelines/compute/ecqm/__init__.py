"""The eCQM toolkit: the CQL building blocks every CMS measure's population functions use.

Each eCQM (``indicators/cms*.py``) re-expresses its published CQL as vectorised pandas over
the tidy tables; what several measures share lives here, once, named after the CQL it
stands for:

* :mod:`.retrieve` - retrieve by value set or direct-reference code over a record's own
  coding and every coding in ``codings`` (:class:`Retrieve`);
* :mod:`.intervals` - CQL intervals of FHIR periods, timings and condition prevalence;
* :mod:`.encounters` - CQMCommon inpatient encounters, ``hospitalizationWithObservation``, ages;
* :mod:`.claims` - claim diagnoses and procedures, present-on-admission, principal ones;
* :mod:`.negation` - QI-Core not-done / not-requested events and their reasons;
* :mod:`.columns` - timestamps, days, membership, per-row hits.

Choices the tidy tables force, documented once here:

* Timestamps are the facility's local wall-clock time (:mod:`pipelines.localtime`; UTC
  unless configured). CQL compares offset-aware DateTimes and takes ``date from`` in the
  value's own offset; the CMS test decks use ``+00:00`` throughout and are read in UTC,
  so the stored date is the local date for them.
* "ends during day of Measurement Period" is ``period.start <= end_at < period.end``.
* A CodeableConcept is in a value set when ANY of its codings is: the record's own first
  coding (its columns) or any of its ``codings`` rows.
* Value sets and codes are referred to by their CQL names; the indicator's YAML declares
  their canonicals (:class:`~pipelines.compute.valuesets.DeclaredValueSets`), and the
  engine refuses to evaluate a measure whose value sets are not all loaded.
"""

from __future__ import annotations

from pipelines.compute.ecqm.claims import (
    PRIMARY_PROCEDURE,
    PRINCIPAL_DIAGNOSIS,
    active,
    diagnosis_code_in,
    diagnosis_present_on_admission,
    linked_claim_diagnoses,
    poa_in,
    principal_diagnosis,
    principal_procedure,
)
from pipelines.compute.ecqm.columns import (
    DAY,
    HOUR,
    US,
    any_per_row,
    days,
    eq,
    events,
    patients_with,
    refine,
    strs,
    true,
    ts,
    window_hits,
)
from pipelines.compute.ecqm.encounters import (
    adult_at_start,
    age_at_end,
    age_at_start,
    encounter_diagnosis,
    hospitalization_start,
    inpatient_encounter,
    of_type,
)
from pipelines.compute.ecqm.intervals import (
    ACTIVE_LIKE,
    Interval,
    bounds,
    fhir_period,
    point_end,
    prevalence,
    timing,
    within,
)
from pipelines.compute.ecqm.negation import reasons, recorded
from pipelines.compute.ecqm.retrieve import ELEMENTS, Retrieve, code_mask
from pipelines.strings import isin

__all__ = [
    "ACTIVE_LIKE",
    "DAY",
    "ELEMENTS",
    "HOUR",
    "PRIMARY_PROCEDURE",
    "PRINCIPAL_DIAGNOSIS",
    "US",
    "Interval",
    "Retrieve",
    "active",
    "adult_at_start",
    "age_at_end",
    "age_at_start",
    "any_per_row",
    "bounds",
    "code_mask",
    "days",
    "diagnosis_code_in",
    "diagnosis_present_on_admission",
    "encounter_diagnosis",
    "eq",
    "events",
    "fhir_period",
    "hospitalization_start",
    "inpatient_encounter",
    "isin",
    "linked_claim_diagnoses",
    "of_type",
    "patients_with",
    "poa_in",
    "point_end",
    "prevalence",
    "principal_diagnosis",
    "principal_procedure",
    "reasons",
    "recorded",
    "refine",
    "strs",
    "timing",
    "true",
    "ts",
    "window_hits",
    "within",
]
