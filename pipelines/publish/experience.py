"""The report's patient-experience part: what patients said and how their complaints were handled.

Built from the month's survey returns, the complaints register as it stood at month end,
the patient-days of the month and the comment labels (:class:`FeedbackData`), all read by
the report stage. Four blocks, each answering a committee question:

* **Global items**: HCAHPS-style top / middle / bottom box and linear mean score of
  "would you recommend" and the 0-10 rating, per facility (:mod:`pipelines.analyse.experience`),
  suppressed below :data:`MIN_RESPONSES` returns.
* **SERVQUAL**: per RATER dimension, what patients expected, what they perceived and the
  gap with its 95% interval, system-wide and per ward (:mod:`pipelines.analyse.servqual`,
  items mapped by the survey file, :mod:`pipelines.surveys`).
* **Complaints register**: received, per 1,000 patient-days by category and by channel,
  the backlog open at month end and how much of it is past its deadline, and repeat
  complainants (two or more complaints in 12 months).
* **What the comments say**: the themes most mentioned this month with their trend and
  share of negative comments, and a few example comments, masked (names, phone numbers,
  e-mail addresses, NHS numbers) before they reach the page; the template autoescapes them.

Pure: frames in, a JSON-able dict out, in the active report language
(:func:`pipelines.publish.i18n.using`): labels go through the catalogue, numbers through
the locale. Codes of the register (categories, channels) and of the survey file (questions,
dimensions) are shown by their labels here; comments are data and shown as written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pipelines.periods import Month, labels_of
from pipelines.publish.i18n import N_, _, current, number
from pipelines.surveys import Surveys

#: Below this many returns a group's survey scores are not shown (too few to read).
MIN_RESPONSES = 30
#: Example comments shown per theme.
EXAMPLES = 2
#: A theme mentioned fewer times than this is not quoted (a lone comment is easier to attribute).
EXAMPLE_MIN_MENTIONS = 3
#: Themes listed.
TOP_THEMES = 6
#: How many months back a repeat complaint counts.
REPEAT_MONTHS = 12

#: The row of every facility together.
ALL_FACILITIES_LABEL = N_("All facilities")
#: The global items (survey_responses columns scored under ``scales``), as the table names them.
QUESTION_LABELS: dict[str, str] = {
    "recommend": N_("Recommend"),
    "overall_rating": N_("Overall rating"),
}
#: SERVQUAL's translations are told apart from the same words elsewhere in the report
#: ("Assurance" is also the SPC assurance icon's column) by this context.
SERVQUAL = "SERVQUAL dimension"


def _dimension_label(code: Any) -> str:
    """A SERVQUAL dimension (the five RATER ones and the ten of 1985) as the tables name it."""
    labels = {
        "reliability": pgettext("SERVQUAL dimension", "Reliability"),
        "assurance": pgettext("SERVQUAL dimension", "Assurance"),
        "tangibles": pgettext("SERVQUAL dimension", "Tangibles"),
        "empathy": pgettext("SERVQUAL dimension", "Empathy"),
        "responsiveness": pgettext("SERVQUAL dimension", "Responsiveness"),
        "competence": pgettext("SERVQUAL dimension", "Competence"),
        "access": pgettext("SERVQUAL dimension", "Access"),
        "courtesy": pgettext("SERVQUAL dimension", "Courtesy"),
        "communication": pgettext("SERVQUAL dimension", "Communication"),
        "credibility": pgettext("SERVQUAL dimension", "Credibility"),
        "security": pgettext("SERVQUAL dimension", "Security"),
        "understanding_the_patient": pgettext("SERVQUAL dimension", "Understanding the patient"),
    }
    key = str(code)
    return labels.get(key) or pgettext(SERVQUAL, key.replace("_", " ").capitalize())


def pgettext(context: str, message: str) -> str:
    """``message`` in the report's language as meant in ``context``."""
    return current().translations.pgettext(context, message)


#: The complaints register's category and channel codes (expectations/complaints.json), and
#: a complaint without one.
REGISTER_LABELS: dict[str, str] = {
    "clinical_care": N_("Clinical care"),
    "communication": N_("Communication"),
    "waiting_times": N_("Waiting times"),
    "staff_attitude": N_("Staff attitude"),
    "environment": N_("Environment"),
    "discharge": N_("Discharge"),
    "medication": N_("Medication"),
    "other": N_("Other"),
    "phone": N_("Phone"),
    "email": N_("Email"),
    "letter": N_("Letter"),
    "web": N_("Web"),
    "in_person": N_("In person"),
    "not recorded": N_("Not recorded"),
}
#: The comment model's sentiments, as the sentence under each block names them.
SENTIMENT_LABELS: dict[str, str] = {
    "positive": N_("positive"),
    "neutral": N_("neutral"),
    "negative": N_("negative"),
}


