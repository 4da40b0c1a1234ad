"""How well the comment model does on labelled NHS FFT comments it never saw in training.

The labelled data is the pxtextmining FFT file (``v6framework_230831.csv``: one row per comment,
the text in ``FFT answer``, the labeller's sentiment 1-5 in ``Comment sentiment``, 49 one-hot topic
labels). Comments are split by respondent, never by row - one person's answers to "what was good"
and "what could we do better" share words, and splitting them would leak - with a stable hash
(``sha256(salt + Respondent ID) mod k``) so the split needs no stored list of IDs and a new
respondent always falls into the same fold. The rule is read from the artefact's JSON, so evaluation
always uses the split the model was trained with; the test fold is never trained on.

Scored rows: the test fold's comments that are not blank and not placeholders (the labellers mark
blank answers and "did not answer" as "Labelling not possible"; pxtextmining scores that label and
gets 1.00, which says nothing about text). Themes: per-theme precision, recall, F1 and support,
micro F1 (pooled over all theme decisions) and macro F1 (the unweighted mean over the themes present
in the test fold, so rare themes count as much as common ones). Sentiment: accuracy over scored rows
that have a sentiment label (1-2 positive, 3 neutral - the labellers also put mixed comments there -
4-5 negative), with the confusion counts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.analyse.text.classifier import SENTIMENTS, CommentModel, load_model, predict_prepared, prepare
from pipelines.analyse.text.themes import FFT_LABELS, Taxonomy, load_taxonomy

#: Where the labelled file sits under the shared data folder (``DEFAULT_FILE`` is the same path).
FFT_DATASET = Path("nhs-fft-feedback-pxtextmining") / "v6framework_230831.csv"
DEFAULT_FILE = FFT_DATASET
TEXT_COLUMN, RESPONDENT_COLUMN, SENTIMENT_COLUMN = "FFT answer", "Respondent ID", "Comment sentiment"
PLACEHOLDER_LABEL = "Labelling not possible"


@dataclass(frozen=True)
class SplitRule:
    """``sha256(salt + respondent) mod k``; rows in ``test_fold`` are the held-out test split."""

    salt: str = "careqi-comments:"
    k: int = 5
    test_fold: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": "int(sha256((salt + Respondent ID).encode('utf-8')).hexdigest(), 16) % k",
            "salt": self.salt,
            "k": self.k,
            "test_fold": self.test_fold,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SplitRule:
        return cls(salt=str(data["salt"]), k=int(data["k"]), test_fold=int(data["test_fold"]))

    def folds(self, respondents: Sequence[str]) -> np.ndarray:
        return np.array(
            [int(hashlib.sha256((self.salt + r).encode("utf-8")).hexdigest(), 16) % self.k for r in respondents],
            dtype=np.int64,
        )


@dataclass(frozen=True)
class LabelledComments:
    """The FFT file as arrays, rows in file order.

    ``usable`` marks rows with text that are not placeholders: the only rows trained or scored on.
    ``sentiment`` holds ``positive``/``neutral``/``negative`` or ``None`` where the labeller gave none.
    """

    prepared: list[str]
    respondents: list[str]
    themes: np.ndarray  # bool [n, n_themes]
    sentiment: np.ndarray  # object [n]
    usable: np.ndarray  # bool [n]
    theme_ids: tuple[str, ...]
    sha256: str


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sentiment_label(score: object) -> str | None:
    """Labeller's 1-5 score -> ``positive`` (1-2), ``neutral`` (3), ``negative`` (4-5); else ``None``."""
    try:
        value = float(score)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if np.isnan(value):
        return None
    return {1: "positive", 2: "positive", 3: "neutral", 4: "negative", 5: "negative"}.get(int(value))


