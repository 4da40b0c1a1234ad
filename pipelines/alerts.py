"""Raising SLA breaches to people: a log line always, and a hook the trust plugs in.

The daily feedback run stores every complaint open past a deadline in ``sla_breaches``.
Telling someone is the trust's choice (an e-mail to the complaints manager, a Teams or
Slack message, a ticket), so CareQI calls one function the trust names in
``CAREQI_BREACH_HOOK`` (``module:function``) with the run's counts. The hook receives
counts per rule and per ward, never a complaint id or any text: an alert leaves the
system, identifiers do not.

In Airflow, :func:`breach_callback` is the breach task's ``on_success_callback``; the
CLI (``careqi feedback day``) calls :func:`notify_breaches` itself. A failing hook is
logged and does not undo the stored breaches.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from pipelines.config import Settings, load_settings
from pipelines.errors import ConfigError

log = logging.getLogger(__name__)


def _hook(spec: str) -> Callable[[Mapping[str, Any]], object]:
    module, _, name = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module.strip()), name.strip())
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"CAREQI_BREACH_HOOK {spec!r}: {exc}") from exc
    if not callable(fn):
        raise ConfigError(f"CAREQI_BREACH_HOOK {spec!r} is not a function")
    return fn  # type: ignore[no-any-return]


def notify_breaches(summary: Mapping[str, Any] | None, settings: Settings | None = None) -> bool:
    """Log the breaches and call the configured hook; True when the hook was called."""
    if not summary or not summary.get("open"):
        return False
    by_rule = summary.get("by_rule") or {}
    log.warning(
        "SLA breaches on %s: %d complaint(s) open past a deadline, %d new: %s",
        summary.get("day"),
        summary["open"],
        summary.get("new", 0),
        "; ".join(f"{v.get('title', k)}: {v['open']} open ({v['new']} new)" for k, v in by_rule.items() if v["open"]),
    )
    settings = settings or load_settings()
    if not settings.breach_hook:
        return False
    try:
        _hook(settings.breach_hook)(dict(summary))
    except Exception:  # the trust's code: its failure must not lose the stored breaches
        log.exception("CAREQI_BREACH_HOOK %s failed", settings.breach_hook)
        return False
    return True


def breach_callback(context: Mapping[str, Any]) -> None:
    """Airflow ``on_success_callback`` of the task that stored the breaches: its return
    value (the counts) is in XCom."""
    ti = context.get("ti") or context.get("task_instance")
    summary = ti.xcom_pull(task_ids=ti.task_id) if ti is not None else None
    notify_breaches(summary)


__all__ = ["breach_callback", "notify_breaches"]
