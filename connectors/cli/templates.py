"""`inbeeld-connector templates ...` (publish, withdraw, follow, unfollow, following, import,
list, diff) and `... letter ...` (render, batch).

A letter about a pupil names him: `letter render --bsn-stdin` (or `--pupil`, a hidden prompt),
or a `bsn` column in `letter batch`'s CSV; never a BSN on the command line. Each such letter
is a record in the processing log (`connectors.processing_log.letter_rendered`), listed in the
pupil's access report; a letter that names no pupil is in nobody's report.

Received templates come in through `inbeeld-connector run`, from the publishers this tenant
follows on the hub (`templates follow ingrado`) and its `[templates]` section accepts.
`publish` and `withdraw` wait for the hub's verdict (`--no-wait` skips it); `publish` says
how many subscribers it reached and warns when none follow you.
"""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable

from connectors.cli.options import BsnStdinOpt, read_bsn
from connectors.cli.options import ConfigOpt as _ConfigOpt
from connectors.cli.verdicts import TimeoutOpt, Waiting, WaitOpt, report, verdict_for
from connectors.verdict import DEFAULT_TIMEOUT
from schemas.processing_log import ADDRESSEES

if TYPE_CHECKING:
    from connectors.config import ConnectorConfig
    from connectors.letters import Letterhead
    from connectors.store import LocalStore
    from connectors.templates import CatalogueEntry, Format, RenderedFile, TemplateCatalogue, TemplateOutcome
    from connectors.verdict import Verdict
    from schemas.envelope import CloudEvent

__all__ = ["letter_app", "templates_app"]

templates_app = typer.Typer(
    help="Letter templates: publish, withdraw, follow a publisher, list.", no_args_is_help=True
)
letter_app = typer.Typer(help="Render letters from the local template catalogue.", no_args_is_help=True)
_console = Console()
_err = Console(stderr=True)


