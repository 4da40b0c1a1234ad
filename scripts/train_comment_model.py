"""Train the comment theme and sentiment model and write pipelines/analyse/text/model/comments.{npz,json}.

Usage (from the repository root)::

    .venv/bin/python scripts/train_comment_model.py            # the shared FFT file, the committed model
    .venv/bin/python scripts/train_comment_model.py --csv PATH --out DIR --report

Input: the labelled NHS FFT comments of pxtextmining (``v6framework_230831.csv``) from the shared data
folder (``CAREQI_SHARED_DATA``, default ``../shared/data``). Output: weights only - hashed features,
so no vocabulary and no comment text is stored. Features seen in fewer than ``MIN_RESPONDENTS``
respondents' comments are dropped before fitting, so no string that only one person wrote (a name
the masking missed, an address) leaves a trace in the weights, and the artefact stays small.

Method: comments are masked (:mod:`pipelines.analyse.text.redact`) and hashed into word 1-2 grams and
``char_wb`` 2-5 grams (sublinear tf-idf, L2 rows); one L2 logistic regression per theme, whose
decision threshold is the one that maximises F1 on out-of-fold scores (4-fold by respondent inside
the training part, so the test fold plays no part); one multinomial logistic regression for
sentiment. The split is by respondent: ``sha256("careqi-comments:" + Respondent ID) mod 5``, fold 0
is the test split and is never trained on (the salt differs from the one used to cut the shared
file's own holdout, so our folds are not aligned with it). The settings below were chosen on those
out-of-fold scores (see ``--report``), not on the test fold.

Deterministic: fixed solver seeds, sorted members and a fixed timestamp in the zip, rounded
thresholds - re-running on the same file writes the same bytes.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold

from pipelines.analyse.text.classifier import (
    FORMAT_VERSION,
    MODEL_DIR,
    SENTIMENTS,
    FeatureParams,
    hashed_counts,
    weight,
    write_artefact,
)
from pipelines.analyse.text.evaluate import FFT_DATASET, LabelledComments, SplitRule, load_labelled
from pipelines.analyse.text.themes import Taxonomy, load_taxonomy
from pipelines.config import load_settings

FEATURES = FeatureParams(word_features=2**16, word_ngrams=(1, 2), char_features=2**17, char_ngrams=(2, 5))
SPLIT = SplitRule(salt="careqi-comments:", k=5, test_fold=0)
THEME_C = 10.0
SENTIMENT_C = 3.0
MIN_RESPONDENTS = 3
THRESHOLD_DECIMALS = 4


def respondent_frequency(counts: sp.csr_matrix, respondents: Sequence[str]) -> np.ndarray:
    """For each hashed column, how many distinct respondents' comments contain it."""
    ids, inverse = np.unique(np.asarray(respondents, dtype=object), return_inverse=True)
    owner = sp.csr_matrix(
        (np.ones(len(respondents), dtype=np.float32), (inverse, np.arange(len(respondents)))),
        shape=(len(ids), len(respondents)),
    )
    present = counts.copy()
    present.data = np.ones_like(present.data)
    per_respondent = owner @ present
    per_respondent.data = np.ones_like(per_respondent.data)
    return np.asarray(per_respondent.sum(axis=0)).ravel().astype(np.int64)


def smooth_idf(counts: sp.csr_matrix, keep: np.ndarray) -> np.ndarray:
    """scikit-learn's smooth idf, ``ln((1 + n) / (1 + df)) + 1``, zero for pruned columns."""
    present = counts.copy()
    present.data = np.ones_like(present.data)
    df = np.asarray(present.sum(axis=0)).ravel()
    n = counts.shape[0]
    idf = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)
    idf[~keep] = 0.0
    return idf


def fit_binary(x: sp.csr_matrix, y: np.ndarray) -> LogisticRegression | None:
    if y.min() == y.max():
        return None
    return LogisticRegression(C=THEME_C, solver="liblinear", dual=True, max_iter=2000, random_state=0).fit(x, y)


