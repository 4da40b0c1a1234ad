"""Themes and sentiment for free-text comments, from the committed linear model.

The model is weights only: comments are hashed into a fixed feature space (scikit-learn's
``HashingVectorizer``: word 1-2 grams and character n-grams), so the artefact holds no vocabulary
and no training text, just per-feature weights, an idf vector and per-theme thresholds. Nothing is
downloaded at run time. ``scripts/train_comment_model.py`` writes the artefact; this module reads it
(once per process) and scores comments in batches - a sparse matrix product, so thousands of
comments take about a second.

Every comment goes through the same preparation in training and here: HTML tags stripped and
entities decoded (comments exported from web forms carry ``<br>`` and ``&amp;``), whitespace
collapsed, then :func:`~pipelines.analyse.text.redact.mask_identifiers`, so that names, phone
numbers and the like are seen as ``[name]``/``[phone]`` and never become features.

A blank comment (``None``, ``NaN``, empty or whitespace only) gets no themes and sentiment ``<NA>``,
not ``neutral``: saying nothing is not a neutral opinion, and counting it as one would pull a ward's
share of negative comments towards zero.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import re
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer

from pipelines.analyse.text.redact import mask_identifiers
from pipelines.analyse.text.themes import Taxonomy, load_taxonomy
from pipelines.errors import ConfigError

#: The committed artefact: ``comments.npz`` (arrays) and ``comments.json`` (parameters, provenance).
MODEL_DIR = Path(__file__).with_name("model")
MODEL_NAME = "comments"
FORMAT_VERSION = 1
SENTIMENTS = ("positive", "neutral", "negative")
DEFAULT_BATCH_SIZE = 1000

_TAG = re.compile(r"<[^>]{0,200}>")
_SPACE = re.compile(r"\s+")


def prepare(text: object) -> str:
    """One comment as the model sees it: plain text, identifiers masked; ``''`` for a blank."""
    if text is None or (isinstance(text, float) and np.isnan(text)) or text is pd.NA:
        return ""
    value = str(text)
    if "<" in value or "&" in value:
        value = html.unescape(_TAG.sub(" ", value))
    value = _SPACE.sub(" ", value).strip()
    return mask_identifiers(value) if value else ""


@dataclass(frozen=True)
class FeatureParams:
    """How text becomes features; written to the artefact JSON and read back from it."""

    word_features: int
    word_ngrams: tuple[int, int]
    char_features: int
    char_ngrams: tuple[int, int]
    alternate_sign: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "word_features": self.word_features,
            "word_ngrams": list(self.word_ngrams),
            "char_features": self.char_features,
            "char_ngrams": list(self.char_ngrams),
            "alternate_sign": self.alternate_sign,
            "vectorizer": "sklearn HashingVectorizer, lowercase, word analyzer + char_wb analyzer, counts",
            "weighting": "log1p(count) * idf, then L2 row norm over both blocks",
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureParams:
        return cls(
            word_features=int(data["word_features"]),
            word_ngrams=(int(data["word_ngrams"][0]), int(data["word_ngrams"][1])),
            char_features=int(data["char_features"]),
            char_ngrams=(int(data["char_ngrams"][0]), int(data["char_ngrams"][1])),
            alternate_sign=bool(data.get("alternate_sign", False)),
        )

    @property
    def n_features(self) -> int:
        return self.word_features + self.char_features


@cache
def _vectorizers(params: FeatureParams) -> tuple[HashingVectorizer, HashingVectorizer]:
    common: dict[str, Any] = {"alternate_sign": params.alternate_sign, "norm": None, "dtype": np.float32}
    words = HashingVectorizer(n_features=params.word_features, ngram_range=params.word_ngrams, **common)
    chars = HashingVectorizer(
        n_features=params.char_features, analyzer="char_wb", ngram_range=params.char_ngrams, **common
    )
    return words, chars


def hashed_counts(prepared: Sequence[str], params: FeatureParams) -> sp.csr_matrix:
    """Raw hashed n-gram counts ``[len(prepared), params.n_features]`` (word block, then char block)."""
    words, chars = _vectorizers(params)
    return sp.hstack([words.transform(prepared), chars.transform(prepared)], format="csr", dtype=np.float32)


def weight(counts: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
    """Sublinear tf-idf with L2 rows: ``log1p(count) * idf``; columns with idf 0 (pruned) drop out."""
    x = counts.copy()
    x.data = np.log1p(np.abs(x.data)) * np.sign(x.data)
    x = sp.csr_matrix(x.multiply(idf.reshape(1, -1)), dtype=np.float32)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / norms).astype(np.float32) @ x)


@dataclass(frozen=True)
class CommentModel:
    """The loaded artefact: dense full-width weights (float32), ready for ``X @ W.T``."""

    params: FeatureParams
    idf: np.ndarray  # [n_features], 0 for pruned columns
    theme_ids: tuple[str, ...]
    theme_weights: np.ndarray  # [n_features, n_themes]
    theme_bias: np.ndarray  # [n_themes]
    thresholds: np.ndarray  # [n_themes], on the decision function
    sentiment_weights: np.ndarray  # [n_features, 3]
    sentiment_bias: np.ndarray  # [3]
    meta: Mapping[str, Any]

    def features(self, prepared: Sequence[str]) -> sp.csr_matrix:
        return weight(hashed_counts(prepared, self.params), self.idf)

    def theme_scores(self, features: sp.csr_matrix) -> np.ndarray:
        """Decision-function values ``[n, n_themes]``; a theme applies where it reaches its threshold."""
        return np.asarray(features @ self.theme_weights) + self.theme_bias

    def sentiment_scores(self, features: sp.csr_matrix) -> np.ndarray:
        """Logits ``[n, 3]`` in :data:`SENTIMENTS` order."""
        return np.asarray(features @ self.sentiment_weights) + self.sentiment_bias


# --- the artefact on disk -------------------------------------------------------------------------


def _dequantise(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return q.astype(np.float32) * scale.astype(np.float32).reshape(-1, 1)


def model_from_arrays(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> CommentModel:
    """Expand the stored (pruned, int8-quantised) arrays into a :class:`CommentModel`."""
    params = FeatureParams.from_json(meta["features"])
    keep = np.unpackbits(arrays["keep"], count=params.n_features).astype(bool)
    idf = np.zeros(params.n_features, dtype=np.float32)
    idf[keep] = arrays["idf"].astype(np.float32)

    def full(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
        out = np.zeros((params.n_features, q.shape[0]), dtype=np.float32)
        out[keep, :] = _dequantise(q, scale).T
        return out

    theme_ids = tuple(meta["themes"])
    thresholds = np.array([meta["thresholds"][t] for t in theme_ids], dtype=np.float32)
    return CommentModel(
        params=params,
        idf=idf,
        theme_ids=theme_ids,
        theme_weights=full(arrays["theme_coef"], arrays["theme_scale"]),
        theme_bias=arrays["theme_intercept"].astype(np.float32),
        thresholds=thresholds,
        sentiment_weights=full(arrays["sentiment_coef"], arrays["sentiment_scale"]),
        sentiment_bias=arrays["sentiment_intercept"].astype(np.float32),
        meta=meta,
    )


def write_artefact(directory: Path, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write ``comments.npz`` and ``comments.json`` byte-for-byte reproducibly.

    ``numpy.savez_compressed`` stamps each member with the current time, so the zip is built here
    with a fixed date and sorted members: the same training run gives the same bytes.
    """
    directory.mkdir(parents=True, exist_ok=True)
    npz = directory / f"{MODEL_NAME}.npz"
    with zipfile.ZipFile(npz, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue(), compresslevel=9)
    path = directory / f"{MODEL_NAME}.json"
    path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return npz, path


