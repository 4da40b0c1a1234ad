"""The report's languages: gettext message catalogues and localised numbers and dates.

Every label the report prints goes through :func:`_` (Python) or ``_()`` / ``{% trans %}``
(templates), so a language is one ``.po`` file in ``locale/<code>/LC_MESSAGES/careqi.po``
that a translator edits with ordinary gettext tools; ``scripts/extract_messages.py``
collects the messages (templates, publish code and the indicator files' titles and
sentences) and updates every catalogue. Catalogues are compiled in memory when first
used, so there is no build step and no binary ``.mo`` in the repository.

The language is chosen per report by :func:`using` (a context variable, so building the
English and the Chinese report in one process, or in threads, never mixes them).
Numbers and dates are formatted by Babel with the language's locale (CLDR): digits,
separators and month names follow it.
"""

from __future__ import annotations

import gettext
import io
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path

from babel import Locale
from babel.dates import format_date, format_skeleton
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

from pipelines.errors import ConfigError

#: Report language code -> CLDR locale. English is the source language of the catalogue.
LANGUAGES: dict[str, str] = {"en": "en_GB", "zh": "zh_Hans_CN"}
#: The HTML ``lang`` attribute of each language (fonts pick Simplified glyph forms by it).
HTML_LANG: dict[str, str] = {"en": "en-GB", "zh": "zh-Hans"}
LOCALE_DIR = Path(__file__).with_name("locale")
DOMAIN = "careqi"


@dataclass(frozen=True)
class Language:
    code: str
    locale: Locale
    translations: gettext.NullTranslations

    @property
    def html_lang(self) -> str:
        return HTML_LANG[self.code]


def catalogue_path(code: str) -> Path:
    return LOCALE_DIR / code / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def language(code: str) -> Language:
    """The language ``code`` (``en``, ``zh``) with its compiled catalogue."""
    if code not in LANGUAGES:
        raise ConfigError(f"unknown report language {code!r}: choose from {', '.join(LANGUAGES)}")
    locale = Locale.parse(LANGUAGES[code])
    path = catalogue_path(code)
    translations: gettext.NullTranslations
    if code == "en" and not path.is_file():
        translations = gettext.NullTranslations()
    else:
        with path.open("rb") as fh:
            catalog = read_po(fh, locale=locale, domain=DOMAIN)
        buf = io.BytesIO()
        write_mo(buf, catalog, use_fuzzy=False)
        buf.seek(0)
        translations = gettext.GNUTranslations(buf)
    return Language(code, locale, translations)


_active: ContextVar[Language | None] = ContextVar("careqi_report_language", default=None)


def current() -> Language:
    return _active.get() or language("en")


@contextmanager
def using(code: str) -> Iterator[Language]:
    """Build (and render) a report in ``code`` inside this block."""
    token = _active.set(language(code))
    try:
        yield current()
    finally:
        _active.reset(token)


def _(message: str) -> str:
    """``message`` in the active language (unchanged when the catalogue lacks it)."""
    if not message:
        return message
    return current().translations.gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return current().translations.ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark ``message`` for the catalogue without translating it now (module constants,
    translated with :func:`_` when the report is built)."""
    return message


def number(value: float | int, decimals: int = 0) -> str:
    """``value`` with the locale's grouping and decimal signs."""
    pattern = "#,##0" + ("." + "0" * decimals if decimals > 0 else "")
    return format_decimal(value, format=pattern, locale=current().locale)


def month_long(day: date) -> str:
    """``October 2026`` / ``2026年10月``."""
    return format_skeleton("yMMMM", day, locale=current().locale)


#: Short month patterns where CLDR's ``yyMMM`` skeleton keeps a four-digit year (Chinese),
#: too wide for twelve labels under a chart.
SHORT_MONTH = {"zh": "yy年M月"}


def month_short(day: date) -> str:
    """``Oct ’26`` / ``26年10月``."""
    lang = current()
    if lang.code in SHORT_MONTH:
        return format_date(day, SHORT_MONTH[lang.code], locale=lang.locale)
    return format_skeleton("yyMMM", day, locale=lang.locale)


def date_text(day: date) -> str:
    """``1 Dec 2026`` / ``2026年12月1日``."""
    return format_date(day, "medium", locale=current().locale)


__all__ = [
    "HTML_LANG",
    "LANGUAGES",
    "LOCALE_DIR",
    "Language",
    "N_",
    "_",
    "catalogue_path",
    "current",
    "date_text",
    "language",
    "month_long",
    "month_short",
    "ngettext",
    "number",
    "using",
]