def _say(console: Console, text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _load_config(path: Path, *, signing: bool = False) -> ConnectorConfig:
    from connectors.config import ConfigError, load_config

    try:
        cfg = load_config(path)
        # Only publishing talks to the hub: rendering letters needs no hub token.
        token = cfg.hub.resolved_token() if signing and cfg.hub is not None else None
    except ConfigError as exc:
        _say(_err, "config error: " + exc.message.replace("\n", "\nconfig error: "))
        raise typer.Exit(2) from None
    if signing and (cfg.keystore is None or cfg.hub is None or token is None):
        _say(_err, "config error: publishing signs: configure [keystore] and [hub] (with a token)")
        raise typer.Exit(2)
    return cfg


def _run(coro: Any) -> Any:
    import asyncio

    from connectors.client import ConnectorError
    from schemas.errors import InbeeldError

    try:
        return asyncio.run(coro)
    except (InbeeldError, ConnectorError) as exc:
        field = f" ({exc.field})" if exc.field else ""
        _say(_err, f"error{field}: {exc.message}")
        raise typer.Exit(1) from None


async def _with_publisher(
    cfg: ConnectorConfig, action: Any, waiting: Waiting
) -> tuple[CloudEvent, Verdict | None, list[str] | None]:
    """Send what `action(connector, sealer)` builds; the event, the hub's verdict (None: not
    waited for) and, once routed, the tenants it reached."""
    from connectors.services import open_services
    from connectors.verdict import recipients

    async with open_services(cfg, hub=True, connector=True, publish_deadline=30) as services:
        sent: CloudEvent = await action(services.connector, services.sealer)
        verdict = await verdict_for(services.hub_api, sent.id, waiting)
        reached = None
        if verdict is not None and verdict.routed:
            assert services.hub_api is not None
            reached = await recipients(services.hub_api, sent.id)
        return sent, verdict, reached


def _reached(reached: list[str] | None) -> str:
    if reached is None:
        return "your subscribers"
    return f"{len(reached)} subscriber{'' if len(reached) == 1 else 's'}"


def _warn_if_nobody(reached: list[str] | None) -> None:
    if reached is not None and not reached:
        _say(
            _err,
            "warning: nobody follows your templates, so nobody received it; a municipality "
            "subscribes with `inbeeld-connector templates follow <your tenant code>`",
        )


@templates_app.command("publish")
def _publish_cmd(
    bundle_dir: Annotated[Path, typer.Argument(help="a bundle folder: manifest.json + <lang>.md")],
    config: _ConfigOpt,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
) -> None:
    """Check a bundle, sign it and send it to your subscribers."""
    from connectors.templates import publish

    cfg = _load_config(config, signing=True)
    waiting = Waiting(wait, timeout)
    event, verdict, reached = _run(_with_publisher(cfg, lambda c, s: publish(c, s, bundle_dir), waiting))
    ref = str(event.subject).replace(":", "@", 1)
    report(
        verdict,
        f"published {ref} to {_reached(reached)} (event {event.id})",
        what=f"publishing {ref}",
        waiting=waiting,
    )
    _warn_if_nobody(reached)


@templates_app.command("withdraw")
def _withdraw_cmd(
    template_id: Annotated[str, typer.Argument(help="the template id, e.g. we-zijn-je-kwijt")],
    version: Annotated[str, typer.Argument(help="the version to withdraw, e.g. 1.0.0")],
    config: _ConfigOpt,
    reason: Annotated[str, typer.Option(help="why, for the subscribers")] = "withdrawn",
    wait: WaitOpt = True,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
) -> None:
    """Tell your subscribers to stop using TEMPLATE_ID@VERSION."""
    from connectors.templates import withdraw

    cfg = _load_config(config, signing=True)
    waiting = Waiting(wait, timeout)
    event, verdict, reached = _run(
        _with_publisher(cfg, lambda c, s: withdraw(c, s, template_id, version, reason), waiting)
    )
    report(
        verdict,
        f"withdrew {template_id}@{version}, told {_reached(reached)} (event {event.id})",
        what=f"withdrawing {template_id}@{version}",
        waiting=waiting,
    )


_PublisherArg = Annotated[
    str, typer.Argument(help="the publisher's tenant code, e.g. ingrado (`*`: every publisher)")
]


async def _hub_call(cfg: ConnectorConfig, method: str, path: str) -> Any:
    # Subscriptions are the hub's: no keystore, store or broker needed.
    from connectors.services import open_services

    async with open_services(cfg, keystore=False, hub=True) as services:
        assert services.hub_api is not None
        return await services.hub_api.request(method, path)


def _hub_config(path: Path) -> ConnectorConfig:
    from connectors.config import ConfigError, load_config

    try:
        cfg = load_config(path)
        token = cfg.hub.resolved_token() if cfg.hub is not None else None
    except ConfigError as exc:
        _say(_err, "config error: " + exc.message.replace("\n", "\nconfig error: "))
        raise typer.Exit(2) from None
    if token is None:
        _say(_err, "config error: subscriptions are the hub's: configure [hub] (with a token)")
        raise typer.Exit(2)
    return cfg


def _publisher_path(publisher: str) -> str:
    return "/subscriptions/" + quote(publisher, safe="")


def _show_following(publishers: list[str]) -> None:
    _say(_console, "following: " + (", ".join(publishers) if publishers else "nobody"))


@templates_app.command("follow")
def _follow_cmd(publisher: _PublisherArg, config: _ConfigOpt) -> None:
    """Receive PUBLISHER's templates from now on (the hub delivers its published and
    withdrawn templates; `[templates]` decides which publishers the catalogue accepts)."""
    cfg = _hub_config(config)
    answer = _run(_hub_call(cfg, "PUT", _publisher_path(publisher)))
    _say(_console, f"following {publisher}")
    _show_following(list(answer.get("publishers", [])))


@templates_app.command("unfollow")
def _unfollow_cmd(publisher: _PublisherArg, config: _ConfigOpt) -> None:
    """Stop receiving PUBLISHER's templates (those held stay in the catalogue)."""
    cfg = _hub_config(config)
    answer = _run(_hub_call(cfg, "DELETE", _publisher_path(publisher)))
    _say(_console, f"no longer following {publisher}")
    _show_following(list(answer.get("publishers", [])))


@templates_app.command("following")
def _following_cmd(config: _ConfigOpt) -> None:
    """The publishers you follow, and who follows your templates."""
    from connectors.services import open_services

    cfg = _hub_config(config)

    async def main() -> tuple[list[str], list[str]]:
        async with open_services(cfg, keystore=False, hub=True) as services:
            assert services.hub_api is not None
            mine = await services.hub_api.get("/subscriptions")
            theirs = await services.hub_api.get("/subscribers")
            return list(mine.get("publishers", [])), list(theirs.get("subscribers", []))

    publishers, subscribers = _run(main())
    _show_following(publishers)
    _say(_console, "followed by: " + (", ".join(subscribers) if subscribers else "nobody"))


async def _catalogue_call(cfg: ConnectorConfig, call: Any) -> Any:
    # The catalogue holds no personal data: it opens without unlocking the keystore.
    from connectors.services import open_services

    async with open_services(cfg, keystore=False, store=True) as services:
        return await call(services.catalogue())


@templates_app.command("import")
def _import_cmd(
    bundle_dir: Annotated[Path, typer.Argument(help="a bundle folder: manifest.json + <lang>.md")],
    config: _ConfigOpt,
) -> None:
    """Put a bundle from a folder into the local catalogue, through the publisher's checks
    (for letters of your own, or a bundle handed over outside the hub)."""
    from connectors.letters import load_bundle
    from schemas.errors import InbeeldError

    cfg = _load_config(config)
    try:
        bundle = load_bundle(bundle_dir)
    except InbeeldError as exc:
        _say(_err, f"error{f' ({exc.field})' if exc.field else ''}: {exc.message}")
        raise typer.Exit(1) from None
    outcome: TemplateOutcome = _run(_catalogue_call(cfg, lambda cat: cat.import_bundle(bundle)))
    verb = "already held" if outcome.kind == "duplicate" else "imported"
    _say(_console, f"{verb} {outcome.ref} (publisher {bundle.publisher})")


@templates_app.command("list")
def _list_cmd(config: _ConfigOpt) -> None:
    """The templates this connector holds: every version, withdrawn ones retired."""
    cfg = _load_config(config)
    entries: list[CatalogueEntry] = _run(_catalogue_call(cfg, lambda cat: cat.entries()))
    table = RichTable("template", "version", "publisher", "status", "languages", "title")
    for e in entries:
        reason = e.refused_reason or e.withdraw_reason
        status = e.status if reason is None else f"{e.status}: {reason}"
        table.add_row(e.template_id, e.version, e.publisher, status, " ".join(e.languages), e.title)
    _console.print(table)


@templates_app.command("diff")
def _diff_cmd(
    template_id: Annotated[str, typer.Argument(help="template id, e.g. we-zijn-je-kwijt")],
    config: _ConfigOpt,
    old: Annotated[
        str | None, typer.Option("--from", help="the older version; default the one used before the newest")
    ] = None,
    new: Annotated[str | None, typer.Option("--to", help="the newer version; default the one in use")] = None,
) -> None:
    """What a new version of a template changed: title, placeholders and each language's
    subject and body, as a unified diff against the version used before it."""
    from connectors.letters import bundle_diff

    cfg = _load_config(config)
    before, after = _run(_catalogue_call(cfg, lambda cat: cat.versions_to_compare(template_id, old, new)))
    text = bundle_diff(before, after)
    _say(_console, text or f"{template_id}@{before.version} and @{after.version} have the same text")


_TemplateOpt = Annotated[str, typer.Option("--template", "-t", help="template id, e.g. we-zijn-je-kwijt")]
_VersionOpt = Annotated[str | None, typer.Option(help="a version; default the newest not withdrawn")]
_BilingualOpt = Annotated[bool, typer.Option(help="Dutch first, then the chosen language")]
_OrgOpt = Annotated[str | None, typer.Option("--org", help="letterhead: your organisation's name")]
_DeptOpt = Annotated[str | None, typer.Option("--department", help="letterhead: department")]
_AddrOpt = Annotated[
    list[str] | None, typer.Option("--address", help="letterhead: a return-address line (repeat)")
]
_PhoneOpt = Annotated[str | None, typer.Option("--phone", help="letterhead: phone")]
_EmailOpt = Annotated[str | None, typer.Option("--email", help="letterhead: e-mail")]
_WebOpt = Annotated[str | None, typer.Option("--website", help="letterhead: website")]
_RecipientOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--recipient", help="the addressee's address, one line per option, as the envelope window shows it"
    ),
]
_DateOpt = Annotated[
    str | None, typer.Option("--date", help="the letter's date, YYYY-MM-DD (default: today)")
]
_PupilOpt = Annotated[
    bool,
    typer.Option(
        "--pupil", help="the letter is about a pupil: ask for the BSN (hidden); logged for the access report"
    ),
]
_AddresseeOpt = Annotated[
    str | None,
    typer.Option(
        "--addressee",
        help="to whom the letter about the pupil is written: " + ", ".join(ADDRESSEES),
    ),
]


