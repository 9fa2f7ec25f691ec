"""A pupil's access report (AVG article 15) over HTTP, with a real store and keystore (no hub or
broker): the processing log is written through `LocalStore.log_processing`, as the connector's
client writes it for every event sent and received. The report lists every step about the
pupil (the answers to an offer carry no BSN and inherit the offer's subject and legal basis; a
notice's records learn the subject from the desk) with the other party, the legal basis and
the processing activity of the municipality's register; another pupil's steps and records from
before the subject was kept are not in it. The PDF's text says the same, an Arabic name
included. A viewer is refused; every view and download is in the processing log with the
person's name; no BSN in the connector's log lines.

Letters: `inbeeld-connector letter render --bsn-stdin` and `letter batch` with a `bsn` column,
run as a process on the same store and keystore, log each letter about a pupil; the report
(page and PDF) lists it with its template, language, addressee, legal basis and processing
activity. A letter rendered without naming a pupil is in nobody's report, and the BSN is in
neither the command's output nor the log's plain columns."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from structlog.testing import capture_logs

from connectors import accounts, register
from connectors.config import parse_config
from connectors.keystore import Keystore
from connectors.letters import shared_bundle_dir
from connectors.schema import processing_log
from connectors.services import ConnectorServices
from connectors.store import LocalStore
from connectors.workspace import create_workspace
from schemas.processing_log import STATUS_OK, ProcessingRecord, processing_activity_id
from tests.connectors.letters.conftest import BIDI_MARKS, poppler_text
from tests.connectors.workspace.test_workspace_http import PASSWORD, _csrf, _log_in

HEADER = (
    "bsn,given_names,family_name_prefix,family_name,birth_date,street,house_number,postcode,city,"
    "municipality\n"
)
SANNE_BSN, YASMIN_BSN, OTHER_BSN = "111222333", "123456782", "232323231"
ROWS = (
    f"{SANNE_BSN},Sanne,van,Voorbeeld,2014-05-17,Proefstraat,1,3011 AA,Rotterdam,GM0599\n"
    f"{YASMIN_BSN},ياسمين,,الحسيني,2013-01-02,Kade,12,3012 BB,Rotterdam,GM0599\n"
)
TRANSFER, OTHER_TRANSFER, NOTICE = "tr-gm0518-aaa", "tr-gm0518-bbb", "nt-0123abcd"
BASIS = ("lpw-1969-art-18", "Leerplichtwet 1969, artikel 18")
ACTIVITIES = {
    "transfer": {"id": "GM0599-VA-overdracht", "name": "Overdracht leerplichtdossier bij verhuizing"},
    "notice": {
        "id": "GM0599-VA-buren",
        "name": "Buren vragen naar een vermiste leerling",
        "legal_basis": "Leerplichtwet 1969, artikel 16",
    },
    "access": {"id": "GM0599-VA-inzage", "name": "Inzageverzoeken"},
    "letter": {
        "id": "GM0599-VA-brieven",
        "name": "Brieven aan leerlingen en ouders",
        "legal_basis": "Leerplichtwet 1969, artikel 16a",
    },
}
KEYSTORE_PASSPHRASE = "workspace test"


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[ConnectorServices]:
    config = parse_config(
        {
            "tenant": "GM0599",
            "broker": {"url": "amqp://127.0.0.1:5672/nothing", "username": "nobody"},
            "store": {"path": "connector.db"},
            "processing_activities": ACTIVITIES,
        },
        tmp_path,
    )
    keystore = Keystore.create(tmp_path / "keystore.json", passphrase=KEYSTORE_PASSPHRASE, scrypt_n=2**14)
    store = await LocalStore.open(config.store.path, keystore)
    store.activities = config.activity_ids()  # as ConnectorServices.open does
    try:
        yield ConnectorServices(config, keystore=keystore, store=store)
    finally:
        await store.close()


@pytest.fixture
async def web(services: ConnectorServices) -> AsyncIterator[httpx.AsyncClient]:
    app = create_workspace(services, secret="a test secret of the workspace")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://workspace") as client:
        yield client


async def _exchanged(
    store: LocalStore,
    direction: str,
    short_type: str,
    about: str,
    counterpart: str | None,
    bsn: str | None = None,
    basis: tuple[str, str] | None = None,
) -> None:
    now = time.time()
    event_type = "nl.leerplicht." + short_type
    await store.log_processing(
        ProcessingRecord(
            trace_id=secrets.token_hex(16),
            span_id=secrets.token_hex(8),
            parent_span_id=None,
            name=f"{direction} {short_type}",
            status=STATUS_OK,
            start=now,
            end=now,
            processing_activity_id=processing_activity_id(event_type),
            event_id=secrets.token_hex(8),
            event_type=event_type,
            counterpart=counterpart,
            data_subject_id=bsn,
            about=about,
            legal_basis=basis,
        )
    )


async def _history(store: LocalStore) -> None:
    """What Rotterdam's connector logged: an offer for Sanne accepted, a notice about her
    answered, an offer for another pupil, and a record from before subjects were kept."""
    async with store.engine.begin() as conn:  # as migration 0008 leaves an older record
        await conn.execute(
            processing_log.insert().values(
                trace_id="0" * 32,
                span_id="0" * 16,
                name="receive transfer.offered",
                status_code=STATUS_OK,
                start_time=time.time(),
                end_time=time.time(),
                processing_activity_id=processing_activity_id("nl.leerplicht.transfer"),
                event_id="old",
                event_type="nl.leerplicht.transfer.offered",
                counterpart="GM0363",
                subject="tr-old",
            )
        )
    await _exchanged(
        store,
        "receive",
        "transfer.offered",
        TRANSFER,
        "GM0518",
        SANNE_BSN,
        BASIS,
    )
    await _exchanged(store, "send", "transfer.accepted", TRANSFER, "GM0518")
    await _exchanged(store, "receive", "transfer.completed", TRANSFER, "GM0518")
    await _exchanged(
        store,
        "receive",
        "transfer.offered",
        OTHER_TRANSFER,
        "GM0518",
        OTHER_BSN,
    )
    await _exchanged(store, "receive", "notice.pupil_missing", NOTICE, "GM0518")
    # The desk matched the index to Sanne: the notice's records learn whom they are about.
    assert await store.attach_subject(processing_activity_id("nl.leerplicht.notice"), NOTICE, SANNE_BSN) == 1
    await _exchanged(store, "send", "notice.pupil_found", NOTICE, "GM0518")


async def test_an_officer_sees_and_downloads_a_pupils_access_report(
    web: httpx.AsyncClient, services: ConnectorServices
) -> None:
    assert services.store is not None
    store = services.store
    await accounts.add(store, "anna", "officer", PASSWORD)
    report = await register.import_data(store, (HEADER + ROWS).encode())
    assert report.ok and report.imported == 2
    await _history(store)
    sanne = await register.lookup(store, SANNE_BSN)
    yasmin = await register.lookup(store, YASMIN_BSN)
    assert sanne is not None and yasmin is not None
    await _log_in(web, "anna")
    with capture_logs() as logs:
        page = await web.get("/register")
        r = await web.post("/register/search", data={"csrf": _csrf(page.text), "q": "voorbeeld"})
        assert f'href="/register/{sanne["id"]}/report"' in r.text
        assert 'aria-label="Inzageoverzicht van Sanne van Voorbeeld"' in r.text

        r = await web.get(f"/register/{sanne['id']}/report")
        assert r.status_code == 200, r.text
        table = r.text[r.text.index('id="steps"') :]
        rows = re.findall(r'<tr class="utrecht-table__row">(.*?)</tr>', table, re.S)[1:]
        steps = [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip() for row in rows]
        assert len(steps) == 5, steps
        expected = [
            ("Overdracht aangeboden (ontvangen) · " + TRANSFER, "identiteit (naam, BSN, geboortedatum)"),
            ("Overdracht geaccepteerd (verstuurd) · " + TRANSFER, "stand van de overdracht"),
            ("Overdracht afgerond (ontvangen) · " + TRANSFER, "stand van de overdracht"),
            ("Buren gevraagd naar de leerling (ontvangen) · " + NOTICE, "versleutelde zoeksleutel"),
            ("Gevonden gemeld (verstuurd) · " + NOTICE, "school, inschrijving"),
        ]
        for text, (what, categories) in zip(steps, expected, strict=True):
            assert what in text and categories in text and "GM0518" in text, text
        for text in steps[:3]:  # the offer's legal basis, inherited by its answers
            assert "Leerplichtwet 1969, artikel 18 (lpw-1969-art-18)" in text, text
            assert "Overdracht leerplichtdossier bij verhuizing (GM0599-VA-overdracht)" in text, text
        for text in steps[3:]:  # a notice names no article: the register of activities does
            assert "Leerplichtwet 1969, artikel 16" in text, text
            assert "Buren vragen naar een vermiste leerling (GM0599-VA-buren)" in text, text
        assert OTHER_TRANSFER not in r.text and "tr-old" not in r.text and "GM0363" not in r.text
        assert "Dit inzien is vastgelegd in het verwerkingenlog, met uw naam." in r.text
        english = await web.get(f"/register/{sanne['id']}/report?lang=en")
        assert "Access report of" in english.text and "Transfer accepted (sent)" in english.text
        await web.get(f"/register/{sanne['id']}/report?lang=nl")

        r = await web.get(f"/register/{sanne['id']}/report.pdf")
        assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
        assert SANNE_BSN not in r.headers["content-disposition"]
        text = re.sub(r"\s+", " ", poppler_text(r.content))
        for what, _ in expected:
            assert what.split(" · ")[0] in text, (what, text)
        assert TRANSFER in text and NOTICE in text and "Sanne van Voorbeeld" in text and SANNE_BSN in text
        assert "Leerplichtwet 1969, artikel 18" in text and "GM0599-VA-overdracht" in text
        assert text.count("Met: GM0518") == 5 and OTHER_TRANSFER not in text

        # A name in Arabic prints as written; she has no exchanges.
        r = await web.get(f"/register/{yasmin['id']}/report.pdf")
        assert r.status_code == 200
        arabic = BIDI_MARKS.sub("", poppler_text(r.content))
        assert "ياسمين" in arabic and "الحسيني" in arabic
        assert "Over deze leerling is geen uitwisseling of brief vastgelegd." in arabic

        r = await web.get("/register/no-such-pupil/report")
        assert r.status_code == 404 and "Deze pagina bestaat niet." in r.text
        r = await web.get("/register/" + "x" * 60 + "/report.pdf")
        assert r.status_code == 404
    lines = repr(logs)
    assert SANNE_BSN not in lines and YASMIN_BSN not in lines and "Voorbeeld" not in lines, lines

    # Every view and download is itself in the processing log: who, about whom, under which activity.
    logged = [(r, who) for r, who in await store.subject_records(SANNE_BSN) if who is not None]
    assert [(r.name, who, r.about) for r, who in logged] == [
        ("access_report_viewed", "anna", sanne["id"]),  # in Dutch, in English, in Dutch again
        ("access_report_viewed", "anna", sanne["id"]),
        ("access_report_viewed", "anna", sanne["id"]),
        ("access_report_downloaded", "anna", sanne["id"]),
    ]
    assert {r.processing_activity_id for r, _ in logged if r.name.startswith("access_report")} == {
        "GM0599-VA-inzage"
    }
    # The subject is kept encrypted: neither the BSN nor its index in the clear is the BSN.
    async with store.engine.connect() as conn:
        raw = (await conn.execute(select(processing_log))).mappings().all()
    assert all(SANNE_BSN.encode() not in (row["data_subject_id"] or b"") for row in raw)
    assert all(row["subject_index"] != SANNE_BSN for row in raw)


async def test_a_viewer_gets_no_access_report(web: httpx.AsyncClient, services: ConnectorServices) -> None:
    assert services.store is not None
    store = services.store
    await accounts.add(store, "victor", "viewer", PASSWORD)
    await register.import_data(store, (HEADER + ROWS).encode())
    await _history(store)
    sanne = await register.lookup(store, SANNE_BSN)
    assert sanne is not None
    await _log_in(web, "victor")
    page = await web.get("/register")
    r = await web.post("/register/search", data={"csrf": _csrf(page.text), "q": "voorbeeld"})
    assert "Sanne van Voorbeeld" in r.text and "/report" not in r.text
    for path in (f"/register/{sanne['id']}/report", f"/register/{sanne['id']}/report.pdf"):
        r = await web.get(path)
        assert r.status_code == 403 and "Uw rol geeft geen toegang" in r.text
        assert TRANSFER not in r.text
    names = [r.name for r, who in await store.subject_records(SANNE_BSN) if who is not None]
    assert "access_report_viewed" not in names and "access_report_downloaded" not in names


LETTER_VALUES = {
    "pupil_name": "Sanne van Voorbeeld",
    "case_number": "2026-0417",
    "officer_name": "Fatima El Amrani",
    "officer_phone": "070 353 5454",
    "contact_email": "leerplicht@rotterdam.example",
}


def _cli_config(tmp_path: Path) -> Path:
    """The same connector for `inbeeld-connector`: its store, keystore and register of
    processing activities (the workspace fixture's)."""
    activities = "".join(
        f"[processing_activities.{flow}]\n"
        + "".join(f"{key} = {json.dumps(value)}\n" for key, value in entry.items())
        for flow, entry in ACTIVITIES.items()
    )
    path = tmp_path / "connector.toml"
    path.write_text(
        'tenant = "GM0599"\n'
        '[broker]\nurl = "amqp://127.0.0.1:5672/nothing"\nusername = "nobody"\n'
        '[keystore]\npath = "keystore.json"\npassphrase_env = "TEST_REPORT_PASSPHRASE"\ncreate = false\n'
        '[store]\npath = "connector.db"\n' + activities,
        "utf-8",
    )
    return path


async def _cli(*args: str, stdin: str = "") -> tuple[int, str]:
    """`inbeeld-connector ARGS` as a process of its own; its exit code and its output."""
    env = {**os.environ, "TEST_REPORT_PASSPHRASE": KEYSTORE_PASSPHRASE, "COLUMNS": "200"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connectors.cli",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    out, _ = await asyncio.wait_for(proc.communicate(stdin.encode()), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode("utf-8", errors="replace")


def _rows(html: str) -> list[str]:
    table = html[html.index('id="steps"') :]
    rows = re.findall(r'<tr class="utrecht-table__row">(.*?)</tr>', table, re.S)[1:]
    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip() for row in rows]


async def test_letters_rendered_about_a_pupil_are_in_her_access_report(
    web: httpx.AsyncClient, services: ConnectorServices, tmp_path: Path
) -> None:
    assert services.store is not None
    store = services.store
    await accounts.add(store, "anna", "officer", PASSWORD)
    assert (await register.import_data(store, (HEADER + ROWS).encode())).ok
    sanne = await register.lookup(store, SANNE_BSN)
    yasmin = await register.lookup(store, YASMIN_BSN)
    assert sanne is not None and yasmin is not None
    config = str(_cli_config(tmp_path))
    code, out = await _cli("templates", "import", str(shared_bundle_dir() / "we-zijn-je-kwijt"), "-c", config)
    assert code == 0, out
    data = tmp_path / "values.json"
    data.write_text(json.dumps(LETTER_VALUES), "utf-8")
    render = ["letter", "render", "-c", config, "-t", "we-zijn-je-kwijt", "--data", str(data)]

    # A letter to Sanne's parents, about her: the BSN read from standard input.
    code, out = await _cli(
        *render,
        "--lang",
        "nl",
        "-o",
        str(tmp_path / "sanne.pdf"),
        "--bsn-stdin",
        "--addressee",
        "parents",
        "--recipient",
        "Aan de ouders/verzorgers van",
        "--recipient",
        "Sanne van Voorbeeld",
        "--recipient",
        "Proefstraat 1",
        "--recipient",
        "3011 AA  ROTTERDAM",
        stdin=SANNE_BSN + "\n",
    )
    assert code == 0, out
    assert "logged for the pupil's access report" in out and SANNE_BSN not in out, out
    # The same letter naming no pupil: written, about no one.
    code, out = await _cli(*render, "--lang", "nl", "-o", str(tmp_path / "nobody.pdf"))
    assert code == 0 and "logged" not in out and (tmp_path / "nobody.pdf").stat().st_size > 0, out
    # A bad BSN is refused without repeating it; an addressee not in the list too.
    code, out = await _cli(
        *render, "--lang", "nl", "-o", str(tmp_path / "x.pdf"), "--bsn-stdin", stdin="123456780\n"
    )
    assert code == 2 and "11-test" in out and "123456780" not in out and "Traceback" not in out, out
    code, out = await _cli(*render, "--lang", "nl", "-o", str(tmp_path / "x.pdf"), "--addressee", "buurman")
    assert code == 2 and "--addressee is one of" in out and "Traceback" not in out, out
    code, out = await _cli(*render, "--lang", "nl", "-o", str(tmp_path / "x.pdf"), "--addressee", "parents")
    assert code == 2 and "--addressee is for a letter about a pupil" in out and "Traceback" not in out, out
    assert not (tmp_path / "x.pdf").exists()

    # A batch: Yasmin's row names her (a letter to her, in English), one row names no one, and
    # a row with a BSN that fails the 11-test and one with an addressee but no pupil fail on
    # their own (and are not rendered).
    batch = tmp_path / "batch.csv"
    fields = ",".join(LETTER_VALUES)
    values = ",".join(LETTER_VALUES.values())
    batch.write_text(
        f"bsn,addressee,lang,file,{fields}\n"
        f"{YASMIN_BSN},pupil,en,yasmin,{values}\n"
        f",,nl,nobody,{values}\n"
        f"123456780,parents,nl,bad,{values}\n"
        f",parents,nl,nameless,{values}\n",
        "utf-8",
    )
    code, out = await _cli(
        "letter",
        "batch",
        "-c",
        config,
        "-t",
        "we-zijn-je-kwijt",
        "--csv",
        str(batch),
        "--out",
        str(tmp_path / "b"),
    )
    assert code == 1 and "wrote 2 letters" in out and "2 rows failed" in out, out
    assert "not 9 digits passing the 11-test" in out and "123456780" not in out and YASMIN_BSN not in out, out
    # An addressee names to whom a letter about a pupil is written: without the pupil, the row fails.
    assert "is for a letter about a pupil" in out, out
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["nobody.pdf", "yasmin.pdf"]

    await _log_in(web, "anna")
    r = await web.get(f"/register/{sanne['id']}/report")
    assert r.status_code == 200, r.text
    rows = _rows(r.text)
    assert len(rows) == 1, rows
    letter = rows[0]
    for part in (
        "Brief gemaakt (sjabloon we-zijn-je-kwijt, versie 1.0.0, taal nl)",
        "ouders of verzorgers",
        "naam, inhoud van de brief",
        "adressen",
        "Leerplichtwet 1969, artikel 16a",
        "Brieven aan leerlingen en ouders (GM0599-VA-brieven)",
    ):
        assert part in letter, (part, letter)
    english = await web.get(f"/register/{sanne['id']}/report?lang=en")
    assert "Letter made (template we-zijn-je-kwijt, version 1.0.0, language nl)" in english.text
    assert "parents or guardians" in english.text
    await web.get(f"/register/{sanne['id']}/report?lang=nl")
    pdf = await web.get(f"/register/{sanne['id']}/report.pdf")
    assert pdf.status_code == 200
    text = re.sub(r"\s+", " ", poppler_text(pdf.content))
    assert "Brief gemaakt (sjabloon we-zijn-je-kwijt, versie 1.0.0, taal nl)" in text, text
    assert "Met: ouders of verzorgers" in text and "GM0599-VA-brieven" in text, text
    assert "Leerplichtwet 1969, artikel 16a" in text, text

    r = await web.get(f"/register/{yasmin['id']}/report")
    rows = _rows(r.text)
    assert len(rows) == 1, rows
    assert "taal en" in rows[0] and "de leerling" in rows[0] and "adressen" not in rows[0], rows

    # Only the two letters about a pupil are in the log, each about her and no one else; no
    # plain column holds a BSN.
    async with store.engine.connect() as conn:
        raw = (await conn.execute(select(processing_log))).mappings().all()
    letters = [row for row in raw if row["event_type"] == "nl.leerplicht.letter.rendered"]
    assert len(letters) == 2 and all(row["subject_index"] for row in letters), letters
    for row in raw:
        plain = " ".join(str(v) for k, v in row.items() if k not in ("data_subject_id",))
        assert SANNE_BSN not in plain and YASMIN_BSN not in plain, row
        assert SANNE_BSN.encode() not in (row["data_subject_id"] or b"")
    assert {json.loads(row["attributes"])["template"] for row in letters} == {"we-zijn-je-kwijt"}
