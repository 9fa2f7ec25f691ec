"""`inbeeld operator add NAME`: a console login from the command line, the password read from
standard input for scripts, refused with one line when the name or password does not do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from hub.store.db import Database
from hub.store.models import AuditRecord, OperatorLogin


def operator_add(db_url: str, name: str, password: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INBEELD_DATABASE_URL": db_url, "INBEELD_LOG_FORMAT": "json", "COLUMNS": "200"}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from hub.cli import main; main()",
            "operator",
            "add",
            name,
            "--password-stdin",
        ],
        env=env,
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_operator_add_stores_an_argon2_hash_and_refuses_bad_input(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    done = operator_add(url, "piet", "een wachtwoord van lengte")
    assert done.returncode == 0 and "console login piet added" in done.stdout, done.stderr
    assert "een wachtwoord van lengte" not in done.stdout + done.stderr

    short = operator_add(url, "kees", "kort")
    assert short.returncode == 1 and "a password is 12 to 1024 characters long" in short.stderr
    bad_name = operator_add(url, "Kees Jansen", "een wachtwoord van lengte")
    assert bad_name.returncode == 1 and "a login name is 2-40 characters" in bad_name.stderr
    again = operator_add(url, "piet", "een ander wachtwoord!")
    assert again.returncode == 1 and "already a login named piet" in again.stderr
    assert "Traceback" not in short.stderr + bad_name.stderr + again.stderr

    db = Database(url)
    try:
        async with db.session() as s:
            logins = list(await s.scalars(select(OperatorLogin)))
            records = list(await s.scalars(select(AuditRecord)))
    finally:
        await db.close()
    assert [(x.name, x.password_hash[:10]) for x in logins] == [("piet", "$argon2id$")]
    assert [(r.activity, r.subject_ref, r.outcome) for r in records] == [
        ("add console login", "login:piet", "added")
    ]
