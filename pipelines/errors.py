"""The exception tree. Every error a user can cause is a CareQIError with a message
that says what to do; the CLI prints it on one line instead of a traceback.

    CareQIError
     +-- ConfigError               bad setting, missing folder
     +-- ExtractError              a source that cannot be read at all (not a bad record)
     +-- ValidationFailed          a table failed beyond the configured threshold
     +-- WarehouseError            the warehouse cannot be reached or is inconsistent
     +-- IndicatorDefinitionError  an indicator file is malformed
     +-- ValueSetError             a value set cannot be found or read
     +-- ExportError               an export failed its own validation
"""

from __future__ import annotations


class CareQIError(Exception):
    """Base class: a problem the user can act on."""


class ConfigError(CareQIError):
    pass


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


class ExportError(CareQIError):
    pass
