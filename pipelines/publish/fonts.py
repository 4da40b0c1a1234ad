"""The report's typeface, embedded: one Pan-CJK font for Latin and Chinese, HTML and PDF.

A report must read the same on a ward PC without Chinese fonts, in a browser and in
the printed PDF, so the page carries its own font: Noto Sans CJK (SIL Open Font
License; it covers Latin, digits and Simplified Chinese), shipped as a Python wheel
(``cvttf-NotoSansCJK-Regular``) and *subset* to the characters the page uses, so the
embedded font is tens of kilobytes instead of 16 MB. ``CAREQI_REPORT_FONT`` (read by
:mod:`pipelines.config`) can point at another OpenType/TrueType file.

The OpenType layout features are kept (``locl`` among them), so with ``lang="zh-Hans"``
browsers and WeasyPrint pick the Simplified Chinese glyph forms.
"""

from __future__ import annotations

import base64
import io
from functools import lru_cache
from importlib import resources
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont

from pipelines.errors import ConfigError

FAMILY = "CareQI Sans"
#: Always kept, whatever the page holds: printable ASCII and the typographic marks the
#: formatting uses (en dash, minus, arrows, ellipsis, middle dot, primes).
BASE_CHARS = "".join(chr(c) for c in range(0x20, 0x7F)) + "–—−▲▼…·′’“”‘≥≤±×÷●○✓"


def font_path(override: Path | None = None) -> Path:
    """The font to embed: ``override`` (``Settings.report_font``, ``CAREQI_REPORT_FONT``)
    or the one the wheel ships."""
    if override is not None:
        if not override.is_file():
            raise ConfigError(f"CAREQI_REPORT_FONT: no font file at {override}")
        return override
    try:
        folder = resources.files("cvttf_NotoSansCJK_Regular")
    except ModuleNotFoundError:
        raise ConfigError(
            "the report font is not installed (package cvttf-NotoSansCJK-Regular); run `make install`"
        ) from None
    found = [p for p in folder.iterdir() if p.name.lower().endswith((".otf", ".ttf"))]
    if not found:
        raise ConfigError("the report font package holds no font file")
    return Path(str(found[0]))


@lru_cache(maxsize=8)
def _subset(path: str, chars: str) -> bytes:
    options = subset.Options()
    options.layout_features = ["*"]
    options.name_IDs = ["*"]
    options.notdef_outline = True
    options.hinting = False
    options.desubroutinize = True
    # The source font's own timestamps, not the time of subsetting: the same page embeds
    # the same bytes on every run.
    font = TTFont(path, lazy=True, recalcTimestamp=False)
    sub = subset.Subsetter(options=options)
    sub.populate(text=chars)
    sub.subset(font)
    buf = io.BytesIO()
    font.save(buf)
    return buf.getvalue()


def font_face_css(text: str, font: Path | None = None) -> str:
    """An ``@font-face`` rule embedding the font (:func:`font_path`) subset to ``text``'s
    characters."""
    chars = "".join(sorted(set(text) | set(BASE_CHARS)))
    path = font_path(font)
    data = _subset(str(path), chars)
    kind = "opentype" if path.suffix.lower() == ".otf" else "truetype"
    mime = "font/otf" if kind == "opentype" else "font/ttf"
    b64 = base64.b64encode(data).decode("ascii")
    return (
        f'@font-face {{ font-family: "{FAMILY}"; font-style: normal; font-weight: 100 900; '
        f'src: url(data:{mime};base64,{b64}) format("{kind}"); }}'
    )


__all__ = ["BASE_CHARS", "FAMILY", "font_face_css", "font_path"]
