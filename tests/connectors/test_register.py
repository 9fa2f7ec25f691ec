"""The local pupil register: CSV import with a report of bad rows, encryption at rest,
crypto-shredding, and the `register import` command."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectors.at_rest import decrypt_at_rest, unwrap_data_key
from connectors.cli import app
from connectors.keystore import Keystore
from connectors.register import count, import_csv, lookup, shred
from connectors.store import LocalStore
from schemas.errors import CryptoError

PASS = "register test passphrase"
HEADER = (
    "bsn,given_names,family_name_prefix,family_name,birth_date,street,house_number,house_letter,"
    "house_number_addition,postcode,city,municipality,school_brin,school_name,school_level"
)


def bsn(seed: int) -> str:
    """A BSN that passes the 11-test."""
    for n in range(seed, seed + 1000):
        digits = f"{n:08d}"
        check = sum(int(d) * w for d, w in zip(digits, range(9, 1, -1), strict=True)) % 11
        if check <= 9 and digits[0] != "0":
            return digits + str(check)
    raise AssertionError


GOOD1, GOOD2 = bsn(12345670), bsn(23456780)
ROWS = [
    f"{GOOD1},Fictief,van der,Voorbeeld,2012-03-04,Spoorstraat,1,,,2511AB,Den Haag,GM0518,"
    "12AB,OBS De Proef,po",
    "123456789,Anna,,Jansen,2011-01-01,Kerkweg,2,,,2511AB,Den Haag,GM0518,,,",  # fails the 11-test
    f"{bsn(34567890)},Piet,,Pietersen,2011-01-01,Kerkweg,3,,,25AB11,Den Haag,GM0518,,,",
    f"{bsn(45678900)},Kees,,Kok,2099-01-01,Kerkweg,4,,,2511AB,Den Haag,GM0518,,,",
    f"{bsn(56789010)},Mila,,,2012-01-01,Kerkweg,5,,,2511AB,Den Haag,GM0518,,,",
    f"{bsn(67890120)},Noor,,Bakker,2012-01-01,Kerkweg,6,,,2511AB,Den Haag,GM0518,34CD,,",
    f"{GOOD1},Dubbel,,Voorbeeld,2012-03-04,Spoorstraat,1,,,2511AB,Den Haag,GM0518,,,",
    f"{GOOD2},Sanne,,de Vries,2013-05-06,Laan,12,a,bis,3011 AA,Rotterdam,GM0599,,,",
    f"{bsn(78901230)},Teun,,Visser,2012-01-01,Kerkweg,x,,,2511AB,Den Haag,GM0518,,,",
]
EXPECTED = {  # line in the file -> field
    3: "bsn",
    4: "postcode",
    5: "birth_date",
    6: "family_name",
    7: "school_name",
    8: "bsn",
    10: "house_number",
}


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "pupils.csv"
    path.write_text(HEADER + "\n" + "\n".join(ROWS) + "\n", encoding="utf-8")
    return path


@pytest.fixture
async def store(tmp_path: Path):
    keystore = Keystore.create(tmp_path / "keystore.json", passphrase=PASS, scrypt_n=2**14)
    s = await LocalStore.open(tmp_path / "connector.db", keystore)
    yield s
    await s.close()


async def test_import_reports_bad_rows_and_keeps_good_ones(store: LocalStore, csv_file: Path) -> None:
    report = await import_csv(store, csv_file)
    assert report.imported == 2 and report.replaced == 0
    assert {e.row: e.field for e in report.errors} == EXPECTED
    why = {e.row: e.why for e in report.errors}
    assert "11-test" in why[3]
    assert "row 2" in why[8]
    assert "school_name is required" in why[7]
    for e in report.errors:  # never the value itself
        assert "123456789" not in e.why and "25AB11" not in e.why and "2099" not in e.why
    record = await lookup(store, GOOD2)
    assert record is not None
    assert record["family_name"] == "de Vries" and record["birth_date"] == "2013-05-06"
    assert record["address"]["postcode"] == "3011AA" and record["address"]["house_letter"] == "a"
    assert (await lookup(store, GOOD1))["school"] == {"brin": "12AB", "name": "OBS De Proef", "level": "po"}
    # importing again replaces, not duplicates
    again = await import_csv(store, csv_file)
    assert again.imported == 0 and again.replaced == 2 and await count(store) == 2


async def test_personal_data_is_encrypted_at_rest_and_shredding_makes_it_unreadable(
    store: LocalStore, csv_file: Path, tmp_path: Path
) -> None:
    await import_csv(store, csv_file)
    await store.engine.dispose()  # flush the WAL into the file
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("connector.db*"))
    for clear in (GOOD1.encode(), GOOD2.encode(), b"Voorbeeld", b"de Vries", b"Spoorstraat", b"2013-05-06"):
        assert clear not in raw
    backup = tmp_path / "backup.db"
    shutil.copy(tmp_path / "connector.db", backup)

    assert await shred(store) == 2
    assert await count(store) == 0 and await lookup(store, GOOD2) is None
    # A back-up made before shredding is no help: its data keys cannot be unwrapped any more.
    rows = sqlite3.connect(backup).execute("select id, wrapped_key, family_name from pupils").fetchall()
    assert len(rows) == 2
    for pupil_id, wrapped, blob in rows:
        with pytest.raises(CryptoError):
            key = unwrap_data_key(store.keystore, wrapped)  # type: ignore[arg-type]
            decrypt_at_rest(key, blob, f"pupils:{pupil_id}:family_name".encode())


async def test_missing_required_column_is_reported_once(store: LocalStore, tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("bsn;given_names;shoe_size\n" + GOOD1 + ";X;42\n")
    report = await import_csv(store, path)
    assert report.imported == 0
    fields = {e.field for e in report.errors}
    assert {"family_name", "birth_date", "postcode", "shoe_size"} <= fields
    assert all(e.row == 1 for e in report.errors)


def test_register_import_command(tmp_path: Path, csv_file: Path, monkeypatch) -> None:
    monkeypatch.setenv("TEST_REGISTER_PASS", PASS)
    config = tmp_path / "c.toml"
    config.write_text(
        'tenant = "GM0518"\n'
        '[broker]\nurl = "amqp://127.0.0.1:5672/x"\nusername = "u"\npassword = "p"\n'
        '[keystore]\npath = "ks.json"\npassphrase_env = "TEST_REGISTER_PASS"\n'
        '[store]\npath = "store.db"\n'
    )
    runner = CliRunner()
    result = runner.invoke(app, ["register", "import", str(csv_file), "--config", str(config)])
    assert result.exit_code == 1, result.output  # some rows were bad
    assert "imported 2 new" in result.output and "7 bad rows" in result.output
    for line, field in EXPECTED.items():
        assert any(f"{line}" in row and field in row for row in result.output.splitlines())
    assert "123456789" not in result.output
    result = runner.invoke(app, ["register", "shred", "--config", str(config), "--yes"])
    assert result.exit_code == 0 and "shredded 2" in result.output
