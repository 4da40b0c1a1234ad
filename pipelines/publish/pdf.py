"""The printed report: the same HTML, laid out for paper by WeasyPrint.

WeasyPrint implements CSS paged media without a browser, so the PDF is the HTML page
itself (one template, one set of figures): ``@page`` rules in the stylesheet give A4
pages with running page numbers, and the contents page gets its page numbers from
``target-counter()``. The font is the one embedded in the page (:mod:`.fonts`), so the
PDF renders the same on a machine with no fonts installed. WeasyPrint needs the Pango
library, which ``make install`` sees to on Debian/Ubuntu.

Output is reproducible: no creation date, the PDF identifier is derived from the
content, and the fonts WeasyPrint subsets into the file carry a fixed timestamp
(fontTools stamps a saved font with the time unless ``SOURCE_DATE_EPOCH`` is set, the
reproducible-builds convention), so the same page prints to the same bytes.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipelines import outputs
from pipelines.errors import ConfigError

log = logging.getLogger(__name__)

#: 2000-01-01T00:00:00Z: the build time every subset font in a printed report carries.
FONT_EPOCH = "946684800"
_epoch_lock = threading.Lock()


@contextmanager
def _fixed_font_time() -> Iterator[None]:
    """``SOURCE_DATE_EPOCH`` for the duration of one print (a caller's own value wins)."""
    with _epoch_lock:
        before = os.environ.get("SOURCE_DATE_EPOCH")
        if before is None:
            os.environ["SOURCE_DATE_EPOCH"] = FONT_EPOCH
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("SOURCE_DATE_EPOCH", None)


def pdf_bytes(html: str) -> bytes:
    """``html`` (a self-contained page) printed to PDF."""
    try:
        from weasyprint import HTML
    except OSError as exc:  # Pango or its fonts missing: a set-up problem, said plainly
        raise ConfigError(
            f"cannot print the report to PDF: WeasyPrint needs the Pango library ({exc}); run `make install`"
        ) from None
    # A quiet logger: WeasyPrint warns about every CSS property it does not implement
    # (screen-only rules such as box-shadow), which says nothing about the report.
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    with _fixed_font_time():
        data = HTML(string=html, base_url=None).write_pdf(uncompressed_pdf=False, custom_metadata=False)
    if data is None:
        raise ConfigError("WeasyPrint produced no PDF")
    return bytes(data)


def write_pdf(html: str, path: Path) -> Path:
    outputs.write_file(path, pdf_bytes(html))
    log.info("wrote %s", path)
    return path


__all__ = ["pdf_bytes", "write_pdf"]
