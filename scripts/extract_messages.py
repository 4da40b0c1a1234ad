"""Collect the report's messages and update its gettext catalogues.

Usage (from the repository root)::

    .venv/bin/python scripts/extract_messages.py           # update every catalogue
    .venv/bin/python scripts/extract_messages.py --check   # exit 1 listing what lacks a translation

What the report prints in words comes from six places, all collected here:

a. the publish code (``pipelines/publish/**/*.py``): ``_()``, ``N_()`` and ``ngettext()``;
b. the templates (``reports/**/*.j2``): ``_()`` / ``gettext()`` / ``ngettext()`` and
   ``{% trans %}`` blocks, read by Jinja's own extractor with the environment the report
   renders with (new-style gettext, so a literal percent sign is ``%%`` there);
c. the indicator files (``indicators/*.yaml``): title, description, unit, owner, every
   population's sentence and the follow-up sentence, read through the registry so each
   msgid is exactly the text the report is built from (folded scalars are normalised);
d. labels built in code that the report translates: each ``Domain.label`` and
   ``Population.label``, the case-selection rules (the second argument of each
   ``Cases(...)`` in ``pipelines/compute/cases.py``, read with ``ast``), the funnel plots'
   over-dispersion methods (``Overdispersion``) and each indicator stratifier's label (as
   :func:`pipelines.publish.formatting.label_of` makes it: ``ward_id`` -> ``Ward id``);
e. the validation checks' descriptions (``expectations/*.json``: each expectation's
   ``meta.description`` and each relation's ``description``), shown in the data-quality
   section;
f. the comment themes' labels (``pipelines/analyse/text/themes.yaml``).

Every language of :data:`pipelines.publish.i18n.LANGUAGES` has a catalogue
``pipelines/publish/locale/<code>/LC_MESSAGES/careqi.po``. English is the source language:
its catalogue is the template (every msgstr empty, so the msgid is shown). Updating keeps
every translation, adds new messages untranslated, marks messages no longer used obsolete
(``#~``; one that comes back gets its translation back) and sorts by msgid; a file is only
rewritten when a message, a translation or a reference changed. ``--check`` writes nothing
and fails when a language other than English lacks a translation of a message, or a
translation does not keep the message's placeholders.
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipelines.publish.i18n import DOMAIN, LANGUAGES, catalogue_path  # noqa: E402

#: The source language: its catalogue is the template.
SOURCE = "en"
#: ``pgettext(context, message)``: a word with two senses in the report (``Assurance``: a
#: SERVQUAL dimension, and the SPC assurance icon) is told apart by its context.
PYTHON_KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2)}
TEMPLATE_KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2)}
#: A comment starting with this, just before a message, is shown to translators.
COMMENT_TAGS = ("Translators:",)
#: As :func:`pipelines.publish.html.make_environment` builds the report's environment.
JINJA_OPTIONS = {
    "extensions": "jinja2.ext.i18n",
    "trim_blocks": "true",
    "lstrip_blocks": "true",
    "keep_trailing_newline": "true",
    "newstyle_gettext": "true",
    "silent": "false",
}
HEADER = """\
# The CareQI monthly quality-committee report's messages.
# Written by scripts/extract_messages.py, which keeps the translations: edit msgstr only.
#"""


@dataclass
class Found:
    """One message and where it was found."""

    id: str | tuple[str, str]
    context: str | None = None
    locations: list[tuple[str, None]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)


class Messages:
    """Messages in the order found, merged by msgid."""

    def __init__(self) -> None:
        self.found: dict[tuple[str | None, str], Found] = {}

    def add(
        self,
        msgid: str | tuple[str, str],
        where: Path | str,
        comment: str | None = None,
        context: str | None = None,
    ) -> None:
        key = msgid if isinstance(msgid, str) else msgid[0]
        if not key:
            return
        location = (_relative(where), None)
        entry = self.found.get((context, key))
        if entry is None:
            entry = self.found[(context, key)] = Found(msgid, context)
        elif isinstance(msgid, tuple) and isinstance(entry.id, str):
            entry.id = msgid  # the plural form wins: a singular-only look-up still finds it
        if location not in entry.locations:
            entry.locations.append(location)
        if comment and comment not in entry.comments:
            entry.comments.append(comment)


