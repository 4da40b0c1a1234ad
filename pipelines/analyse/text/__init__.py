"""Free-text patient comments: themes, sentiment and masking of personal identifiers.

* :func:`classify` - themes (SERVQUAL dimensions and complaint categories, ``themes.yaml``) and
  sentiment for a sequence of comments, from the committed hashed-feature linear model.
* :func:`evaluate` / :func:`render_evaluation` - its held-out figures on the labelled NHS FFT comments.
* :func:`mask_identifiers` - names, phone numbers, e-mails, NHS numbers, postcodes and dates masked.

No model is fetched at run time: the weights are in ``model/`` and ``scripts/train_comment_model.py``
rebuilds them from the shared labelled data.
"""

from __future__ import annotations

from pipelines.analyse.text.classifier import SENTIMENTS, classify, load_model, model_fingerprint
from pipelines.analyse.text.evaluate import FFT_DATASET, TextEvaluation, evaluate, render_evaluation
from pipelines.analyse.text.redact import mask_identifiers, mask_series
from pipelines.analyse.text.themes import Taxonomy, Theme, load_taxonomy

__all__ = [
    "FFT_DATASET",
    "SENTIMENTS",
    "Taxonomy",
    "TextEvaluation",
    "Theme",
    "classify",
    "evaluate",
    "load_model",
    "load_taxonomy",
    "mask_identifiers",
    "mask_series",
    "model_fingerprint",
    "render_evaluation",
]
