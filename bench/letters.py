"""Letters per second, in batch: HTML and PDF, single-language and bilingual.

    python -m bench.letters [--quick]

Each row renders a batch of letters from the shared `we-zijn-je-kwijt` bundle, cycling through
the six languages (bilingual: Dutch + each family language; `nl` bilingual is just Dutch, so
the cycle uses the five others there). The ratio column divides by the single-language HTML
rate measured in the same run, so it says what a PDF or a second language costs.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import date

from rich.console import Console
from rich.table import Table

from connectors.letters import Letterhead, load_shared_bundle, render_html, render_pdf

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


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run (about 2 s per row)")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per row")
    args = parser.parse_args()
    seconds = args.seconds or (2.0 if args.quick else 10.0)
    Console().print(run(seconds))


if __name__ == "__main__":
    main()
