"""What every suite's case loop does with a result: a raised measurement as a ``failed`` case, and
handing each result on (the document's list, the progress bar, the checkpoint)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def measurement_failed(case_id: str, base: dict[str, Any], params: dict[str, Any], exc: BaseException) -> dict:
    """``failed``/``measurement-failed`` with the exception's first line (one broken case must not lose the others)."""
    import mtap_schemas.toolrun as tr

    msg = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
    return tr.failed(case_id, **base, parameters=dict(sorted(params.items())), kind="measurement-failed", message=msg)


def deliver(out: list[dict], case: Any, result: dict, progress: Callable[[Any], None] | None,
            on_case: Callable[[Any, dict], None] | None) -> None:
    out.append(result)
    if progress:
        progress(case)
    if on_case:
        on_case(case, result)