def _label(labels: Mapping[str, str], code: Any) -> str:
    """A code's label in the report's language; an unknown code as ``Its words``."""
    key = str(code)
    return _(labels.get(key, key.replace("_", " ").capitalize()))


@dataclass(frozen=True)
class FeedbackData:
    """What the part is built from (read by the report stage)."""

    surveys: pd.DataFrame  # survey_responses of the trend window
    complaints: pd.DataFrame  # the register at month end (every complaint received up to then)
    patient_days: pd.DataFrame  # facility_id, patient_days of the month (empty: from the bed-day indicator)
    labels: pd.DataFrame  # source_table, record_id, themes, sentiment (texts of the window)
    definitions: Surveys = field(default_factory=Surveys)
    theme_labels: Mapping[str, str] = field(default_factory=dict)


def _pct(x: Any) -> str:
    return "–" if x is None or pd.isna(x) else f"{float(x):.0f}%"


def _num(x: Any, digits: int = 1) -> str:
    return "–" if x is None or pd.isna(x) else number(float(x), digits)


def _coded_scales() -> dict[str, Any]:
    from pipelines.analyse.experience import RATING_0_10, linear_scale

    return {
        # survey_responses.recommend is coded 1 definitely no .. 4 definitely yes
        "recommend": linear_scale((1, 2, 3, 4), top=(4,), middle=(3,), bottom=(1, 2), name="recommend"),
        "rating_0_10": RATING_0_10,
    }


def global_items(month: pd.DataFrame, data: FeedbackData, facilities: Mapping[str, str]) -> list[dict[str, Any]]:
    """Box scores and linear means of the global items, system-wide then per facility."""
    from pipelines.analyse.experience import box_scores, round_half_up, stars_from_scores

    scales = {col: _coded_scales()[name] for col, name in data.definitions.scales.items() if name in _coded_scales()}
    if not scales or not len(month):
        return []
    long = month.melt(
        id_vars=["response_id", "facility_id"], value_vars=list(scales), var_name="question", value_name="answer"
    )
    system = box_scores(long.assign(facility_id="ALL"), scales, by=["facility_id"], min_n=MIN_RESPONSES)
    by_fac = box_scores(long, scales, by=["facility_id"], min_n=MIN_RESPONSES)
    rows = []
    cuts = data.definitions.stars
    for frame in (system, by_fac):
        for r in frame.itertuples():
            star = None
            if r.measure in cuts and not r.suppressed and not pd.isna(r.linear_score):
                # Banded on the whole-number score the table shows, as CMS bands its published scores.
                shown = round_half_up([float(r.linear_score)])
                star = int(stars_from_scores(shown, cuts[r.measure])[0])
            rows.append(
                {
                    "facility": _(ALL_FACILITIES_LABEL) if r.facility_id == "ALL" else facilities.get(r.facility_id,
                                                                                                  r.facility_id),
                    "question": r.measure.replace("_", " "),
                    "question_label": _label(QUESTION_LABELS, r.measure),
                    "n": int(r.n),
                    "top": _pct(r.top_box),
                    "middle": _pct(r.middle_box),
                    "bottom": _pct(r.bottom_box),
                    "linear": "–" if pd.isna(r.linear_score) else f"{int(round_half_up([float(r.linear_score)])[0])}",
                    "stars": star,
                    "suppressed": bool(r.suppressed),
                }
            )  # fmt: skip
    return rows


def servqual(
    month: pd.DataFrame, data: FeedbackData, wards: Mapping[str, str], facilities: Mapping[str, str]
) -> dict[str, Any]:
    """SERVQUAL gaps per RATER dimension, system-wide and per ward."""
    from pipelines.analyse.servqual import dimension_gaps

    items = data.definitions.servqual_items
    cols = [i.column for i in items if i.column in month.columns]
    if not cols or not len(month):
        return {"system": [], "facilities": [], "wards": [], "dimensions": []}
    meaning = {i.column: i for i in items}
    long = month.melt(
        id_vars=["response_id", "facility_id", "ward_id"], value_vars=cols, var_name="item", value_name="value"
    ).dropna(subset=["value"])
    long["dimension"] = long["item"].map(lambda c: meaning[c].dimension)
    long["kind"] = long["item"].map(lambda c: meaning[c].kind)
    long["value"] = long["value"].astype("float64")

    def rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
        out = []
        for r in frame.itertuples():
            ward = str(getattr(r, "ward_id", "") or "")
            fac = str(getattr(r, "facility_id", "") or "")
            out.append(
                {
                    "ward": wards.get(ward, ward),
                    "facility": _(ALL_FACILITIES_LABEL) if fac == "ALL" else facilities.get(fac, fac),
                    "dimension": _dimension_label(r.dimension),
                    "n": int(r.n_responses),
                    "expected": _num(r.mean_expectation, 2),
                    "perceived": _num(r.mean_perception, 2),
                    "gap": _num(r.gap, 2),
                    "gap_value": None if pd.isna(r.gap) else float(r.gap),
                    "ci": "–"
                    if pd.isna(r.gap_low)
                    else _("%(low)s to %(high)s") % {"low": _num(r.gap_low, 2), "high": _num(r.gap_high, 2)},
                    "shortfall": bool(not pd.isna(r.gap_high) and r.gap_high < 0),
                    "suppressed": bool(r.suppressed),
                }
            )
        return out

    system = dimension_gaps(long.assign(facility_id="ALL"), by=["facility_id"], level="rater", min_n=MIN_RESPONSES)
    by_facility = dimension_gaps(long, by=["facility_id"], level="rater", min_n=MIN_RESPONSES)
    by_ward = dimension_gaps(long.dropna(subset=["ward_id"]), by=["ward_id"], level="rater", min_n=MIN_RESPONSES)
    by_ward = by_ward[~by_ward["suppressed"].astype(bool)]
    # The wards furthest below expectation first: where the committee looks.
    worst = by_ward.sort_values(["gap", "ward_id"], kind="stable").head(10)
    return {
        "system": rows(system),
        "facilities": rows(by_facility),
        "wards": rows(worst),
        "dimensions": sorted({i.dimension for i in items}),
    }