def _addressee(given: str | None) -> str | None:
    if given is not None and given not in ADDRESSEES:
        _say(_err, f"--addressee is one of {', '.join(ADDRESSEES)}")
        raise typer.Exit(2)
    return given


def _needs_keystore(cfg: ConnectorConfig) -> None:
    """A letter about a pupil is logged with the pupil encrypted: the keystore must be there."""
    if cfg.keystore is None:
        _say(_err, "config error: a letter about a pupil is logged encrypted: configure [keystore]")
        raise typer.Exit(2)


async def _about_pupils(cfg: ConnectorConfig, call: Any) -> Any:
    """`call(catalogue, store)` with the keystore unlocked: it logs letters about pupils."""
    from connectors.services import open_services

    async with open_services(cfg, keystore=True, store=True) as services:
        assert services.store is not None
        return await call(services.catalogue(), services.store)


def _letter_date(given: str | None) -> date | None:
    if given is None:
        return None
    try:
        return date.fromisoformat(given)
    except ValueError:
        _say(_err, f"--date must be a date as YYYY-MM-DD, not {given!r}")
        raise typer.Exit(2) from None


def _letterhead(
    cfg: Any,
    org: str | None,
    department: str | None,
    address: list[str] | None,
    phone: str | None,
    email: str | None,
    website: str | None,
) -> Letterhead:
    from connectors.letters import Letterhead

    configured = getattr(cfg, "letterhead", None)  # a [letterhead] section, if the config has one
    if configured is not None and org is None:
        return Letterhead(
            name=configured.name,
            return_address=tuple(getattr(configured, "return_address", ()) or ()),
            department=getattr(configured, "department", None),
            phone=getattr(configured, "phone", None),
            email=getattr(configured, "email", None),
            website=getattr(configured, "website", None),
            visiting_address=tuple(getattr(configured, "visiting_address", ()) or ()),
            logo=getattr(configured, "logo", None),
        )
    return Letterhead(
        name=org or cfg.tenant,
        return_address=tuple(address or ()),
        department=department,
        phone=phone,
        email=email,
        website=website,
    )