def decision(model: LogisticRegression | None, x: sp.csr_matrix, y_constant: bool = False) -> np.ndarray:
    if model is None:
        return np.full(x.shape[0], 1e6 if y_constant else -1e6)
    return np.asarray(model.decision_function(x), dtype=np.float64)


def best_threshold(scores: np.ndarray, truth: np.ndarray) -> float:
    """The cut on ``scores`` that maximises F1 (midway between two neighbouring scores; ties: the higher cut)."""
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], truth[order].astype(np.int64)
    tp = np.cumsum(t)
    k = np.arange(1, len(s) + 1)
    f1 = 2 * tp / (k + t.sum())
    # Only cut between distinct scores.
    valid = np.r_[s[1:] < s[:-1], True]
    f1 = np.where(valid, f1, -1.0)
    i = int(np.argmax(f1))
    if t.sum() == 0:
        return float(s[0] + 1.0)
    return float((s[i] + s[i + 1]) / 2 if i + 1 < len(s) else s[i] - 1e-3)


def theme_out_of_fold(x: sp.csr_matrix, y: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Out-of-fold decision scores ``[n, n_themes]`` over the training folds."""
    out = np.zeros(y.shape, dtype=np.float64)
    for f in np.unique(folds):
        fit_rows, score_rows = folds != f, folds == f
        for j in range(y.shape[1]):
            model = fit_binary(x[fit_rows], y[fit_rows, j])
            out[score_rows, j] = decision(model, x[score_rows], bool(y[fit_rows, j].max()))
    return out


def fit_sentiment(x: sp.csr_matrix, labels: np.ndarray) -> LogisticRegression:
    y = np.array([SENTIMENTS.index(s) for s in labels], dtype=np.int64)
    return LogisticRegression(C=SENTIMENT_C, solver="lbfgs", max_iter=3000).fit(x, y)


def quantise(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 per row with a float32 scale (max |w| -> 127): a quarter of float32, no measurable loss."""
    scale = np.abs(weights).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.rint(weights / scale.reshape(-1, 1)), -127, 127).astype(np.int8)
    return q, scale.astype(np.float32)


def oof_report(scores: np.ndarray, truth: np.ndarray, thresholds: np.ndarray, theme_ids: Sequence[str]) -> str:
    pred = scores >= thresholds
    tp = (pred & truth).sum(axis=0)
    fp = (pred & ~truth).sum(axis=0)
    fn = (~pred & truth).sum(axis=0)
    f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    lines = [f"  {t:<26} F1 {f:.3f}  n {int(n)}" for t, f, n in zip(theme_ids, f1, truth.sum(axis=0), strict=True)]
    micro = 2 * tp.sum() / max(2 * tp.sum() + fp.sum() + fn.sum(), 1)
    present = truth.sum(axis=0) > 0
    lines.append(f"  out-of-fold macro F1 {f1[present].mean():.3f}  micro F1 {micro:.3f}")
    return "\n".join(lines)