def complaints_register(
    period: str,
    data: FeedbackData,
    indicator_rows: Sequence[Mapping[str, Any]],
    backlog: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Received this month, rates per 1,000 patient-days by category and channel, the open
    backlog at month end, repeat complainants, and the service-level indicators' figures.
    ``backlog`` (open, overdue) is the backlog indicator's own count, so the figure beside
    it cannot differ; without it the register as the month's batch left it is counted."""
    m = Month.parse(period)
    start, end = pd.Timestamp(m.start), pd.Timestamp(m.end)
    c = data.complaints
    received = pd.to_datetime(c["received_at"]) if len(c) else pd.Series(dtype="datetime64[us]")
    month = c[(received >= start) & (received < end)] if len(c) else c
    days = float(data.patient_days["patient_days"].sum()) if len(data.patient_days) else 0.0

    def rate(n: int) -> str:
        return "–" if days <= 0 else number(1000.0 * n / days, 2)

    def breakdown(column: str) -> list[dict[str, Any]]:
        counts = month[column].astype("string").fillna("not recorded").value_counts()
        return [
            {"code": str(k), "label": _label(REGISTER_LABELS, k), "n": int(v), "rate": rate(int(v))}
            for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
        ]

    resolved = pd.to_datetime(c["resolved_at"]) if len(c) else pd.Series(dtype="datetime64[us]")
    open_at_end = c[(received < end) & (resolved.isna() | (resolved >= end))] if len(c) else c
    open_at_end = open_at_end[open_at_end["outcome"].astype("string").fillna("") != "withdrawn"]
    repeat = 0
    complainants = 0
    if len(month) and "complainant_id" in c:
        since = pd.Timestamp(m.shift(-(REPEAT_MONTHS - 1)).start)
        window = c[(received >= since) & (received < end)]
        per = window["complainant_id"].dropna().value_counts()
        who = month["complainant_id"].dropna().unique()
        complainants = len(who)
        repeat = int((per.reindex(who).fillna(0) >= 2).sum())
    return {
        "received": len(month),
        "patient_days": number(days),
        "rate": rate(len(month)),
        "by_category": breakdown("category") if len(month) else [],
        "by_channel": breakdown("channel") if len(month) else [],
        "open_at_end": backlog[0] if backlog is not None else len(open_at_end),
        "overdue_at_end": backlog[1] if backlog is not None else None,
        "complainants": complainants,
        "repeat_complainants": repeat,
        "repeat_share": "–" if not complainants else f"{100.0 * repeat / complainants:.0f}%",
        "service_levels": list(indicator_rows),
    }


#: The texts each block of "What the comments say" reads, and whether it may quote them.
SOURCES = (
    ("survey_responses", N_("Survey comments"), True),
    # Complaint texts tell a person's own story: counted by theme, never quoted in a committee paper.
    ("complaints", N_("Complaint texts"), False),
)


def _source_themes(
    frame: pd.DataFrame, period: str, window: Sequence[str], data: FeedbackData, quote: bool, top: int
) -> dict[str, Any]:
    from pipelines.analyse.text.redact import mask_identifiers

    now = frame[frame["month"] == period]
    exploded = frame.assign(theme=frame["themes"].astype("string").fillna("").str.split(";")).explode("theme")
    exploded = exploded[exploded["theme"].astype("string").fillna("") != ""]
    this = exploded[exploded["month"] == period]
    counts = this["theme"].value_counts()
    order = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:top]
    themes = []
    for theme, n in order:
        rows = this[this["theme"] == theme]
        trend = exploded[exploded["theme"] == theme].groupby("month").size().reindex(list(window), fill_value=0)
        examples: list[str] = []
        if quote and n >= EXAMPLE_MIN_MENTIONS:
            negative = rows[rows["sentiment"] == "negative"].sort_values(["written_on", "record_id"], kind="stable")
            # Different comments, not the same sentence twice.
            picks = (negative if len(negative) else rows).drop_duplicates("text").head(EXAMPLES)
            examples = [mask_identifiers(str(t)) for t in picks["text"]]
        themes.append(
            {
                "id": str(theme),
                # The taxonomy's labels are in the catalogue (pipelines/analyse/text/themes.yaml).
                "label": _label(data.theme_labels, theme),
                "n": int(n),
                "negative": _pct(100.0 * (rows["sentiment"] == "negative").mean()),
                "trend": [int(v) for v in trend.to_numpy()],
                "examples": examples,
            }
        )
    sentiment = now["sentiment"].astype("string").fillna("unknown").value_counts()
    mix = [
        {
            "id": k,
            "label": _(label),
            "n": int(sentiment.get(k, 0)),
            "share": _pct(100.0 * sentiment.get(k, 0) / max(len(now), 1)),
        }
        for k, label in SENTIMENT_LABELS.items()
    ]
    return {
        "texts": len(now),
        "themes": themes,
        "quoted": quote,
        "sentiment": mix,
        "shares": {s["id"]: s["share"] for s in mix},
    }


