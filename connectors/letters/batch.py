"""Many letters from one template: rendered in order, by this process or a pool of them.

    batch = LetterBatch(bundle, letterhead, fmt="pdf", letter_date=date(2026, 4, 17))
    rows = [BatchRow("ar", values), BatchRow("pl", other_values, recipient=(...))]
    for result in render_batch(batch, rows, jobs=default_jobs()):
        ...  # result.content, or result.failure (reason, field, message) for that row

Each process keeps a `FontCache` for the letters it renders (fonts parsed once, shaping and
embedded font streams reused), so a batch costs less per letter than letters one by one.
Results come back in row order whatever the number of processes; a row that cannot be
rendered gives its failure and the batch goes on. Workers are forked from a fork server (or
spawned where there is none): they inherit no open files, locks or threads from the caller.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import Literal

from connectors.letters.compose import Deadline, compose
from connectors.letters.font_cache import FontCache
from connectors.letters.html import letter_html
from connectors.letters.limits import DEFAULT_LIMITS, Limits
from connectors.letters.model import Letterhead
from connectors.letters.pdf import letter_pdf
from connectors.letters.values import Value
from schemas.errors import InbeeldError
from schemas.events import TemplatePublished

__all__ = ["BatchResult", "BatchRow", "LetterBatch", "RowFailure", "default_jobs", "render_batch"]


@dataclass(frozen=True)
class LetterBatch:
    """What every letter of a batch shares."""

    bundle: TemplatePublished
    letterhead: Letterhead
    fmt: Literal["pdf", "html"] = "pdf"
    bilingual: bool = False
    letter_date: date | None = None
    limits: Limits = DEFAULT_LIMITS


@dataclass(frozen=True)
class BatchRow:
    lang: str
    values: Mapping[str, Value | None]
    recipient: tuple[str, ...] = ()


@dataclass(frozen=True)
class RowFailure:
    """Why a row gave no letter: a `LetterError`'s reason, field and message (never a value)."""

    reason: str
    field: str | None
    message: str


@dataclass(frozen=True)
class BatchResult:
    content: bytes | None  # the PDF, or the HTML as UTF-8
    languages: tuple[str, ...]
    failure: RowFailure | None = None


# A worker takes about as long to start and fill its caches (a cold letter per language and
# per new glyph set) as 40 to 100 letters take once cached (measured with `letter batch` on
# 120 rows: one process was quicker than two); with fewer rows per worker than this, one
# process is as quick.
ROWS_PER_WORKER = 100


def default_jobs(rows: int | None = None) -> int:
    """One process per processor this process may run on, and at most one per
    `ROWS_PER_WORKER` rows when the batch's size is given."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        cpus = os.cpu_count() or 1
    return cpus if rows is None else max(1, min(cpus, rows // ROWS_PER_WORKER))


def _render(batch: LetterBatch, row: BatchRow, fonts: FontCache) -> BatchResult:
    try:
        deadline = Deadline(batch.limits.seconds)
        letter = compose(
            batch.bundle,
            row.lang,
            row.values,
            bilingual=batch.bilingual,
            letter_date=batch.letter_date,
            limits=batch.limits,
            deadline=deadline,
        )
        if batch.fmt == "pdf":
            content = letter_pdf(
                letter,
                batch.letterhead,
                recipient=row.recipient,
                limits=batch.limits,
                deadline=deadline,
                fonts=fonts,
            )
        else:
            html = letter_html(letter, batch.letterhead, recipient=row.recipient, limits=batch.limits)
            content = html.encode("utf-8")
    except InbeeldError as exc:
        return BatchResult(None, (), RowFailure(exc.reason, exc.field, exc.message))
    return BatchResult(content, tuple(p.lang for p in letter.parts))


# Workers are forked from a server process started once, fresh, with this module imported:
# quick to start and free of the caller's threads, files and locks. Where there is no fork
# server, each worker starts fresh.
_START_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"

# A worker's batch and font cache, set once by `_start_worker`.
_worker: tuple[LetterBatch, FontCache] | None = None


def _start_worker(batch: LetterBatch) -> None:
    global _worker
    _worker = (batch, FontCache())


def _render_in_worker(row: BatchRow) -> BatchResult:
    assert _worker is not None
    return _render(_worker[0], row, _worker[1])


def render_batch(batch: LetterBatch, rows: Sequence[BatchRow], *, jobs: int = 1) -> Iterator[BatchResult]:
    """One result per row, in row order; `jobs` processes (1: this one)."""
    jobs = max(1, min(jobs, len(rows)))
    if jobs == 1:
        fonts = FontCache()
        for row in rows:
            yield _render(batch, row, fonts)
        return
    context = multiprocessing.get_context(_START_METHOD)
    if _START_METHOD == "forkserver":
        context.set_forkserver_preload([__name__])
    pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker, initargs=(batch,))
    try:
        yield from pool.map(_render_in_worker, rows)
    finally:
        # A caller that stops early (an error writing a letter, Ctrl-C) does not wait for the
        # rows not yet started.
        pool.shutdown(wait=True, cancel_futures=True)