def _relative(path: Path | str) -> str:
    path = Path(path)
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return path.as_posix()


Extracted = tuple[str | tuple[str, str], list[str], str | None]


def _extracted(method, path: Path, keywords, options=None) -> Iterator[Extracted]:
    """(msgid, translator comments, context) of each message Babel finds in ``path``."""
    with path.open("rb") as fh:
        for _lineno, message, comments, context in extract(
            method, fh, keywords, COMMENT_TAGS, options, strip_comment_tags=True
        ):
            if isinstance(message, tuple):
                if any(m is None for m in message[:2]):
                    continue
                yield (message[0], message[1]), comments, context
            elif message:
                yield message, comments, context


def python_messages(messages: Messages, folder: Path) -> None:
    """(a) ``_()``, ``N_()``, ``ngettext()`` and ``pgettext()`` in the publish code."""
    for path in sorted(folder.rglob("*.py")):
        for msgid, comments, context in _extracted("python", path, PYTHON_KEYWORDS):
            messages.add(msgid, path, " ".join(comments) or None, context)


def template_messages(messages: Messages, folder: Path) -> None:
    """(b) every template, with Jinja's extractor."""
    from jinja2.ext import babel_extract

    for path in sorted(folder.rglob("*.j2")):
        for msgid, comments, context in _extracted(babel_extract, path, TEMPLATE_KEYWORDS, JINJA_OPTIONS):
            messages.add(msgid, path, " ".join(comments) or None, context)


def indicator_messages(messages: Messages, folder: Path) -> None:
    """(c) the indicator files' texts, as the registry reads them."""
    from pipelines.compute.model import Population
    from pipelines.compute.registry import load_indicators

    for ind in load_indicators(folder):
        where = ind.source or folder
        messages.add(ind.title, where, "Indicator title")
        messages.add(ind.description, where, "Indicator description")
        messages.add(ind.unit, where, "Indicator unit, shown after its figures (keep a leading %)")
        messages.add(ind.owner, where, "Indicator owner (a role)")
        for pop in Population:
            messages.add(ind.definition(pop), where, f"Indicator population: {pop.label.lower()}")
        if ind.follow_up is not None:
            messages.add(ind.follow_up.sentence, where, "Indicator follow-up: when a case's outcome is known")
        for name in ind.stratifiers:
            # as pipelines.publish.formatting.label_of shows a stratifier
            messages.add(name.replace("_", " ").capitalize(), where, "What an indicator is broken down by")


def compute_messages(messages: Messages, compute: Path) -> None:
    """(d) domain and population labels, and the case-selection rules."""
    from pipelines.compute.model import Domain, Population

    model = compute / "model.py"
    for domain in Domain:
        messages.add(domain.label, model, "Scorecard domain")
    for pop in Population:
        messages.add(pop.label, model, "Measure population")
    cases = compute / "cases.py"
    for rule in case_rules(cases.read_text(encoding="utf-8")):
        messages.add(rule, cases, "Which cases are listed under an indicator off target")
    from pipelines.analyse import funnel

    for method in funnel.Overdispersion:
        if method is not funnel.Overdispersion.NONE:
            messages.add(method.value, funnel.__file__, "How a funnel plot's limits are widened for over-dispersion")


def case_rules(source: str) -> list[str]:
    """The string constants passed as ``Cases(rows, rule)``'s second argument, directly or
    through a local name assigned string constants."""
    tree = ast.parse(source)
    assigned: dict[str, list[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    assigned.setdefault(target.id, []).append(node.value.value)
    rules: list[str] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Cases"):
            continue
        arg = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "rule"), None)
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            found = [arg.value]
        elif isinstance(arg, ast.Name):
            found = assigned.get(arg.id, [])
        else:
            found = []
        rules.extend(r for r in found if r not in rules)
    return sorted(rules, key=lambda r: source.index(r))