def comment_themes(
    period: str, window: Sequence[str], data: FeedbackData, *, top: int = TOP_THEMES
) -> list[dict[str, Any]]:
    """Per source (survey comments, complaint texts): the most mentioned themes this month,
    their monthly counts over the window, their share of negative texts and the sentiment
    mix; a few masked example comments from surveys, for themes mentioned at least
    :data:`EXAMPLE_MIN_MENTIONS` times. Kept apart: complaints are negative by nature and
    would drown what survey respondents say."""
    labels = data.labels
    if not len(labels):
        return []
    frame = labels.merge(_texts(data), on=["source_table", "record_id"], how="inner")
    frame["month"] = labels_of(pd.to_datetime(frame["written_on"]))
    frame = frame[frame["month"].isin(list(window))]
    out = []
    for table, label, quote in SOURCES:
        part = frame[frame["source_table"] == table]
        if len(part):
            out.append({"source": table, "label": _(label), **_source_themes(part, period, window, data, quote, top)})
    return out


def _texts(data: FeedbackData) -> pd.DataFrame:
    parts = []
    for table, frame, key, column, when in (
        ("survey_responses", data.surveys, "response_id", "comment", "completed_on"),
        ("complaints", data.complaints, "complaint_id", "description", "received_at"),
    ):
        if not len(frame) or column not in frame:
            continue
        has = frame[column].astype("string").str.strip().fillna("") != ""
        sub = frame.loc[has]
        parts.append(
            pd.DataFrame(
                {
                    "source_table": table,
                    "record_id": sub[key].astype("string"),
                    "text": sub[column].astype("string"),
                    "written_on": pd.to_datetime(sub[when]),
                }
            )
        )
    if not parts:
        return pd.DataFrame(columns=["source_table", "record_id", "text", "written_on"])
    return pd.concat(parts, ignore_index=True)


def texts_of(surveys: pd.DataFrame, complaints: pd.DataFrame) -> pd.DataFrame:
    """Every non-blank text of these frames: source_table, record_id, text, written_on (for labelling)."""
    return _texts(FeedbackData(surveys, complaints, pd.DataFrame(), pd.DataFrame()))


def build_patient_experience(
    period: str,
    window: Sequence[str],
    data: FeedbackData,
    facilities: Mapping[str, str],
    wards: Mapping[str, str],
    indicator_rows: Sequence[Mapping[str, Any]] = (),
    backlog: tuple[int, int] | None = None,
) -> dict[str, Any]:
    m = Month.parse(period)
    s = data.surveys
    completed = pd.to_datetime(s["completed_on"]) if len(s) else pd.Series(dtype="datetime64[us]")
    month = s[(completed >= pd.Timestamp(m.start)) & (completed < pd.Timestamp(m.end))] if len(s) else s
    return {
        "responses": len(month),
        "min_responses": MIN_RESPONSES,
        "global_items": global_items(month, data, facilities),
        "servqual": servqual(month, data, wards, facilities),
        "complaints": complaints_register(period, data, indicator_rows, backlog),
        "themes": comment_themes(period, window, data),
        "has_data": bool(len(month) or len(data.complaints)),
    }


__all__ = ["FeedbackData", "build_patient_experience", "texts_of"]
