"""The exception tree. Every error a user can cause is a CareQIError with a message
that says what to do; the CLI prints it on one line instead of a traceback.

    CareQIError
     +-- ConfigError               bad setting, missing folder
     |    +-- PeriodError          a month that is not YYYY-MM within the supported years
     +-- ExtractError              a source that cannot be read at all (not a bad record)
     +-- ValidationFailed          a table failed beyond the configured threshold
     +-- WarehouseError            the warehouse cannot be reached or is inconsistent
     +-- IndicatorDefinitionError  an indicator file is malformed
     +-- ValueSetError             a value set cannot be found or read
     |    +-- MissingValueSets     an indicator's value sets are not supplied (.missing)
     +-- ExportError               an export failed its own validation
     +-- OutputError               a report or export set could not be written (nothing replaced)
"""

from __future__ import annotations


class CareQIError(Exception):
    """Base class: a problem the user can act on."""


class ConfigError(CareQIError):
    pass


class PeriodError(ConfigError):
    """A reporting month that is malformed or outside the supported years (one message for all)."""


class ExtractError(CareQIError):
    pass


class ValidationFailed(CareQIError):
    pass


class WarehouseError(CareQIError):
    pass


class IndicatorDefinitionError(CareQIError):
    pass


class ValueSetError(CareQIError):
    pass


class MissingValueSets(ValueSetError):
    """Value sets an indicator needs are not loaded (licensed VSAC content is supplied by
    the user, never shipped): the indicator is *not computed*, the run goes on.
    ``missing`` holds the canonical URLs / names."""

    def __init__(self, message: str, missing: tuple[str, ...] | list[str] = ()) -> None:
        super().__init__(message)
        self.missing = tuple(missing)


class ExportError(CareQIError):
    pass


class OutputError(CareQIError):
    """A set of output files could not be written (disk full, read-only folder); the
    previous set is left in place."""
