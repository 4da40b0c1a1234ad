"""The conformance ratchet: test cases known to match, per measure deck.

``tests/conformance/baseline.json`` maps a deck folder name to the case files
(``<patient>/<case>.json``) that matched when it was last written. The test suite fails
when a listed case stops matching, so progress on a measure can only move forward.
Rewriting the file from a run refuses to drop a listed case unless asked to
(``--allow-regressions``), so a regression cannot be "fixed" by regenerating the file.

    python -m pipelines.conformance.baseline MEASURE_DIR... [--file PATH] [--allow-regressions]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from pipelines.config import PROJECT_ROOT, load_settings
from pipelines.conformance.runner import ConformanceRun, run_deck
from pipelines.errors import CareQIError, ConfigError

log = logging.getLogger(__name__)

DEFAULT_FILE = PROJECT_ROOT / "tests" / "conformance" / "baseline.json"


def deck_key(run: ConformanceRun) -> str:
    return run.deck.root.name


def load_baseline(path: Path) -> dict[str, list[str]]:
    """The baseline file; a missing file is an empty baseline, a malformed one an error."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read conformance baseline {path}: {exc}") from exc
    if not isinstance(doc, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(c, str) for c in v) for k, v in doc.items()
    ):
        raise ConfigError(f"{path}: expected {{deck folder name: [case file, ...]}}")
    return {k: list(v) for k, v in doc.items()}


def regressions(run: ConformanceRun, baseline: Mapping[str, Sequence[str]]) -> list[str]:
    """Baseline cases of this deck that do not match now (or no longer exist)."""
    matched = {r.case for r in run.matched}
    return sorted(c for c in baseline.get(deck_key(run), []) if c not in matched)


def updated_baseline(
    runs: Sequence[ConformanceRun], baseline: Mapping[str, Sequence[str]], *, allow_regressions: bool = False
) -> dict[str, list[str]]:
    """The baseline with each run's deck replaced by its matching cases."""
    lost = {deck_key(r): regressions(r, baseline) for r in runs}
    lost = {k: v for k, v in lost.items() if v}
    if lost and not allow_regressions:
        detail = "; ".join(f"{k}: {len(v)} case(s), e.g. {v[0]}" for k, v in lost.items())
        raise ConfigError(
            f"refusing to drop baseline cases that no longer match ({detail}); fix them or rerun with "
            "--allow-regressions"
        )
    out = {k: list(v) for k, v in baseline.items()}
    for run in runs:
        out[deck_key(run)] = sorted(r.case for r in run.matched)
    return dict(sorted(out.items()))


def write_baseline(path: Path, baseline: Mapping[str, Sequence[str]]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(baseline, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.conformance.baseline",
        description="Rewrite the conformance baseline (cases known to match) from a run of each deck.",
    )
    parser.add_argument("measure_dirs", nargs="+", type=Path, help="measure deck folders")
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE, help=f"baseline file (default {DEFAULT_FILE})")
    parser.add_argument("--allow-regressions", action="store_true", help="drop listed cases that no longer match")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        settings = load_settings()
        runs = [run_deck(d, settings) for d in args.measure_dirs]
        old = load_baseline(args.file)
        new = updated_baseline(runs, old, allow_regressions=args.allow_regressions)
        write_baseline(args.file, new)
    except CareQIError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    for run in runs:
        key = deck_key(run)
        gained = len(set(new[key]) - set(old.get(key, [])))
        sys.stdout.write(f"{key}: {len(new[key])}/{run.cases} cases in baseline (+{gained})\n")
    sys.stdout.write(f"wrote {args.file}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