def train(
    data: LabelledComments, taxonomy: Taxonomy, *, report: bool = False
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Fit on every usable row outside the test fold; return the artefact's arrays and metadata."""
    folds_all = SPLIT.folds(data.respondents)
    rows = np.flatnonzero(data.usable & (folds_all != SPLIT.test_fold))
    texts = [data.prepared[i] for i in rows]
    respondents = [data.respondents[i] for i in rows]
    folds = folds_all[rows]
    counts = hashed_counts(texts, FEATURES)
    keep = respondent_frequency(counts, respondents) >= MIN_RESPONDENTS
    # Rounded to float16 as stored, so the weights are fitted on exactly the features prediction computes.
    idf = smooth_idf(counts, keep).astype(np.float16).astype(np.float32)
    x = weight(counts, idf)
    y = data.themes[rows]

    oof = theme_out_of_fold(x, y, folds)
    thresholds = np.array([round(best_threshold(oof[:, j], y[:, j]), THRESHOLD_DECIMALS) for j in range(y.shape[1])])
    if report:
        print(oof_report(oof, y, thresholds, taxonomy.ids), file=sys.stderr)

    coef = np.zeros((y.shape[1], FEATURES.n_features), dtype=np.float64)
    intercept = np.zeros(y.shape[1], dtype=np.float64)
    for j in range(y.shape[1]):
        model = fit_binary(x, y[:, j])
        if model is None:  # a theme the data never (or always) shows: constant decision
            intercept[j] = 1e6 if y[:, j].max() else -1e6
            continue
        coef[j] = model.coef_.ravel()
        intercept[j] = float(model.intercept_[0])

    has_sentiment = np.array([s is not None for s in data.sentiment[rows]], dtype=bool)
    sentiment = fit_sentiment(x[has_sentiment], data.sentiment[rows][has_sentiment])
    if report:
        sx, sy = x[has_sentiment], data.sentiment[rows][has_sentiment]
        correct = 0
        for fit_idx, score_idx in GroupKFold(n_splits=4).split(sx, groups=folds[has_sentiment]):
            m = fit_sentiment(sx[fit_idx], sy[fit_idx])
            correct += int((np.asarray(SENTIMENTS, dtype=object)[m.predict(sx[score_idx])] == sy[score_idx]).sum())
        print(f"  out-of-fold sentiment accuracy {correct / len(sy):.3f} (n {len(sy)})", file=sys.stderr)

    theme_q, theme_scale = quantise(coef[:, keep])
    sent_q, sent_scale = quantise(np.asarray(sentiment.coef_, dtype=np.float64)[:, keep])
    arrays: dict[str, np.ndarray] = {
        "keep": np.packbits(keep),
        "idf": idf[keep].astype(np.float16),
        "theme_coef": theme_q,
        "theme_scale": theme_scale,
        "theme_intercept": intercept.astype(np.float32),
        "sentiment_coef": sent_q,
        "sentiment_scale": sent_scale,
        "sentiment_intercept": np.asarray(sentiment.intercept_, dtype=np.float32),
    }
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "features": FEATURES.to_json(),
        "kept_features": int(keep.sum()),
        "min_respondents_per_feature": MIN_RESPONDENTS,
        "themes": list(taxonomy.ids),
        "taxonomy_fingerprint": taxonomy.fingerprint(),
        "thresholds": {t: float(v) for t, v in zip(taxonomy.ids, thresholds, strict=True)},
        "sentiments": list(SENTIMENTS),
        "theme_model": f"one-vs-rest L2 logistic regression (liblinear dual, C={THEME_C}), F1-optimal "
        "threshold per theme on 4-fold out-of-fold scores by respondent",
        "sentiment_model": f"multinomial L2 logistic regression (lbfgs, C={SENTIMENT_C}); labels 1-2 positive, "
        "3 neutral, 4-5 negative; rows without a label not used",
        "quantisation": "int8 per row, scale = max|w| / 127; idf float16",
        "preparation": "HTML stripped and unescaped, whitespace collapsed, mask_identifiers",
        "split": SPLIT.to_json(),
        "training_data": {
            "file": FFT_DATASET.as_posix(),
            "sha256": data.sha256,
            "rows_trained": int(len(rows)),
            "rows_trained_sentiment": int(has_sentiment.sum()),
            "excluded": "the test fold, blank answers and rows labelled 'Labelling not possible'",
        },
        "scikit_learn": sklearn.__version__,
    }
    return arrays, meta


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, default=None, help="labelled FFT CSV (default: the shared data file)")
    parser.add_argument("--out", type=Path, default=MODEL_DIR, help=f"output folder (default: {MODEL_DIR})")
    parser.add_argument("--report", action="store_true", help="print out-of-fold figures (used to choose settings)")
    args = parser.parse_args(argv)
    csv_path = args.csv or load_settings().shared_data_dir / FFT_DATASET
    if not csv_path.is_file():
        print(f"labelled FFT file not found: {csv_path} (set CAREQI_SHARED_DATA)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    taxonomy = load_taxonomy()
    arrays, meta = train(load_labelled(csv_path, taxonomy), taxonomy, report=args.report)
    npz, js = write_artefact(args.out, arrays, meta)
    print(f"wrote {npz} ({npz.stat().st_size / 1e6:.2f} MB) and {js} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
