"""The printed report: the same HTML, laid out for paper by WeasyPrint.

WeasyPrint implements CSS paged media without a browser, so the PDF is the HTML page
itself (one template, one set of figures): ``@page`` rules in the stylesheet give A4
pages with running page numbers, and the contents page gets its page numbers from
``target-counter()``. The font is the one embedded in the page (:mod:`.fonts`), so the
PDF renders the same on a machine with no fonts installed. WeasyPrint needs the Pango
library, which ``make install`` sees to on Debian/Ubuntu.

Output is reproducible: no creation date, and the PDF identifier is derived from the
content, so the same page prints to the same bytes.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipelines import outputs
from pipelines.errors import ConfigError

log = logging.getLogger(__name__)


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
    data = HTML(string=html, base_url=None).write_pdf(uncompressed_pdf=False, custom_metadata=False)
    if data is None:
        raise ConfigError("WeasyPrint produced no PDF")
    return bytes(data)


def write_pdf(html: str, path: Path) -> Path:
    outputs.write_file(path, pdf_bytes(html))
    log.info("wrote %s", path)
    return path


__all__ = ["pdf_bytes", "write_pdf"]