def read_artefact(directory: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    npz, meta_path = directory / f"{MODEL_NAME}.npz", directory / f"{MODEL_NAME}.json"
    if not npz.is_file() or not meta_path.is_file():
        raise ConfigError(f"comment model not found in {directory}: run scripts/train_comment_model.py")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("format_version") != FORMAT_VERSION:
        raise ConfigError(f"comment model in {directory} has format {meta.get('format_version')}, not {FORMAT_VERSION}")
    with np.load(npz, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    return arrays, meta


@cache
def _load(directory: Path, taxonomy_path: Path | None) -> CommentModel:
    arrays, meta = read_artefact(directory)
    taxonomy = load_taxonomy(taxonomy_path)
    check_taxonomy(meta, taxonomy)
    return model_from_arrays(arrays, meta)


def check_taxonomy(meta: Mapping[str, Any], taxonomy: Taxonomy) -> None:
    """Refuse a model trained on another theme mapping: its themes would not mean what the file says."""
    if meta.get("taxonomy_fingerprint") != taxonomy.fingerprint() or tuple(meta.get("themes", ())) != taxonomy.ids:
        raise ConfigError(
            "themes.yaml maps FFT labels to themes differently from the mapping the comment model was trained on; "
            "retrain it with scripts/train_comment_model.py"
        )


def load_model(directory: Path | None = None, taxonomy_path: Path | None = None) -> CommentModel:
    """The comment model in ``directory`` (default: the committed one), loaded once per process."""
    return _load((directory or MODEL_DIR).resolve(), taxonomy_path.resolve() if taxonomy_path else None)


@cache
def _fingerprint(directory: Path) -> str:
    digest = hashlib.sha256()
    for name in (f"{MODEL_NAME}.json", f"{MODEL_NAME}.npz"):
        digest.update((directory / name).read_bytes())
    return digest.hexdigest()[:16]


def model_fingerprint(directory: Path | None = None) -> str:
    """First 16 hex digits of sha256(json + npz) of the artefact: which model labelled a stored comment.

    Stored labels carry it so that a retrained model relabels old comments instead of mixing two models.
    """
    return _fingerprint((directory or MODEL_DIR).resolve())


# --- prediction ----------------------------------------------------------------------------------


def _theme_strings(hits: np.ndarray, theme_ids: Sequence[str]) -> list[str]:
    order = np.argsort(np.asarray(theme_ids))  # sorted ids, so the column reads the same every run
    names = np.asarray(theme_ids, dtype=object)[order]
    ordered = hits[:, order]
    return [";".join(names[row]) for row in ordered]


def predict_prepared(model: CommentModel, prepared: Sequence[str]) -> tuple[list[str], list[str | None]]:
    """Themes and sentiment for already-prepared texts (``''`` = blank)."""
    blank = np.array([not t for t in prepared], dtype=bool)
    x = model.features(prepared)
    hits = model.theme_scores(x) >= model.thresholds
    hits[blank] = False
    sentiment = np.asarray(SENTIMENTS, dtype=object)[model.sentiment_scores(x).argmax(axis=1)]
    return _theme_strings(hits, model.theme_ids), [None if b else s for s, b in zip(sentiment, blank, strict=True)]


def classify(
    texts: Sequence[str | None] | Iterable[str | None],
    *,
    progress: Callable[[int], None] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    model: CommentModel | None = None,
) -> pd.DataFrame:
    """Themes and sentiment for each comment, in input order.

    Returns a frame with a ``RangeIndex`` and two string columns: ``themes`` (sorted theme ids joined
    by ``;``, ``''`` when none applies) and ``sentiment`` (``positive``/``neutral``/``negative``, ``<NA>``
    for a blank comment). ``progress`` is called after each batch with the number of comments that
    batch finished (so ``lambda n: bar.advance(task, n)`` drives a progress bar).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    chosen = model or load_model()
    items = list(texts)
    themes: list[str] = []
    sentiments: list[str | None] = []
    for start in range(0, len(items), batch_size):
        batch = [prepare(t) for t in items[start : start + batch_size]]
        batch_themes, batch_sentiment = predict_prepared(chosen, batch)
        themes.extend(batch_themes)
        sentiments.extend(batch_sentiment)
        if progress is not None:
            progress(len(batch))
    return pd.DataFrame({"themes": pd.array(themes, dtype="string"), "sentiment": pd.array(sentiments, dtype="string")})
