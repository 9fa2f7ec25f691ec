"""Letters per second, in batch: HTML and PDF, single-language and bilingual.

    python -m bench.letters [--quick] [--jobs N]

Each row renders a batch of letters from the shared `we-zijn-je-kwijt` bundle, cycling through
the six languages (bilingual: Dutch + each family language; `nl` bilingual is just Dutch, so
the cycle uses the five others there). The ratio column divides by the single-language HTML
rate measured in the same run, so it says what a PDF or a second language costs.

The "batch" table renders the same PDF batch (six languages mixed, then Arabic only) three
ways, interleaved round by round: one `render_pdf` per letter without caches in this process
(the way letters were rendered before), `render_batch` in this process (a font cache), and
`render_batch` with N processes (their start-up included). Its ratio divides by the first.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable
from datetime import date

from rich.console import Console
from rich.table import Table

from connectors.letters import Letterhead, load_shared_bundle, render_html, render_pdf
from connectors.letters.batch import BatchRow, LetterBatch, default_jobs, render_batch

HEAD = Letterhead(
    name="Gemeente Den Haag",
    department="Leerlingzaken",
    return_address=("Postbus 12652", "2500 DP Den Haag"),
    phone="14 070",
    email="leerplicht@denhaag.nl",
)
VALUES: dict[str, str | date] = {
    "pupil_name": "Jan de Vries",
    "case_number": "2026-0417",
    "officer_name": "Fatima El Amrani",
    "officer_phone": "070 353 5454",
    "contact_email": "leerplicht@denhaag.nl",
    "school_name": "Johan de Witt College",
    "respond_before": date(2026, 5, 1),
}
LANGS = ("nl", "en", "pl", "tr", "ar", "bg")


def rate(render: Callable[[str], object], langs: tuple[str, ...], seconds: float) -> tuple[float, int]:
    for lang in langs:  # warm up: parse caches, font files, Jinja compile
        render(lang)
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        render(langs[n % len(langs)])
        n += 1
    return n / elapsed, n


def run(seconds: float) -> Table:
    bundle = load_shared_bundle("we-zijn-je-kwijt")
    family = tuple(lg for lg in LANGS if lg != "nl")
    cases: list[tuple[str, str, Callable[[str], object], tuple[str, ...]]] = [
        ("HTML", "single", lambda lg: render_html(bundle, lg, VALUES, HEAD), LANGS),
        ("HTML", "bilingual", lambda lg: render_html(bundle, lg, VALUES, HEAD, bilingual=True), family),
        ("PDF", "single", lambda lg: render_pdf(bundle, lg, VALUES, HEAD), LANGS),
        ("PDF", "bilingual", lambda lg: render_pdf(bundle, lg, VALUES, HEAD, bilingual=True), family),
    ]
    table = Table(title=f"connectors.letters, batch of one process ({seconds:.2f} s per row)")
    for col in ("format", "languages", "letters", "letters/s", "ms/letter", "÷ HTML single"):
        table.add_column(col, justify="right" if col not in ("format", "languages") else "left")
    baseline = 0.0
    for fmt, kind, fn, langs in cases:
        per_s, n = rate(fn, langs, seconds)
        baseline = baseline or per_s
        table.add_row(fmt, kind, str(n), f"{per_s:,.1f}", f"{1000 / per_s:.2f}", f"{per_s / baseline:.3f}")
    return table


def batch(letters: int, rounds: int, jobs: int) -> Table:
    bundle = load_shared_bundle("we-zijn-je-kwijt")
    when = date(2026, 4, 17)
    title = f"PDF batch of {letters} letters, {rounds} interleaved rounds, {jobs} processes at most"
    table = Table(title=title)
    for col in ("languages", "path", "letters/s", "ms/letter", "÷ one by one"):
        table.add_column(col, justify="left" if col in ("languages", "path") else "right")
    for name, langs in (("six mixed", LANGS), ("ar", ("ar",))):
        rows = [BatchRow(lg, VALUES) for lg in itertools.islice(itertools.cycle(langs), letters)]
        each = LetterBatch(bundle, HEAD, letter_date=when)

        def one_by_one(rows: list[BatchRow] = rows) -> None:
            for row in rows:
                render_pdf(bundle, row.lang, row.values, HEAD, letter_date=when)

        def batched(n: int, rows: list[BatchRow] = rows, each: LetterBatch = each) -> None:
            for result in render_batch(each, rows, jobs=n):
                assert result.failure is None, result.failure

        paths: list[tuple[str, Callable[[], None]]] = [
            ("one by one, no caches, 1 process", one_by_one),
            ("batch, caches, 1 process", lambda: batched(1)),
            (f"batch, caches, {jobs} processes", lambda: batched(jobs)),
        ]
        spent = dict.fromkeys((p for p, _ in paths), 0.0)
        for _ in range(rounds):
            for path, fn in paths:
                start = time.perf_counter()
                fn()
                spent[path] += time.perf_counter() - start
        baseline = letters * rounds / spent[paths[0][0]]
        for path, _ in paths:
            per_s = letters * rounds / spent[path]
            table.add_row(name, path, f"{per_s:,.2f}", f"{1000 / per_s:.1f}", f"{per_s / baseline:.2f}")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run (about 2 s per row)")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per row")
    parser.add_argument("--jobs", type=int, default=default_jobs(), help="processes for the batch table")
    parser.add_argument("--batch-letters", type=int, default=None, help="letters in the batch table")
    parser.add_argument("--only-batch", action="store_true", help="only the batch table")
    args = parser.parse_args()
    seconds = args.seconds or (2.0 if args.quick else 10.0)
    console = Console()
    if not args.only_batch:
        console.print(run(seconds))
    letters = args.batch_letters or (24 if args.quick else 120)
    console.print(batch(letters, 2 if args.quick else 3, args.jobs))


if __name__ == "__main__":
    main()