def labelled_from_frame(frame: pd.DataFrame, taxonomy: Taxonomy, sha256: str = "") -> LabelledComments:
    """Arrays from the FFT frame (pure: the caller reads the file)."""
    missing = [c for c in (TEXT_COLUMN, RESPONDENT_COLUMN, SENTIMENT_COLUMN) if c not in frame.columns]
    if missing:
        raise ValueError(f"not an FFT labelled file: missing columns {missing}")
    labels = frame.reindex(columns=list(FFT_LABELS))
    prepared = [prepare(t) for t in frame[TEXT_COLUMN].tolist()]
    placeholder = labels[PLACEHOLDER_LABEL].fillna(0).to_numpy(dtype=np.float64) > 0
    usable = np.array([bool(t) for t in prepared]) & ~placeholder
    return LabelledComments(
        prepared=prepared,
        respondents=frame[RESPONDENT_COLUMN].astype(str).tolist(),
        themes=taxonomy.themes_from_labels(labels).to_numpy(dtype=bool),
        sentiment=np.array([sentiment_label(s) for s in frame[SENTIMENT_COLUMN].tolist()], dtype=object),
        usable=usable,
        theme_ids=taxonomy.ids,
        sha256=sha256,
    )


def load_labelled(csv_path: Path, taxonomy: Taxonomy | None = None) -> LabelledComments:
    """Read the FFT labelled CSV (I/O edge) and turn it into arrays."""
    frame = pd.read_csv(csv_path, dtype={TEXT_COLUMN: object, RESPONDENT_COLUMN: str}, keep_default_na=True)
    return labelled_from_frame(frame, taxonomy or load_taxonomy(), file_sha256(csv_path))


@dataclass(frozen=True)
class ThemeScore:
    theme: str
    label: str
    precision: float
    recall: float
    f1: float
    support: int  # comments with the theme in the test split
    predicted: int  # comments the model gave the theme


