"""What produced a published figure: the code version and the value sets in use.

A committee paper or a regulator file must say which code and which code lists made
it, so a figure can be reproduced or challenged. The code version is the package
version plus the git commit when the code runs from a checkout (``+dirty`` when the
tree has uncommitted changes); value sets are named by canonical URL and version, as
FHIR cites them (``url|version``).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from functools import lru_cache
from importlib import metadata

from pipelines.compute.model import Indicator
from pipelines.compute.valuesets import ValueSetIndex
from pipelines.config import PROJECT_ROOT


@lru_cache(maxsize=1)
def code_version() -> str:
    try:
        version = metadata.version("careqi")
    except metadata.PackageNotFoundError:
        version = "unknown"
    try:
        commit = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version}+{commit}{'.dirty' if dirty else ''}" if commit else version


def valueset_versions(indicators: Sequence[Indicator], index: ValueSetIndex) -> list[dict[str, str]]:
    """Every value set the indicators use that is loaded: canonical URL (or name) and
    version, sorted; a set that is not loaded is left out (its indicator is not computed)."""
    out: dict[str, dict[str, str]] = {}
    for ind in indicators:
        for ref in sorted(ind.valuesets):
            if ref not in index:
                continue
            vs = index.get(ref)
            url = vs.url or vs.name or ref
            out[url] = {"url": url, "version": vs.version or ""}
    return [out[k] for k in sorted(out)]


__all__ = ["code_version", "valueset_versions"]