def _format_of(path: Path, given: str | None) -> Format:
    fmt = given or ("html" if path.suffix.lower() in (".html", ".htm") else "pdf")
    if fmt not in ("pdf", "html"):
        _say(_err, "--format is pdf or html")
        raise typer.Exit(2)
    return fmt  # type: ignore[return-value]


@letter_app.command("render")
def _render_cmd(
    config: _ConfigOpt,
    template: _TemplateOpt,
    lang: Annotated[str, typer.Option(help="nl, en, pl, tr, ar or bg")],
    data: Annotated[Path, typer.Option(help="a JSON object: placeholder name -> value")],
    output: Annotated[Path, typer.Option("--output", "-o", help="letter.pdf or letter.html")],
    version: _VersionOpt = None,
    bilingual: _BilingualOpt = False,
    fmt: Annotated[str | None, typer.Option("--format", help="pdf or html (default: from -o)")] = None,
    org: _OrgOpt = None,
    department: _DeptOpt = None,
    address: _AddrOpt = None,
    phone: _PhoneOpt = None,
    email: _EmailOpt = None,
    website: _WebOpt = None,
    recipient: _RecipientOpt = None,
    letter_date: _DateOpt = None,
    bsn_stdin: BsnStdinOpt = False,
    pupil: _PupilOpt = False,
    addressee: _AddresseeOpt = None,
) -> None:
    """Render one letter from the local catalogue. A letter about a pupil names him with
    --bsn-stdin (or --pupil: a hidden prompt) and says to whom it is written (--addressee):
    it is then in the processing log and the pupil's access report."""
    from schemas import nesting
    from schemas.errors import TooDeep

    cfg = _load_config(config)
    kind_of_addressee = _addressee(addressee)
    about = bsn_stdin or pupil
    if kind_of_addressee is not None and not about:
        _say(_err, "--addressee is for a letter about a pupil: name him with --bsn-stdin or --pupil")
        raise typer.Exit(2)
    if about:
        _needs_keystore(cfg)
    try:
        values = nesting.loads(data.read_text("utf-8"), what=str(data))
    except (OSError, ValueError):
        _say(_err, f"{data} is not a readable JSON file")
        raise typer.Exit(1) from None
    except TooDeep as exc:
        _say(_err, exc.message)
        raise typer.Exit(1) from None
    if not isinstance(values, dict):
        _say(_err, f"{data} must hold a JSON object of placeholder values")
        raise typer.Exit(1)
    head = _letterhead(cfg, org, department, address, phone, email, website)
    kind = _format_of(output, fmt)
    when = _letter_date(letter_date)

    bsn = read_bsn(bsn_stdin) if about else None
    lines = tuple(recipient or ())

    async def render(cat: TemplateCatalogue) -> RenderedFile:
        rendered = await cat.render_letter(
            template,
            version=version,
            lang=lang,
            values=values,
            letterhead=head,
            fmt=kind,
            bilingual=bilingual,
            recipient=lines,
            letter_date=when,
        )
        output.write_bytes(rendered.content)
        return rendered

    async def render_about(cat: TemplateCatalogue, store: LocalStore) -> RenderedFile:
        from connectors.processing_log import letter_rendered

        assert bsn is not None
        rendered = await render(cat)
        bundle = rendered.letter
        await letter_rendered(
            store,
            bsn,
            template_id=bundle.template_id,
            version=bundle.version,
            languages=tuple(bundle.languages),
            addressee=kind_of_addressee,
            addressed=bool(lines),
        )
        return rendered

    try:
        rendered: RenderedFile = _run(
            _about_pupils(cfg, render_about) if bsn is not None else _catalogue_call(cfg, render)
        )
    except OSError as exc:
        _say(_err, f"cannot write {output}: {exc.strerror or exc}")
        raise typer.Exit(1) from None
    logged = "; logged for the pupil's access report" if bsn is not None else ""
    _say(_console, f"wrote {output} ({rendered.ref}, {'+'.join(rendered.letter.languages)}){logged}")


