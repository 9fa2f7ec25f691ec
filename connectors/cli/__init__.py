"""`inbeeld-connector`: what a municipality's IT team runs.

    inbeeld-connector init [PATH]                       write a commented example config
    inbeeld-connector check --config FILE               validate it, try broker, hub and keys
    inbeeld-connector run --config FILE                 the long-running connector
    inbeeld-connector register import FILE.csv --config FILE
    inbeeld-connector register shred --config FILE --yes
    inbeeld-connector notice|transfer|templates|letter ...   (see their modules)
    inbeeld-connector outbox list|retry|drop --config FILE   webhook events parked or given up
    inbeeld-connector sink show FILE --config FILE      read back a folder-sink file (encrypted)
    inbeeld-connector serve --config FILE [--host H --port P]   the officers' web workspace
    inbeeld-connector user add NAME --role officer --config FILE [--password-stdin]

Exit codes: 0 ok, 1 a check or row failed or the hub refused what was sent (its reason and
detail on stderr), 2 the configuration is wrong (one line naming the field), 3 sent but the
hub gave no verdict within `--timeout` (`connectors.cli.verdicts`). The commands are thin
functions over `connectors.services`; this module only assembles them.
"""

from __future__ import annotations

import typer

from connectors.cli.check import check
from connectors.cli.lifecycle import init, register_app, register_shred, run
from connectors.cli.notices import notice_app
from connectors.cli.outbox import outbox_app
from connectors.cli.sinks import sink_app
from connectors.cli.templates import letter_app, templates_app
from connectors.cli.transfers import transfer_app
from connectors.cli.workspace import serve, user_app

__all__ = ["app", "main"]

app = typer.Typer(help="The Inbeeld connector.", no_args_is_help=True, add_completion=False)
app.add_typer(register_app, name="register")
app.add_typer(notice_app, name="notice")
app.add_typer(transfer_app, name="transfer")
app.add_typer(templates_app, name="templates")
app.add_typer(letter_app, name="letter")
app.add_typer(outbox_app, name="outbox")
app.add_typer(sink_app, name="sink")
app.add_typer(user_app, name="user")
app.command()(init)
app.command()(check)
app.command()(run)
app.command()(serve)
# The retention command of the design: destroy the at-rest key; what it protected is gone.
app.command("shred", help="Crypto-shred the stored personal data (the register): destroy its key.")(
    register_shred
)


def main() -> None:
    app()
