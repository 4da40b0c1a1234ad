"""Replicate an eCQM test deck to N cases, for timing ``careqi conformance`` at scale.

Usage: ``python scripts/replicate_deck.py DECK OUT --cases 20000``

Each copy of a case Bundle has every UUID in it replaced by a UUID derived from the
original and the copy number (uuid5), so copies share no patient or resource id and
the runner evaluates them all in one round, as it would a deck of distinct patients.
The expected MeasureReport travels with its case, so every copy must match. The deck's
``measure/`` and ``valuesets/`` are linked, not copied; nothing is written outside OUT.
"""

from __future__ import annotations

import argparse
import re
import uuid
from pathlib import Path

UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def replicate(deck: Path, out: Path, cases: int) -> int:
    sources = sorted((deck / "testcases").glob("*/*.json"))
    if not sources:
        raise SystemExit(f"{deck} has no testcases/<patient>/<case>.json")
    out.mkdir(parents=True, exist_ok=False)
    for part in ("measure", "valuesets"):
        (out / part).symlink_to((deck / part).resolve())
    texts = [path.read_bytes() for path in sources]
    for n in range(cases):
        copy, source = divmod(n, len(sources))
        namespace = uuid.uuid5(uuid.NAMESPACE_URL, f"careqi-replica-{copy}")

        def fresh(match: re.Match[bytes], namespace: uuid.UUID = namespace) -> bytes:
            return str(uuid.uuid5(namespace, match.group().decode())).encode()

        text = UUID.sub(fresh, texts[source])
        patient = str(uuid.uuid5(namespace, sources[source].parent.name))
        target = out / "testcases" / patient / f"{copy:05d}-{sources[source].name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(text)
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("deck", type=Path)
    parser.add_argument("out", type=Path, help="new folder (must not exist)")
    parser.add_argument("--cases", type=int, default=20_000)
    args = parser.parse_args()
    print(f"wrote {replicate(args.deck, args.out, args.cases):,} cases to {args.out}")


if __name__ == "__main__":
    main()