@dataclass(frozen=True)
class TextEvaluation:
    """Held-out figures for the comment model; see the module docstring for what is counted."""

    n_comments: int
    n_respondents: int
    themes: tuple[ThemeScore, ...]
    macro_f1: float
    micro_precision: float
    micro_recall: float
    micro_f1: float
    sentiment_n: int
    sentiment_accuracy: float
    sentiment_confusion: Mapping[str, Mapping[str, int]]  # true -> predicted -> count
    data_sha256: str
    trained_on_sha256: str
    split: Mapping[str, Any] = field(default_factory=dict)

    @property
    def same_data_as_training(self) -> bool:
        return self.data_sha256 == self.trained_on_sha256

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (for ``--json``)."""
        return {
            "n_comments": self.n_comments,
            "n_respondents": self.n_respondents,
            "themes": [vars(t) for t in self.themes],
            "macro_f1": self.macro_f1,
            "micro_precision": self.micro_precision,
            "micro_recall": self.micro_recall,
            "micro_f1": self.micro_f1,
            "sentiment_n": self.sentiment_n,
            "sentiment_accuracy": self.sentiment_accuracy,
            "sentiment_confusion": {k: dict(v) for k, v in self.sentiment_confusion.items()},
            "data_sha256": self.data_sha256,
            "trained_on_sha256": self.trained_on_sha256,
            "split": dict(self.split),
        }


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else 0.0


def _f1(tp: float, fp: float, fn: float) -> float:
    return _ratio(2 * tp, 2 * tp + fp + fn)


def score(
    truth: np.ndarray,
    predicted: np.ndarray,
    sentiment_truth: np.ndarray,
    sentiment_predicted: Sequence[str | None],
    taxonomy: Taxonomy,
) -> dict[str, Any]:
    """Theme and sentiment metrics from truth and prediction arrays (pure; the parts of TextEvaluation)."""
    truth = truth.astype(bool)
    predicted = predicted.astype(bool)
    tp = (truth & predicted).sum(axis=0)
    fp = (~truth & predicted).sum(axis=0)
    fn = (truth & ~predicted).sum(axis=0)
    rows = tuple(
        ThemeScore(
            theme=theme_id,
            label=taxonomy.label_of(theme_id),
            precision=_ratio(tp[j], tp[j] + fp[j]),
            recall=_ratio(tp[j], tp[j] + fn[j]),
            f1=_f1(tp[j], fp[j], fn[j]),
            support=int(truth[:, j].sum()),
            predicted=int(predicted[:, j].sum()),
        )
        for j, theme_id in enumerate(taxonomy.ids)
    )
    present = [r.f1 for r in rows if r.support > 0]
    has = np.array([s is not None for s in sentiment_truth], dtype=bool)
    pred = np.array(sentiment_predicted, dtype=object)
    confusion = {
        t: {p: int(((sentiment_truth == t) & (pred == p) & has).sum()) for p in SENTIMENTS} for t in SENTIMENTS
    }
    return {
        "themes": rows,
        "macro_f1": float(np.mean(present)) if present else 0.0,
        "micro_precision": _ratio(tp.sum(), tp.sum() + fp.sum()),
        "micro_recall": _ratio(tp.sum(), tp.sum() + fn.sum()),
        "micro_f1": _f1(tp.sum(), fp.sum(), fn.sum()),
        "sentiment_n": int(has.sum()),
        "sentiment_accuracy": _ratio(float((pred[has] == sentiment_truth[has]).sum()), float(has.sum())),
        "sentiment_confusion": confusion,
    }


def evaluate_labelled(data: LabelledComments, model: CommentModel, taxonomy: Taxonomy) -> TextEvaluation:
    """Score ``model`` on the test split of ``data`` (the split rule comes from the model's JSON)."""
    rule = SplitRule.from_json(model.meta["split"])
    rows = np.flatnonzero((rule.folds(data.respondents) == rule.test_fold) & data.usable)
    themes, sentiment = predict_prepared(model, [data.prepared[i] for i in rows])
    predicted = np.zeros((len(rows), len(taxonomy.ids)), dtype=bool)
    for i, joined in enumerate(themes):
        for t in filter(None, joined.split(";")):
            predicted[i, taxonomy.ids.index(t)] = True
    parts = score(data.themes[rows], predicted, data.sentiment[rows], sentiment, taxonomy)
    return TextEvaluation(
        n_comments=len(rows),
        n_respondents=len({data.respondents[i] for i in rows}),
        data_sha256=data.sha256,
        trained_on_sha256=str(model.meta.get("training_data", {}).get("sha256", "")),
        split=rule.to_json(),
        **parts,
    )


def evaluate(csv_path: Path, *, model: CommentModel | None = None, taxonomy_path: Path | None = None) -> TextEvaluation:
    """Held-out theme and sentiment figures of the committed model on the FFT file at ``csv_path``.

    The CLI passes ``load_settings().shared_data_dir / FFT_DATASET``.
    """
    taxonomy = load_taxonomy(taxonomy_path)
    chosen = model or load_model(taxonomy_path=taxonomy_path)
    return evaluate_labelled(load_labelled(csv_path, taxonomy), chosen, taxonomy)


def render_evaluation(result: TextEvaluation) -> str:
    """The figures as a plain-text table for the terminal (and for pasting into the README)."""
    width = max(len(t.label) for t in result.themes)
    corner = "true \\ predicted"
    lines = [
        f"Held-out test split: {result.n_comments} comments from {result.n_respondents} respondents "
        f"(respondent fold {result.split.get('test_fold')} of {result.split.get('k')}, never trained on)",
        "",
        f"{'theme':<{width}}  {'precision':>9}  {'recall':>6}  {'F1':>5}  {'support':>7}  {'predicted':>9}",
    ]
    for t in result.themes:
        lines.append(
            f"{t.label:<{width}}  {t.precision:>9.3f}  {t.recall:>6.3f}  {t.f1:>5.3f}  {t.support:>7}  {t.predicted:>9}"
        )
    lines += [
        "",
        f"macro F1 {result.macro_f1:.3f}   micro F1 {result.micro_f1:.3f} "
        f"(micro precision {result.micro_precision:.3f}, recall {result.micro_recall:.3f})",
        f"sentiment accuracy {result.sentiment_accuracy:.3f} on {result.sentiment_n} labelled comments",
        "",
        f"{corner:<16}" + "".join(f"{s:>10}" for s in SENTIMENTS),
    ]
    for true in SENTIMENTS:
        lines.append(f"{true:<16}" + "".join(f"{result.sentiment_confusion[true][p]:>10}" for p in SENTIMENTS))
    if not result.same_data_as_training:
        lines += ["", "note: this file is not the one the model was trained on (sha256 differs)"]
    return "\n".join(lines)


#: The name the CLI uses.
render_text = render_evaluation
