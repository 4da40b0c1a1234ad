"""Mask personal identifiers in free-text comments before they are shown or learned from.

Patient comments name staff ("Nurse Jane was lovely"), give phone numbers to call back and now and
then an NHS number or an address. A report must not repeat them, and a model trained on them should
not remember them, so both go through :func:`mask_identifiers` first. The masks are typed
(``[name]``, ``[phone]``, ``[email]``, ``[id]``, ``[postcode]``, ``[date]``) so a reader still
follows the sentence and the classifier still sees "a name was here".

It is rules, not a model (no model may be fetched at run time), in this order:

1. e-mail addresses -> ``[email]``;
2. NHS numbers: ten digits grouped 3-3-4 (space or dash) that pass the NHS modulus-11 check digit,
   or ten digits in a row that pass it -> ``[id]``;
3. phone numbers: a run of digits with spaces, dashes, dots or brackets holding 10 to 13 digits,
   optionally ``+44``/``+1`` - UK (``07700 900123``, ``+44 (0)20 7946 0958``, ``0800 123 4567``)
   and US (``(555) 123-4567``, ``1-800-555-0199``) -> ``[phone]``; a ten-digit 3-3-4 group that fails
   the NHS check is a phone too. ``111`` and ``999`` (the services) are left alone;
4. full UK postcodes (``NE1 4LP``, ``sw1a 1aa``) -> ``[postcode]``;
5. dates with day, month and year (``12/03/1956``, ``3-4-56``, ``12 March 1956``, ``March 12, 1956``)
   -> ``[date]``: a date of birth is one of them, and a visit date narrows a patient down too;
6. names: a title (Dr, Mr, Mrs, Ms, Miss, Mx, Prof, Nurse, Sister, Matron, ...) followed by a
   capitalised word keeps the title and masks the word (``Dr [name]``), and a capitalised word that is
   a common UK/US first name is masked together with a capitalised word after it (a surname).
   First names that are also ordinary words (Will, Grace, Hope, Mark, Rose, ...) count mid-sentence,
   where the capital shows they are names, and at a sentence start only before "was", "is", "has",
   "had" or "and" plus another capitalised word ("Mark was lovely", "Grace and Hope were kind");
   month names (May, June, April, August) only after a title.

What it misses (by design or because rules cannot know): names written in lower case or in capitals
("jane was lovely", "THANKS JANE"), surnames on their own ("Smith was rude"), uncommon or non-Anglo
first names not in the list (the list is a few hundred names), nicknames; street addresses, outward-
only postcodes ("NE1"), hospital numbers and other local identifiers that are not 10 digits; dates
without a year; phone numbers with fewer than 10 digits. A ten-digit 3-3-4 phone number that happens
to pass the NHS check digit (about one in eleven) is masked as ``[id]``, not ``[phone]`` - masked
either way. It can also over-mask: a first name used as a place or brand ("Victoria station") and a
capitalised word after a title ("Nurse Practitioner" is kept; rarer phrases may not be).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pandas as pd

EMAIL, PHONE, ID, POSTCODE, DATE, NAME = "[email]", "[phone]", "[id]", "[postcode]", "[date]", "[name]"

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")

# Digit runs that may be a phone or NHS number: an optional country code, then digits with
# single separators or a bracketed area code; the callback counts the digits.
_NUMBER = re.compile(
    r"(?<![\w+])(?:\+\s?\d{1,3}[\s.-]?)?(?:\(\s?0?\d{1,5}\s?\)[\s.-]?)?\d(?:[\s.-]?\(?\d\)?){6,14}(?![\w])"
)
_NHS_GROUPED = re.compile(r"^\d{3}[ -]\d{3}[ -]\d{4}$")

_POSTCODE = re.compile(r"\b(?:GIR\s?0AA|[A-PR-UWYZ][A-HK-Y]?\d[A-Z\d]?\s?\d[ABD-HJLNP-UW-Z]{2})\b", re.IGNORECASE)

_MONTHS = (
    "jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?"
    "|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
)
_DATE = re.compile(
    r"\b(?:"
    r"(?:0?[1-9]|[12]\d|3[01])[/.-](?:0?[1-9]|1[0-2])[/.-](?:19|20)?\d\d"  # 12/03/1956, 3-4-56
    r"|(?:19|20)\d\d-(?:0?[1-9]|1[0-2])-(?:0?[1-9]|[12]\d|3[01])"  # 1956-03-12
    rf"|(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?(?:\s+of)?\s+(?:{_MONTHS})\.?,?\s+(?:19|20)\d\d"  # 12th March 1956
    rf"|(?:{_MONTHS})\.?\s+(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?,?\s+(?:19|20)\d\d"  # March 12, 1956
    r")\b",
    re.IGNORECASE,
)

# Titles that precede a name. Abbreviations may carry a full stop; words such as Nurse may not
# ("thanks to the nurse. Excellent care" must not mask "Excellent").
_TITLE = re.compile(
    r"\b(?P<title>(?i:(?:Dr|Mr|Mrs|Ms|Mx|Prof|Rev|Revd)\.?|Doctor|Miss|Professor|Nurse|Sister|Matron|Sir|Dame"
    r"|Father|Paramedic|Midwife|Consultant))\s+(?P<initial>[A-Z]\.?\s+)?"
    r"(?P<name>[A-Z][A-Za-z'’-]*[a-z](?:\s+[A-Z][A-Za-z'’-]*[a-z])?)"
)
_CAPITALISED = re.compile(r"\b[A-Z][a-z]*(?:[A-Z]?[a-z]+)?(?:['’-][A-Z]?[a-z]+)*")
_POSSESSIVE = re.compile(r"['’]s$")

# Capitalised words that follow a title or a first name but are not names.
_NOT_NAMES = frozenset(
    """
    A An And As At But By For From He Her His How I If In Is It Its My No Not Of On Or Our She So That The Their
    Then There They This To Us Was We Were What When Who Why Will With You Your All Also Always Any Very Just Thank
    Thanks Please Excellent Great Good Lovely Brilliant Amazing Fantastic Wonderful Nice Kind Helpful Fab Superb
    Practitioner Practitioners Ward Wards Team Teams Unit Units Department Station Service Services Hospital Surgery
    Centre Center Clinic Christmas Staff Nurse Nurses Doctor Doctors Sister Sisters Matron Consultant Consultants
    Paramedic Paramedics Midwife Midwives Manager Assistant Associate Specialist Registrar Led Line Call Care Health
    Mental Community District Practice General Ambulance Crew Today Yesterday Monday Tuesday Wednesday Thursday Friday
    Saturday Sunday NHS GP A&E Covid Thankyou Everyone Everything Nothing Nobody Someone Somebody Sorry Yes Well
    However Although After Before Because Since Unfortunately Overall Sadly Hopefully Otherwise Again Finally First
    Now Once While Whilst Infirmary House Road Street Lodge Court Park Hall Royal University Memorial Centre Clinic
    Surgeon Surgeons Anaesthetist Radiographer Physio Physiotherapist Psychiatrist Psychologist Therapist Pharmacist
    Receptionist Receptionists Porter Porters Carer Carers Support Worker Workers Healthcare Technician
    """.split()
)

# Common UK and US given names (ONS baby-name and US SSA top lists, typed, not generated). Names that
# are also ordinary English words are in _WORD_NAMES and count only mid-sentence.
_FIRST_NAMES = frozenset(
    """
    Aaron Abbie Abby Abdul Abigail Adam Adrian Agnes Aidan Aiden Alan Alana Albert Alex Alexa Alexander Alexandra
    Alfie Alfred Ali Alice Alicia Alison Allan Allison Alma Amanda Amelia Amir Amy Andrea Andrew Andy Angela Angus Anita
    Ann Anna Anne Annette Annie Anthony Antonio Archie Arthur Ashley Ashton Audrey Ava Barbara Barry Beatrice Becky
    Belinda Ben Benjamin Bernard Beryl Beth Bethany Betty Beverley Beverly Billy Blake Bobby Brandon Brenda Brendan
    Brian Bridget Brittany Bruce Bryan Caitlin Callum Cameron Carl Carla Carlos Carmen Caroline Carolyn Catherine
    Cathy Cecil Charlene Charles Charlie Charlotte Chelsea Cheryl Chloe Chris Christina Christine Christopher
    Claire Clara Clare Clive Colin Connor Craig Cynthia Daisy Dale Damian Damien Daniel Danielle Danny Darren David
    Dawn Debbie Deborah Debra Declan Denise Dennis Derek Diana Diane Dianne Dominic Donald Donna Doreen Doris Dorothy
    Douglas Duncan Dylan Eddie Edith Edward Eileen Elaine Eleanor Elijah Elizabeth Ella Ellen Ellie Elliot Elliott
    Eloise Elsie Emily Emma Eric Erin Ethan Eva Evelyn Evie Fatima Felicity Fiona Florence Frances Francesca Francis
    Freddie Frederick Freya Gail Gareth Gary Gavin Gemma Geoffrey George Georgia Georgina Gerald Geraldine Gillian
    Glen Glenn Gloria Gordon Graham Grant Greg Gregory Gwen Hannah Harold Harriet Harrison Harvey Hayley Heidi
    Helen Henry Hilary Howard Hugh Hugo Ian Imogen Irene Isaac Isabel Isabella Isabelle Isla Ivan Jackie Jackson
    Jacob Jacqueline Jake James Jamie Jan Jane Janet Janice Jasmine Jason Jayden Jean Jeff Jeffrey Jenna Jennifer Jenny
    Jeremy Jessica Jill Jim Jimmy Joan Joanna Joanne Jodie Joe Joel Joseph Josephine Joshua Josh Joyce Judith Judy
    Julia Julian Julie Justin Karen Kate Katherine Kathleen Kathryn Katie Katy Kayla Keith Kelly Kenneth Kerry Kevin
    Kieran Kim Kimberley Kimberly Kirsty Kyle Laura Lauren Leah Leanne Leo Leon Leonard Leslie Lesley Lewis Liam Lily
    Linda Lindsay Lindsey Lisa Logan Lois Lorna Lorraine Louise Louis Lucas Lucy Luke Lydia Lynda Lynn Lynne Madison
    Maisie Malcolm Mandy Margaret Maria Marian Marie Marilyn Marion Martha Martin Mary Mason Matilda Matthew Maureen
    Megan Melanie Melissa Michael Michaela Michelle Mildred Millie Mohammed Mohammad Muhammad Molly Monica Nancy
    Naomi Natalie Natasha Nathan Neil Nicholas Nicola Nicole Nigel Noah Norma Norman Olga Oliver Olivia Oscar Owen
    Pamela Patricia Patrick Paul Paula Pauline Peter Philip Phillip Phoebe Phyllis Rachel Raymond Rebecca Regina
    Rhys Richard Ricky Rita Robert Roberta Roger Ronald Rosemary Ross Ruth Ryan Sally Samantha Samuel Sam Sandra
    Sara Sarah Scarlett Scott Sean Sebastian Shane Shannon Sharon Sheila Shirley Simon Sofia Sophia Sophie Stacey
    Stanley Stella Stephanie Stephen Steve Steven Stewart Stuart Susan Suzanne Sylvia Tanya Teresa Terence Terry
    Theo Theodore Theresa Thomas Tim Timothy Tina Toby Tom Tommy Tony Tracey Tracy Trevor Tyler Valerie Vanessa
    Vera Veronica Victor Victoria Vincent Vivian Walter Wendy William Yvonne Zachary Zoe Zara Priya Aisha Amina Omar
    Yusuf Ibrahim Hassan Hussain Imran Raj Ravi Sanjay Anil Sunita Deepak Arjun Ayesha Zainab Maryam Wei Mei Jin
    """.split()
)
_WORD_NAMES = frozenset(
    """
    Will Bill Mark Grace Hope Joy Faith Rose Amber Summer Frank Holly Ivy Iris Poppy Ruby Violet Heather Hazel Jade
    Crystal Angel Penny Robin Sue Pat Rob Bob Harry Jack Carol Dean Ray Don Guy Max Miles Lee Kay Ed Al Eve Sandy
    Hunter Chase Jordan Christian Faye Sky
    """.split()
)
_NAME_VERB = re.compile(r" (?:was|is|were|has|had)\b| and [A-Z][a-z]")
_OPENERS = " \t\"'“‘("
_ENDERS = ".!?\n:;-"


def nhs_number_valid(digits: str) -> bool:
    """The NHS number modulus-11 check: weights 10..2 on the first nine digits, check digit last."""
    if len(digits) != 10 or not digits.isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    return check != 10 and check == int(digits[9])


def _number(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = re.sub(r"\D", "", text)
    if len(digits) == 10 and (_NHS_GROUPED.match(text) or text.isdigit()) and nhs_number_valid(digits):
        return ID
    if 10 <= len(digits) <= 13:
        return PHONE
    return text


def _title(match: re.Match[str]) -> str:
    words = match.group("name").split()
    if words[0] in _NOT_NAMES or words[0].capitalize() in _NOT_NAMES:
        return match.group(0)
    tail = " " + words[1] if len(words) > 1 and words[1] in _NOT_NAMES else ""
    return f"{match.group('title')} {NAME}{tail}"


def _is_first_name(word: str, text: str, start: int) -> bool:
    if word in _FIRST_NAMES:
        return True
    if word in _WORD_NAMES:
        before = text[max(0, start - 12) : start].rstrip(_OPENERS)
        at_sentence_start = start == 0 or (not before and start <= 12) or (before != "" and before[-1] in _ENDERS)
        # At a sentence start the capital proves nothing; "Mark was lovely" still reads as a name.
        return not at_sentence_start or _NAME_VERB.match(text, start + len(word)) is not None
    return False


def _names(text: str) -> str:
    """Mask first names (and a capitalised surname after them) found among capitalised words.

    A possessive keeps its ending ("Jane's" -> "[name]'s") and then takes no surname.
    """
    out: list[str] = []
    pos = 0
    words = list(_CAPITALISED.finditer(text))
    i = 0
    while i < len(words):
        word = words[i]
        base = _POSSESSIVE.sub("", word.group(0))
        if not _is_first_name(base, text, word.start()) or text[word.start() - 1 : word.start()] == "[":
            i += 1
            continue
        end = word.start() + len(base)
        j = i + 1
        # A capitalised word right after (one space) is taken as the surname, unless it is a common word.
        if (
            end == word.end()
            and j < len(words)
            and text[end : words[j].start()] == " "
            and _POSSESSIVE.sub("", words[j].group(0)) not in _NOT_NAMES
        ):
            end = words[j].start() + len(_POSSESSIVE.sub("", words[j].group(0)))
            j += 1
        out.append(text[pos : word.start()])
        out.append(NAME)
        pos = end
        i = j
    out.append(text[pos:])
    return "".join(out)


def mask_identifiers(text: str) -> str:
    """``text`` with e-mails, NHS numbers, phone numbers, postcodes, full dates and names masked.

    Anything not a ``str`` (``None``, ``NaN``) is returned unchanged so that callers can map it
    over a column with blanks.
    """
    if not isinstance(text, str) or not text:
        return text
    text = _EMAIL.sub(EMAIL, text)
    text = _DATE.sub(DATE, text)
    text = _NUMBER.sub(_number, text)
    text = _POSTCODE.sub(POSTCODE, text)
    text = _TITLE.sub(_title, text)
    return _names(text)


def mask_series(texts: pd.Series | Iterable[str | None]) -> pd.Series:
    """:func:`mask_identifiers` over a column (blanks and missing values kept as they are)."""
    series = texts if isinstance(texts, pd.Series) else pd.Series(list(texts), dtype=object)
    return series.map(mask_identifiers, na_action="ignore")