_RESERVED = ("lang", "file", "recipient", "bsn", "addressee")
_JobsOpt = Annotated[
    int | None,
    typer.Option(
        "--jobs", "-j", min=1, help="processes rendering letters (default: 1 per CPU, 100 rows each at least)"
    ),
]


def _file_name(n: int, row: dict[str, str], default_lang: str) -> str:
    row_lang = (row.get("lang") or default_lang).strip()
    return Path((row.get("file") or "").strip() or f"{n:05d}-{row_lang}").name


@letter_app.command("batch")
def _batch_cmd(
    config: _ConfigOpt,
    template: _TemplateOpt,
    csv_path: Annotated[Path, typer.Option("--csv", help="a header row of placeholder names (+ lang, file)")],
    out: Annotated[Path, typer.Option("--out", help="the folder to write the letters to")],
    lang: Annotated[str, typer.Option(help="the language where a row has no `lang` column")] = "nl",
    version: _VersionOpt = None,
    bilingual: _BilingualOpt = False,
    fmt: Annotated[str, typer.Option("--format", help="pdf or html")] = "pdf",
    org: _OrgOpt = None,
    department: _DeptOpt = None,
    address: _AddrOpt = None,
    phone: _PhoneOpt = None,
    email: _EmailOpt = None,
    website: _WebOpt = None,
    letter_date: _DateOpt = None,
    jobs: _JobsOpt = None,
) -> None:
    """Render one letter per CSV row. A row's `lang` column picks its language, its `file`
    column its file name (default: the row number), its `recipient` column the address (lines
    separated by `|`); blank cells are values not given. A `bsn` column names the pupil a
    row's letter is about (and an `addressee` column to whom it is written: parents, pupil,
    pupil_and_parents, school or other): that letter is then in the processing log and the
    pupil's access report. Letters are rendered by `--jobs` processes and written in row order."""
    from connectors import metrics
    from connectors.letters.batch import BatchRow, LetterBatch, default_jobs, render_batch
    from connectors.processing_log import letter_rendered
    from schemas.errors import InbeeldError
    from schemas.fields import passes_eleven_test

    cfg = _load_config(config)
    head = _letterhead(cfg, org, department, address, phone, email, website)
    kind = _format_of(Path(f"x.{fmt}"), fmt)
    when = _letter_date(letter_date)
    try:
        with csv_path.open(encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, csv.Error, UnicodeDecodeError):
        _say(_err, f"{csv_path} is not a readable UTF-8 CSV file")
        raise typer.Exit(1) from None
    names = [_file_name(n, row, lang) for n, row in enumerate(rows, 1)]
    doubled = sorted({name for name in names if names.count(name) > 1})
    if doubled:
        _say(
            _err,
            f"{csv_path}: rows share a file name, so one letter would overwrite another: "
            + ", ".join(doubled),
        )
        raise typer.Exit(1)
    failures: list[tuple[int, str, str]] = []
    # The pupil each row's letter is about (None: none named); a row whose BSN or addressee
    # is not one fails on its own, its value never repeated.
    pupils: list[str | None] = []
    addressees: list[str | None] = []
    for n, row in enumerate(rows, 1):
        bsn = (row.get("bsn") or "").strip() or None
        addressee = (row.get("addressee") or "").strip() or None
        if bsn is not None and not passes_eleven_test(bsn):
            failures.append((n, "bsn", "not 9 digits passing the 11-test"))
        elif addressee is not None and addressee not in ADDRESSEES:
            failures.append((n, "addressee", "one of " + ", ".join(ADDRESSEES)))
        elif addressee is not None and bsn is None:
            failures.append((n, "addressee", "is for a letter about a pupil: name him in the row's bsn"))
        pupils.append(bsn)
        addressees.append(addressee)
    refused = {n for n, _, _ in failures}
    if any(pupils):
        _needs_keystore(cfg)
    out.mkdir(parents=True, exist_ok=True)

    batch_rows = [
        BatchRow(
            (row.get("lang") or lang).strip(),
            {k: (v if v and v.strip() else None) for k, v in row.items() if k not in (None, *_RESERVED)},
            tuple(x.strip() for x in (row.get("recipient") or "").split("|") if x.strip()),
        )
        for row in rows
    ]

    async def main(cat: TemplateCatalogue, store: LocalStore | None = None) -> int:
        written = 0
        with Progress(
            TextColumn("rendering"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=_console
        ) as progress:
            task = progress.add_task("letters", total=len(rows))
            try:
                bundle = await cat.bundle(template, version)
            except InbeeldError as exc:  # every row would fail the same way
                failures.extend(
                    (n, exc.field or "", exc.message) for n in range(1, len(rows) + 1) if n not in refused
                )
                progress.advance(task, len(rows))
                return 0
            batch = LetterBatch(bundle, head, kind, bilingual=bilingual, letter_date=when)
            progress.advance(task, len(refused))  # refused rows are not rendered at all
            todo = [n for n in range(1, len(rows) + 1) if n not in refused]
            wanted = [batch_rows[n - 1] for n in todo]
            results = render_batch(batch, wanted, jobs=jobs or default_jobs(len(wanted)))
            for n, result in zip(todo, results, strict=True):
                if result.failure is not None:
                    failures.append((n, result.failure.field or "", result.failure.message))
                else:
                    assert result.content is not None
                    (out / f"{names[n - 1]}.{kind}").write_bytes(result.content)
                    metrics.letters_rendered.labels(format=kind).inc()
                    written += 1
                    bsn = pupils[n - 1]
                    if bsn is not None and store is not None:
                        await letter_rendered(
                            store,
                            bsn,
                            template_id=bundle.template_id,
                            version=bundle.version,
                            languages=result.languages,
                            addressee=addressees[n - 1],
                            addressed=bool(batch_rows[n - 1].recipient),
                        )
                progress.advance(task)
        return written

    if any(pupils):
        written = _run(_about_pupils(cfg, main))
    else:
        written = _run(_catalogue_call(cfg, main))
    failures.sort()
    _say(_console, f"wrote {written} letters to {out}; {len(failures)} rows failed")
    if failures:
        table = RichTable("row", "field", "why", title="rows not rendered")
        for n, field, why in failures:
            table.add_row(str(n), field, why)
        _console.print(table)
        raise typer.Exit(1)
