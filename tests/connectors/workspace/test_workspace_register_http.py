"""The workspace's register page over HTTP with a real store and keystore (no hub or broker):
searching by name, birth date and BSN (each pupil shown is in the processing log with the
person's name), a CSV upload with a malformed row (its line, column and reason on the page;
the good rows imported, the bad one not at all, as `register import` does), shredding after
a confirmation step, a viewer who may search but neither import nor shred, and no BSN in the
connector's log lines. The notices page says so when there is no hub or broker."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from structlog.testing import capture_logs

from connectors import accounts, processing_log, register
from connectors.services import ConnectorServices
from connectors.workspace import register_pages
from schemas.fields import passes_eleven_test
from tests.connectors.workspace.test_workspace_http import (  # the same workspace, logged in the same way
    PASSWORD,
    _csrf,
    _log_in,
    services,
    web,
)

__all__ = ["services", "web"]  # fixtures

HEADER = (
    "bsn;given_names;family_name_prefix;family_name;birth_date;street;house_number;postcode;city;"
    "municipality\n"
)
SANNE = "111222333;Sanne;van;Voorbeeld;2014-05-17;Proefstraat;1;3011 AA;Rotterdam;GM0599\n"
YUSUF = "123456782;Yusuf;;Testmans;2013-01-02;Kade;12;3012 BB;Rotterdam;GM0599\n"
BAD = "123456789;Fout;;Rij;2015-02-03;Laan;3;3013 CC;Rotterdam;GM0599\n"  # fails the 11-test
BSNS = ("111222333", "123456782", "123456789")


async def _upload(web: httpx.AsyncClient, text: str, csrf: str) -> httpx.Response:
    files = {"file": ("leerlingen.csv", text.encode("utf-8"), "text/csv")}
    return await web.post("/register/import", data={"csrf": csrf}, files=files)


async def test_an_officer_imports_searches_and_shreds_and_every_view_is_logged(
    web: httpx.AsyncClient, services: ConnectorServices
) -> None:
    assert services.store is not None
    store = services.store
    await accounts.add(store, "anna", "officer", PASSWORD)
    await _log_in(web, "anna")
    with capture_logs() as logs:
        page = await web.get("/register")
        assert page.status_code == 200 and "telt 0 leerlingen" in page.text
        csrf = _csrf(page.text)

        r = await _upload(web, HEADER + SANNE + BAD + YUSUF, csrf)
        assert r.status_code == 422
        assert "2 nieuw, 0 vervangen, 1 rij(en) geweigerd." in r.text
        row = r.text[r.text.index("Geweigerde rijen") :]
        assert '<td class="utrecht-table__cell">3</td>' in row  # line 3 of the file (header: 1)
        assert '<td class="utrecht-table__cell">bsn</td>' in row and "11-test" in row
        assert "123456789" not in r.text  # the bad value is never echoed
        assert await register.count(store) == 2
        assert await register.lookup(store, "123456789") is None  # nothing of the bad row written

        r = await web.post("/register/search", data={"csrf": csrf, "q": "voorbeeld"})
        assert r.status_code == 200 and "Sanne van Voorbeeld" in r.text and "111222333" in r.text
        assert "Testmans" not in r.text
        r = await web.post("/register/search", data={"csrf": csrf, "q": "2-1-2013"})
        assert "Yusuf Testmans" in r.text and "Voorbeeld" not in r.text
        r = await web.post("/register/search", data={"csrf": csrf, "q": "123456782"})
        assert "Yusuf Testmans" in r.text and "Buren vragen naar Yusuf Testmans" in r.text
        r = await web.post("/register/search", data={"csrf": csrf, "q": "niemand"})
        assert "Geen leerling gevonden." in r.text

        sanne = await register.lookup(store, "111222333")
        yusuf = await register.lookup(store, "123456782")
        assert sanne is not None and yusuf is not None
        seen = [(e.user_name, e.activity, e.subject) for e in reversed(await processing_log.entries(store))]
        assert seen[0][:2] == ("anna", "register_imported") and seen[0][2].startswith("2 new")
        assert seen[1:] == [
            ("anna", "register_viewed", sanne["id"]),
            ("anna", "register_viewed", yusuf["id"]),
            ("anna", "register_viewed", yusuf["id"]),
        ]

        # Shredding needs the confirmation: without it nothing happens.
        r = await web.get("/register/shred")
        assert r.status_code == 200 and "alle 2 leerlingen" in r.text
        r = await web.post("/register/shred", data={"csrf": csrf})
        assert r.status_code == 400 and "er is niets vernietigd" in r.text
        assert await register.count(store) == 2
        r = await web.post("/register/shred", data={"csrf": csrf, "confirm": "yes"})
        assert r.status_code == 303
        r = await web.get(r.headers["location"])
        assert "Het register is vernietigd: 2 leerlingen." in r.text and "telt 0 leerlingen" in r.text
        assert await register.count(store) == 0
    lines = repr(logs)
    assert not [bsn for bsn in BSNS if bsn in lines], lines
    assert {"workspace.register_imported", "workspace.register_searched"} <= {e["event"] for e in logs}


async def test_a_viewer_may_search_but_neither_import_nor_shred(
    web: httpx.AsyncClient, services: ConnectorServices
) -> None:
    assert services.store is not None
    store = services.store
    await accounts.add(store, "victor", "viewer", PASSWORD)
    await register.import_data(store, (HEADER + SANNE).encode())
    await _log_in(web, "victor")
    page = await web.get("/register")
    assert "importeren en vernietigen kan niet" in page.text and 'action="/register/import"' not in page.text
    csrf = _csrf(page.text)
    r = await web.post("/register/search", data={"csrf": csrf, "q": "Sanne"})
    assert r.status_code == 200 and "Sanne van Voorbeeld" in r.text
    assert "Buren vragen naar" not in r.text  # asking the neighbours is for who may act
    r = await _upload(web, HEADER + YUSUF, csrf)
    assert r.status_code == 403 and "Uw rol geeft geen toegang" in r.text
    assert await register.lookup(store, "123456782") is None
    for r in (
        await web.get("/register/shred"),
        await web.post("/register/shred", data={"csrf": csrf, "confirm": "yes"}),
    ):
        assert r.status_code == 403
    assert await register.count(store) == 1
    assert [(e.user_name, e.activity) for e in await processing_log.entries(store)] == [
        ("victor", "register_viewed")
    ]


async def test_an_upload_without_the_csrf_token_or_a_file_does_nothing(
    web: httpx.AsyncClient, services: ConnectorServices
) -> None:
    assert services.store is not None
    await accounts.add(services.store, "anna", "officer", PASSWORD)
    await _log_in(web, "anna")
    csrf = _csrf((await web.get("/register")).text)
    r = await _upload(web, HEADER + SANNE, "forged")
    assert r.status_code == 403 and "Het formulier is verlopen" in r.text
    r = await web.post("/register/import", data={"csrf": csrf, "file": "not a file"}, files={"x": ("", b"")})
    assert r.status_code == 400 and "choose a CSV file" in r.text
    r = await web.post("/register/import", data={"csrf": csrf, "q": "x"})  # urlencoded, not multipart
    assert r.status_code == 400 and "multipart/form-data" in r.text
    r = await _upload(web, "\ufeffnaam,achternaam\nSanne,Voorbeeld\n", csrf)
    assert r.status_code == 422 and "required column is missing" in r.text
    assert await register.count(services.store) == 0


async def test_the_notices_page_says_when_the_hub_and_broker_are_not_there(
    web: httpx.AsyncClient, services: ConnectorServices
) -> None:
    assert services.store is not None
    await accounts.add(services.store, "anna", "officer", PASSWORD)
    await _log_in(web, "anna")
    r = await web.get("/notices")
    assert r.status_code == 503 and "niet bereikbaar" in r.text


async def test_a_viewer_may_not_ask_close_or_confirm_notices(
    web: httpx.AsyncClient, services: ConnectorServices
) -> None:
    assert services.store is not None
    await accounts.add(services.store, "victor", "viewer", PASSWORD)
    await register.import_data(services.store, (HEADER + SANNE).encode())
    sanne = await register.lookup(services.store, "111222333")
    assert sanne is not None
    await _log_in(web, "victor")
    csrf = _csrf((await web.get("/register")).text)
    for r in (
        await web.get(f"/notices/new?pupil={sanne['id']}"),
        await web.post("/notices", data={"csrf": csrf, "pupil": sanne["id"], "group": "zuid-holland"}),
        await web.post("/notices/nt-0123/close", data={"csrf": csrf, "reason": "found"}),
        await web.post("/notices/received/GM0518/nt-0123/confirm", data={"csrf": csrf}),
    ):
        assert r.status_code == 403 and "Uw rol geeft geen toegang" in r.text
        assert "Voorbeeld" not in r.text
    assert await processing_log.entries(services.store) == []


def _bsns(n: int) -> list[str]:
    """`n` numbers the register takes as BSNs."""
    out = [f"{i:09d}" for i in range(111_111_110, 111_112_110) if passes_eleven_test(f"{i:09d}")]
    assert len(out) >= n
    return out[:n]


async def test_a_search_that_finds_too_many_shows_the_first_and_logs_only_those(
    web: httpx.AsyncClient, services: ConnectorServices
) -> None:
    assert services.store is not None
    rows = "".join(
        f"{bsn};Kind{i};;Proefpersoon;2014-05-17;Laan;{i + 1};3011 AA;Rotterdam;GM0599\n"
        for i, bsn in enumerate(_bsns(52))
    )
    report = await register.import_data(services.store, (HEADER + rows).encode())
    assert report.imported == 52, report.errors
    await accounts.add(services.store, "anna", "officer", PASSWORD)
    await _log_in(web, "anna")
    csrf = _csrf((await web.get("/register")).text)
    r = await web.post("/register/search", data={"csrf": csrf, "q": "proefpersoon"})
    assert "Meer dan 50 leerlingen gevonden" in r.text
    assert r.text.count("Proefpersoon</bdi>") == 50
    viewed = [e for e in await processing_log.entries(services.store) if e.activity == "register_viewed"]
    assert len(viewed) == 50


async def test_a_large_file_is_imported_in_the_background_with_a_progress_page(
    web: httpx.AsyncClient, services: ConnectorServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert services.store is not None
    monkeypatch.setattr(register_pages, "SYNC_IMPORT", 100)  # every file here counts as large
    await accounts.add(services.store, "anna", "officer", PASSWORD)
    await accounts.add(services.store, "bert", "officer", PASSWORD)
    await _log_in(web, "anna")
    csrf = _csrf((await web.get("/register")).text)
    r = await _upload(web, HEADER + SANNE + BAD + YUSUF, csrf)
    assert r.status_code == 303 and "/register/import/" in r.headers["location"]
    job_page = r.headers["location"]
    for _ in range(100):
        r = await web.get(job_page)
        if "rij(en) geweigerd" in r.text:
            break
        assert (
            r.status_code == 200
            and '<progress id="import-bar"' in r.text
            and 'hx-trigger="every 1s"' in r.text
        )
        await asyncio.sleep(0.05)
    assert r.status_code == 422 and "2 nieuw, 0 vervangen, 1 rij(en) geweigerd." in r.text
    assert "11-test" in r.text and "hx-trigger" not in r.text  # done: no more polling
    assert await register.count(services.store) == 2
    # Only the one who started it sees its report.
    await web.post("/logout", data={"csrf": csrf})
    await _log_in(web, "bert")
    assert (await web.get(job_page)).status_code == 404


async def test_a_record_without_its_optional_fields_is_shown_not_an_error(
    web: httpx.AsyncClient, services: ConnectorServices
) -> None:
    """A register record whose address has no `house_letter` (nor the other optional keys: a
    dossier accepted before its optional fields were written out, or entered as
    `register.enter` takes it) is shown, not a server error; an addition is shown after the
    number."""
    assert services.store is not None
    store = services.store
    await register.enter(
        store,
        {
            "bsn": "111222333",
            "given_names": "Sanne",
            "family_name": "Voorbeeld",
            "birth_date": "2014-05-17",
            "address": {
                "street": "Proefstraat",
                "house_number": 1,
                "postcode": "3011AA",
                "city": "Rotterdam",
                "municipality": "GM0599",
            },
        },
    )
    await register.enter(
        store,
        {
            "bsn": "123456782",
            "given_names": "Yusuf",
            "family_name": "Testmans",
            "birth_date": "2013-01-02",
            "address": {
                "street": "Kade",
                "house_number": 12,
                "house_number_addition": "2",
                "postcode": "3012BB",
                "city": "Rotterdam",
                "municipality": "GM0599",
            },
            "school": {"brin": "12AB", "name": "Basisschool De Proeftuin", "level": "po"},
        },
    )
    await accounts.add(store, "anna", "officer", PASSWORD)
    await accounts.add(store, "victor", "viewer", PASSWORD)
    for user in ("anna", "victor"):
        await _log_in(web, user)
        page = await web.get("/register")
        for query, shown in (
            ("voorbeeld", ["Sanne Voorbeeld", "Proefstraat 1</bdi>, 3011AA"]),
            ("testmans", ["Yusuf Testmans", "Kade 12-2</bdi>, 3012BB", "Basisschool De Proeftuin"]),
            ("2014-05-17", ["Sanne Voorbeeld"]),
        ):
            r = await web.post("/register/search", data={"csrf": _csrf(page.text), "q": query})
            assert r.status_code == 200, r.text
            for text in shown:
                assert text in r.text, (text, r.text)
        await web.post("/logout", data={"csrf": _csrf(page.text)})
