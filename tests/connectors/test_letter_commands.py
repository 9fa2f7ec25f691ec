"""`inbeeld-connector templates import` and `letter render` / `letter batch` as an officer uses
them: a bundle from a folder into the local catalogue, letters with an address and a date."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from typer.testing import CliRunner

from connectors.cli import app
from connectors.letters import shared_bundle_dir
from tests.connectors.letters.conftest import BIDI_MARKS, poppler_text, poppler_words

runner = CliRunner()
TEMPLATE = "we-zijn-je-kwijt"
VALUES = {
    "pupil_name": "Jan de Vries",
    "case_number": "2026-0417",
    "officer_name": "Fatima El Amrani",
    "officer_phone": "070 353 5454",
    "contact_email": "leerplicht@denhaag.nl",
}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "connector.toml"
    assert runner.invoke(app, ["init", str(path)]).exit_code == 0
    result = runner.invoke(app, ["templates", "import", str(shared_bundle_dir() / TEMPLATE), "-c", str(path)])
    assert result.exit_code == 0, result.output
    assert f"imported {TEMPLATE}@1.0.0 (publisher ingrado)" in result.output
    return path


def test_import_is_idempotent_and_refuses_a_broken_bundle(config: Path, tmp_path: Path) -> None:
    again = runner.invoke(
        app, ["templates", "import", str(shared_bundle_dir() / TEMPLATE), "-c", str(config)]
    )
    assert again.exit_code == 0 and "already held" in again.output
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in (shared_bundle_dir() / TEMPLATE).iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "tr.md").write_text("subject: Merhaba\n\nMerhaba ((bsn)).\n", encoding="utf-8")
    result = runner.invoke(app, ["templates", "import", str(broken), "-c", str(config)])
    assert result.exit_code == 1 and "((bsn))" in result.output and "Traceback" not in result.output
    listed = runner.invoke(app, ["templates", "list", "-c", str(config)], env={"COLUMNS": "200"})
    assert TEMPLATE in listed.output and "1.0.0" in listed.output


def test_render_with_the_recipients_address_and_a_date(config: Path, tmp_path: Path) -> None:
    data = tmp_path / "values.json"
    data.write_text(json.dumps(VALUES), encoding="utf-8")
    out = tmp_path / "letter.pdf"
    address = ["Aan de ouders/verzorgers van", "Jan de Vries", "Proefstraat 12", "2511 AB  DEN HAAG"]
    args = ["letter", "render", "-c", str(config), "-t", TEMPLATE, "--lang", "nl", "--data", str(data)]
    args += ["-o", str(out), "--date", "2026-04-17"]
    for line in address:
        args += ["--recipient", line]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    text = BIDI_MARKS.sub("", poppler_text(out.read_bytes()))
    assert "Datum: 17 april 2026" in text
    assert {"Proefstraat", "DEN", "HAAG"} <= {w for w, *_ in poppler_words(out.read_bytes())}

    bad = runner.invoke(app, [*args[: args.index("--date")], "--date", "17-04-2026"])
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output
    wrong = [
        *args[: args.index("--recipient")],
        "--recipient",
        "Jan de Vries",
        "--recipient",
        "2511ab Den Haag",
    ]
    refused = runner.invoke(app, wrong)
    assert refused.exit_code == 1 and "error (recipient)" in refused.output and "postcode" in refused.output


def _letters_rendered() -> float:
    return REGISTRY.get_sample_value("inbeeld_connector_letters_rendered_total", {"format": "pdf"}) or 0.0


def _csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_batch_refuses_rows_that_would_overwrite_each_other(config: Path, tmp_path: Path) -> None:
    rows = [{**VALUES, "file": name, "lang": lang} for name, lang in (("a", "nl"), ("b", "pl"), ("a", "ar"))]
    out = tmp_path / "out"
    args = [
        "letter",
        "batch",
        "-c",
        str(config),
        "-t",
        TEMPLATE,
        "--csv",
        str(_csv(tmp_path / "r.csv", rows)),
    ]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 1 and "share a file name" in result.output and ": a" in result.output
    assert not out.exists() or not list(out.iterdir())  # refused before anything was written


def test_batch_writes_one_letter_per_row_with_its_address(config: Path, tmp_path: Path) -> None:
    rows = [
        {**VALUES, "file": "een", "lang": "nl", "recipient": "Jan de Vries|Proefstraat 12|2511 AB  DEN HAAG"},
        {
            **VALUES,
            "file": "twee",
            "lang": "bg",
            "recipient": "Familie Petrova|Kerkstraat 1|3011 AB  ROTTERDAM",
        },
    ]
    out = tmp_path / "out"
    args = [
        "letter",
        "batch",
        "-c",
        str(config),
        "-t",
        TEMPLATE,
        "--csv",
        str(_csv(tmp_path / "r.csv", rows)),
    ]
    before = _letters_rendered()
    result = runner.invoke(app, [*args, "--out", str(out), "--date", "2026-04-17"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["een.pdf", "twee.pdf"]
    assert _letters_rendered() - before == 2  # inbeeld_connector_letters_rendered_total{format="pdf"}
    assert "ROTTERDAM" in poppler_text((out / "twee.pdf").read_bytes())


def test_diff_shows_what_a_new_version_changed(config: Path, tmp_path: Path) -> None:
    alone = runner.invoke(app, ["templates", "diff", TEMPLATE, "-c", str(config)])
    assert alone.exit_code == 1 and "only usable version" in alone.output and "Traceback" not in alone.output
    newer = tmp_path / "newer"
    newer.mkdir()
    for f in (shared_bundle_dir() / TEMPLATE).iterdir():
        (newer / f.name).write_bytes(f.read_bytes())
    manifest = json.loads((newer / "manifest.json").read_text())
    manifest["version"] = "1.1.0"
    (newer / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False))
    ar = (newer / "ar.md").read_text(encoding="utf-8")
    (newer / "ar.md").write_text(ar.replace("مع أطيب التحيات،", "مع خالص التحيات،"), encoding="utf-8")
    assert runner.invoke(app, ["templates", "import", str(newer), "-c", str(config)]).exit_code == 0
    shown = runner.invoke(app, ["templates", "diff", TEMPLATE, "-c", str(config)])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert f"--- {TEMPLATE}@1.0.0/ar.md" in lines and f"+++ {TEMPLATE}@1.1.0/ar.md" in lines
    assert "-مع أطيب التحيات،" in lines and "+مع خالص التحيات،" in lines
    assert not any(line.startswith("+++") and "/nl.md" in line for line in lines)
    same = runner.invoke(
        app, ["templates", "diff", TEMPLATE, "--from", "1.0.0", "--to", "1.0.0", "-c", str(config)]
    )
    assert same.exit_code == 0 and "have the same text" in same.output
    missing = runner.invoke(app, ["templates", "diff", TEMPLATE, "--from", "0.9.0", "-c", str(config)])
    assert missing.exit_code == 1 and "0.9.0 is not in the catalogue" in missing.output


def test_batch_in_processes_writes_the_good_rows_and_reports_the_rest(config: Path, tmp_path: Path) -> None:
    rows = [
        {**VALUES, "file": "een", "lang": "ar", "recipient": ""},
        {**VALUES, "file": "twee", "lang": "xx", "recipient": ""},
        {**VALUES, "file": "drie", "lang": "pl", "recipient": "Rodzina Nowak|Kerkstraat 1|3011 AB  ASSEN"},
    ]
    out = tmp_path / "out"
    table = _csv(tmp_path / "r.csv", rows)
    args = ["letter", "batch", "-c", str(config), "-t", TEMPLATE, "--csv", str(table)]
    before = _letters_rendered()
    result = runner.invoke(app, [*args, "--out", str(out), "--jobs", "2"], env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output
    assert "wrote 2 letters" in result.output and "1 rows failed" in result.output
    assert re.search(r"│ 2\s+│ lang\s+│", result.output) and "Traceback" not in result.output
    assert sorted(p.name for p in out.iterdir()) == ["drie.pdf", "een.pdf"]
    assert _letters_rendered() - before == 2
    assert "ASSEN" in poppler_text((out / "drie.pdf").read_bytes())