def expectation_messages(messages: Messages, folder: Path) -> None:
    """(e) the validation checks' descriptions."""
    for path in sorted(folder.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        table = doc.get("name", path.stem)
        for relation in (doc.get("meta") or {}).get("relations") or []:
            if isinstance(relation.get("description"), str):
                messages.add(relation["description"].strip(), path, f"Validation check of the {table} table")
        for expectation in doc.get("expectations") or []:
            description = (expectation.get("meta") or {}).get("description")
            if isinstance(description, str):
                messages.add(description.strip(), path, f"Validation check of the {table} table")


def theme_messages(messages: Messages, path: Path) -> None:
    """(f) the comment themes' labels."""
    from pipelines.analyse.text.themes import load_taxonomy

    for theme in load_taxonomy(path).themes:
        messages.add(theme.label, path, "Comment theme")


def collect(root: Path = ROOT, indicators: Path | None = None) -> Messages:
    messages = Messages()
    python_messages(messages, root / "pipelines" / "publish")
    template_messages(messages, root / "reports")
    indicator_messages(messages, indicators or root / "indicators")
    compute_messages(messages, root / "pipelines" / "compute")
    expectation_messages(messages, root / "expectations")
    theme_messages(messages, root / "pipelines" / "analyse" / "text" / "themes.yaml")
    return messages


# --- placeholders ---------------------------------------------------------------------

_NAMED = re.compile(r"%\((\w+)\)[sdif]")


def is_format(msgid: str) -> bool:
    """Whether the report %-formats this message: it names a placeholder or escapes a
    percent sign (a template message always is formatted; ``%%`` is how it says ``%``)."""
    return bool(_NAMED.search(msgid)) or "%%" in msgid


def placeholder_problem(msgid: str, translation: str) -> str | None:
    """Why ``translation`` cannot stand for ``msgid`` (None when it can): the same named
    placeholders, and for a format string one that formats (every ``%`` escaped)."""
    wanted, got = sorted(_NAMED.findall(msgid)), sorted(_NAMED.findall(translation))
    if wanted != got and set(wanted) != set(got):
        return f"placeholders {wanted} in the message, {got} in the translation"
    if is_format(msgid):
        values = {name: "x" for name in wanted}
        try:
            translation % values
        except (KeyError, ValueError, TypeError) as exc:
            return f"does not format ({exc}): write a literal percent sign as %%"
        if msgid.count("%%") and not translation.count("%%"):
            return "the message has %% (a percent sign): so must the translation"
    return None


def _flags(msgid: str | tuple[str, str]) -> set[str]:
    first = msgid if isinstance(msgid, str) else msgid[0]
    return {"python-format"} if is_format(first) else {"no-python-format"}


# --- catalogues -----------------------------------------------------------------------


def _new_catalogue(code: str, creation: datetime | None = None) -> Catalog:
    return Catalog(
        locale=LANGUAGES[code],
        domain=DOMAIN,
        header_comment=HEADER,
        project="CareQI",
        version="monthly committee report",
        copyright_holder="CareQI",
        creation_date=creation or datetime.now(UTC),
        revision_date=datetime.now(UTC),
        language_team=f"CareQI {code}",
        last_translator="CareQI",
        msgid_bugs_address="the CareQI issue tracker",
        fuzzy=False,
    )


def read_catalogue(code: str) -> Catalog | None:
    path = catalogue_path(code)
    if not path.is_file():
        return None
    with path.open("rb") as fh:
        return read_po(fh, locale=LANGUAGES[code], domain=DOMAIN)


def _set_flags(message: Message, flags: Iterable[str]) -> None:
    message.flags = set(flags)


def updated(code: str, found: Messages, old: Catalog | None) -> Catalog:
    """``code``'s catalogue for ``found``: old translations kept, the rest obsolete."""
    creation = old.creation_date if old is not None else None
    new = _new_catalogue(code, creation if isinstance(creation, datetime) else None)
    if old is not None:
        new.last_translator = old.last_translator
        new.language_team = old.language_team
    previous: dict[tuple[str | None, str], Message] = {}
    if old is not None:
        previous.update({_key(m): m for m in old.obsolete.values()})
        previous.update({_key(m): m for m in old if m.id})
    plural_forms = new.num_plurals
    for key, entry in found.found.items():
        prev = previous.pop(key, None)
        translate = code != SOURCE and prev is not None
        if isinstance(entry.id, tuple):
            strings = ("",) * plural_forms
            if translate and isinstance(prev.string, tuple) and len(prev.string) == plural_forms:
                strings = tuple(prev.string)
            elif translate and isinstance(prev.string, str) and prev.string:
                strings = (prev.string,) * plural_forms
            string: str | tuple[str, ...] = strings
        else:
            string = ""
            if translate:
                string = prev.string if isinstance(prev.string, str) else (prev.string[0] if prev.string else "")
        flags = _flags(entry.id) | (({"fuzzy"} & set(prev.flags)) if translate else set())
        message = new.add(
            entry.id,
            string,
            locations=entry.locations,
            auto_comments=entry.comments,
            user_comments=list(prev.user_comments) if prev is not None else [],
            context=entry.context,
        )
        _set_flags(message, flags)
    # What is no longer used stays, obsolete, with its translation (English has none to keep).
    for key, message in previous.items():
        if code == SOURCE:
            continue
        if message.string and (not isinstance(message.string, tuple) or any(message.string)):
            message.locations = []
            new.obsolete[key[1] if key[0] is None else (key[1], key[0])] = message  # Catalog's own key
    return new


def _key(message: Message) -> tuple[str | None, str]:
    return message.context, message.id if isinstance(message.id, str) else message.id[0]


def po_bytes(catalogue: Catalog) -> bytes:
    buf = io.BytesIO()
    write_po(buf, catalogue, width=100, sort_output=True, include_lineno=False)
    return buf.getvalue()


_DATES = re.compile(rb'^"(?:POT-Creation-Date|PO-Revision-Date): .*\\n"\n', re.M)


def _same(a: bytes, b: bytes) -> bool:
    return _DATES.sub(b"", a) == _DATES.sub(b"", b)


def untranslated(code: str, found: Messages, catalogue: Catalog | None) -> list[tuple[str, str]]:
    """(msgid, problem) for each message ``code`` cannot show in its own words."""
    problems: list[tuple[str, str]] = []
    for (context, key), entry in found.found.items():
        message = catalogue.get(key, context=context) if catalogue is not None else None
        if context:
            key = f"{key} (context: {context})"
        if message is None:
            problems.append((key, "not in the catalogue"))
            continue
        if message.fuzzy:
            problems.append((key, "translation marked fuzzy"))
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if not strings or not all(strings):
            problems.append((key, "no translation"))
            continue
        # A plural's translation keeps the placeholders of its singular or of its plural form.
        sources = entry.id if isinstance(entry.id, tuple) else (entry.id,)
        for string in strings:
            checked = [placeholder_problem(source, string) for source in sources]
            if all(checked):
                problems.append((key, str(checked[-1])))
                break
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; fail when a translation is missing")
    parser.add_argument("--indicators", type=Path, default=ROOT / "indicators", help="the indicator folder")
    args = parser.parse_args(argv)

    found = collect(ROOT, args.indicators)
    failed = False
    for code in LANGUAGES:
        old = read_catalogue(code)
        if args.check:
            if code == SOURCE:
                continue
            problems = untranslated(code, found, old)
            for msgid, problem in problems:
                print(f"{code}: {problem}: {msgid!r}")
            if problems:
                print(f"{code}: {len(problems)} of {len(found.found)} messages lack a usable translation")
                failed = True
            else:
                print(f"{code}: all {len(found.found)} messages translated")
            continue
        new = updated(code, found, old)
        path = catalogue_path(code)
        data = po_bytes(new)
        if path.is_file() and _same(path.read_bytes(), data):
            print(f"{code}: {_relative(path)} unchanged ({len(found.found)} messages)")
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        missing = len(untranslated(code, found, new)) if code != SOURCE else 0
        print(f"{code}: wrote {_relative(path)} ({len(found.found)} messages, {missing} untranslated)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
