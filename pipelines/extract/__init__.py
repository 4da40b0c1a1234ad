"""Extract stage: FHIR R4 Bulk NDJSON, FHIR Bundles and feedback CSVs -> tidy tables.

Public entry points are :func:`extract_batch` and :func:`extract_paths`; see
:mod:`pipelines.extract.batch`.

Accounting (``rows_read[table] == accepted + quarantined`` for every table):

* A resource of a one-row type (Encounter, Observation, ServiceRequest ...) is one
  record read of its table. A Claim is one claim_diagnoses record per
  ``Claim.diagnosis`` plus one claim_procedures record per ``Claim.procedure``; each
  table counts only its own rows. A Claim yielding no row at all (neither a
  diagnosis nor a procedure) is counted in
  ``ignored["Claim without diagnosis or procedure"]``, and only then. A Claim
  rejected whole (malformed line, failed FHIR validation) is ONE quarantine row of
  claim_diagnoses (``RESOURCE_TABLES["Claim"]``), since neither its diagnoses nor its
  procedures can be read; so a resource is never counted in two tables' reads unless
  it yielded rows in both.
* Child rows (encounter_locations, encounter_diagnoses, codings) are read when they
  are produced from an accepted parent row. A parent quarantined at extraction
  (bad JSON, failed FHIR validation, unreadable value) yields no children: they are
  part of the record already held, and counting them would double-count one fault.
  A child with an unreadable value of its own (a location period ``2026-13-45``) is
  quarantined in its own table and the parent is kept.
* A parent without an id yields no children (they could not be named); validation
  quarantines the parent for its missing key.
* A Medication resource is no table's record: each one read is counted in
  ``ignored["Medication"]`` and only its codes are kept, to fill the medication
  records whose ``medicationReference`` points at it (:mod:`pipelines.extract.medication`).
  A medication record whose reference resolves to nothing is quarantined, the reason
  naming the reference: nobody can tell which drug it was.
* Validation judges each table on its own: children of a parent that fails a
  validation check stay, and are harmless since every use joins through the parent.
"""

from __future__ import annotations

from pipelines.extract.batch import ExtractResult, extract_batch, extract_paths

__all__ = ["ExtractResult", "extract_batch", "extract_paths"]
