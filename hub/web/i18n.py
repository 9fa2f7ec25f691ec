"""UI text in Dutch first, English available: one catalogue, the language of a request, and
dates shown in Europe/Amsterdam time.

The language is, in order: a `lang` query parameter (remembered in a cookie), that cookie, the
browser's Accept-Language, Dutch."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

from starlette.requests import Request

LANGUAGES = ("nl", "en")
DEFAULT = "nl"
COOKIE = "inbeeld_lang"
ZONE = ZoneInfo("Europe/Amsterdam")

Translate = Callable[..., str]

CATALOGUE: Mapping[str, Mapping[str, str]] = {
    "nl": {
        "app.name": "Inbeeld beheer",
        "skip": "Naar de inhoud",
        "nav.label": "Hoofdmenu",
        "nav.overview": "Overzicht",
        "nav.dead_letters": "Onbestelbare berichten",
        "nav.tenants": "Deelnemers",
        "nav.audit": "Auditlog",
        "nav.logout": "Uitloggen",
        "lang.switch": "English",
        "lang.switch_label": "Switch to English",
        "logged_in_as": "Ingelogd als {name}",
        "login.title": "Inloggen",
        "login.intro": "Log in met de gegevens die u van de beheerder van deze hub kreeg.",
        "login.name": "Naam",
        "login.password": "Wachtwoord",
        "login.submit": "Inloggen",
        "login.refused": "Naam of wachtwoord is onjuist.",
        "login.locked": "Te veel mislukte pogingen. Probeer het opnieuw na {time}.",
        "login.expired": "Uw sessie is verlopen. Log opnieuw in.",
        "login.logged_out": "U bent uitgelogd.",
        "overview.title": "Overzicht",
        "overview.live": "Dit overzicht ververst zichzelf elke 10 seconden.",
        "overview.dead_letters": "Onbestelbare berichten die wachten",
        "overview.tenants": "Deelnemers",
        "overview.events": "Berichten",
        "overview.period": "Periode",
        "overview.last_hour": "Afgelopen uur",
        "overview.last_day": "Afgelopen 24 uur",
        "overview.routed": "Doorgestuurd",
        "overview.rejected": "Geweigerd",
        "overview.received": "Ontvangen, nog niet afgehandeld",
        "overview.chain": "Controle van de auditketen",
        "overview.rejected_by_reason": "Geweigerd per reden, afgelopen 24 uur",
        "overview.none_rejected": "Niets geweigerd.",
        "overview.reason": "Reden",
        "overview.count": "Aantal",
        "overview.health": "Diensten",
        "overview.database": "Database",
        "overview.broker": "Berichtenbroker",
        "overview.ok": "In orde",
        "overview.chain_ok": "Intact: {records} records, gecontroleerd op {time}.",
        "overview.chain_broken": "GEBROKEN bij record {seq} ({records} records), gecontroleerd op {time}.",
        "overview.updated": "Bijgewerkt op {time}.",
        "dl.title": "Onbestelbare berichten",
        "dl.intro": "Berichten die de hub niet kon doorsturen. Alleen metagegevens; nooit de inhoud.",
        "dl.filter": "Filteren",
        "dl.reason": "Reden",
        "dl.tenant": "Afzender (code)",
        "dl.since": "Ontvangen op of na (datum)",
        "dl.apply": "Toepassen",
        "dl.none": "Geen onbestelbare berichten gevonden.",
        "dl.id": "Nummer",
        "dl.sender": "Afzender",
        "dl.received": "Ontvangen",
        "dl.replayed": "Opnieuw aangeboden",
        "dl.size": "Grootte (bytes)",
        "dl.not_replayed": "Nee",
        "dl.detail_title": "Onbestelbaar bericht {id}",
        "dl.detail": "Toelichting",
        "dl.sha256": "SHA-256 van de inhoud",
        "dl.body_kept": "Inhoud bewaard (nodig om opnieuw aan te bieden)",
        "dl.headers": "Headers",
        "dl.header_name": "Naam",
        "dl.header_value": "Waarde",
        "dl.no_headers": "Geen headers.",
        "dl.replay": "Opnieuw aanbieden aan de router",
        "dl.replay_intro": "De router controleert het bericht opnieuw zoals een nieuw bericht.",
        "dl.replay_done": "Bericht {id} is opnieuw aangeboden aan de router.",
        "dl.replay_failed": "Opnieuw aanbieden lukte niet: {message}",
        "dl.back": "Terug naar de lijst",
        "dl.select": "Kiezen",
        "dl.select_label": "Bericht {id} kiezen",
        "dl.replay_selected": "Gekozen berichten opnieuw aanbieden",
        "dl.replay_all": "Alle getoonde, nog niet aangeboden berichten opnieuw aanbieden",
        "dl.replayed_title": "Opnieuw aangeboden",
        "dl.result": "Resultaat",
        "dl.replay_ok": "Opnieuw aangeboden aan de router",
        "dl.unknown_sender": "onbekend",
        "dl.discarded": "Weggegooid",
        "dl.not_discarded": "Nee",
        "dl.discard": "Weggooien",
        "dl.discard_intro": (
            "Een bericht dat niet meer opnieuw wordt aangeboden, gooit u weg met een reden. "
            "De bewaarde inhoud wordt verwijderd; grootte en SHA-256 blijven."
        ),
        "dl.discard_reason": "Reden (3 tot 200 tekens, geen persoonsgegevens)",
        "dl.discard_done": "Bericht {id} is weggegooid.",
        "dl.discard_failed": "Weggooien lukte niet: {message}",
        "audit.title": "Auditlog",
        "audit.intro": "Wie deed wat, waarmee en met welke uitkomst. Elk record is geketend aan het vorige.",
        "audit.search": "Zoeken",
        "audit.tenant": "Deelnemer (code)",
        "audit.activity": "Handeling",
        "audit.subject": "Onderwerp (bericht-id of verwijzing)",
        "audit.apply": "Zoeken",
        "audit.none": "Geen records gevonden.",
        "audit.seq": "Nummer",
        "audit.time": "Tijd",
        "audit.actor": "Door",
        "audit.sender": "Afzender",
        "audit.recipients": "Ontvangers",
        "audit.outcome": "Uitkomst",
        "audit.verify": "Keten nu controleren",
        "audit.not_verified": "De keten is sinds de start van de hub nog niet gecontroleerd.",
        "yes": "Ja",
        "no": "Nee",
        "tenants.title": "Deelnemers",
        "tenants.code": "Code",
        "tenants.name": "Naam",
        "tenants.kind": "Soort",
        "tenants.state": "Status",
        "tenants.active": "Actief",
        "tenants.suspended": "Geschorst",
        "tenants.inbox_depth": "Berichten in inbox",
        "tenants.action": "Handeling",
        "tenants.suspend": "Schorsen",
        "tenants.reinstate": "Heractiveren",
        "tenants.suspend_label": "{code} schorsen",
        "tenants.reinstate_label": "{code} heractiveren",
        "tenants.suspend_done": "{code} is geschorst: de broker en de API weigeren deze deelnemer nu.",
        "tenants.reinstate_done": "{code} is weer actief.",
        "tenants.confirm_title": "{code} schorsen?",
        "tenants.confirm_text": "{name} ({code}) kan dan geen berichten meer sturen of ontvangen: de "
        "broker sluit zijn verbindingen en de API weigert zijn tokens. Berichten voor deze "
        "deelnemer blijven in zijn inbox staan.",
        "tenants.confirm": "Ja, {code} schorsen",
        "tenants.cancel": "Nee, terug naar de deelnemers",
        "tenants.connector": "Connector",
        "tenants.online": "Verbonden",
        "tenants.offline": "Niet verbonden",
        "tenants.broker_unknown": "De berichtenbroker gaf geen cijfers; de inboxen zijn nu onbekend.",
        "tenants.token": "API-token maken",
        "tenants.token_label": "API-token maken voor {code}",
        "tenants.password": "Brokerwachtwoord vernieuwen",
        "tenants.password_label": "Brokerwachtwoord vernieuwen voor {code}",
        "tenants.password_confirm_title": "Brokerwachtwoord van {code} vernieuwen?",
        "tenants.password_confirm_text": (
            "De connector van {name} ({code}) verliest direct zijn verbinding en kan pas weer "
            "verbinden met het nieuwe wachtwoord."
        ),
        "tenants.password_confirm": "Ja, vernieuwen",
        "secret.title": "Eenmalig getoond",
        "secret.warning": (
            "Dit geheim wordt maar één keer getoond en niet bewaard. Geef het via een veilig "
            "kanaal aan de deelnemer; daarna is het hier niet meer op te vragen."
        ),
        "secret.token": "API-token {id} voor {code}",
        "secret.password": "Brokerwachtwoord voor {code} (gebruiker {user})",
        "secret.closed": "{count} open verbinding(en) gesloten.",
        "tenants.back": "Terug naar de deelnemers",
        "unknown": "onbekend",
        "error.title": "Er ging iets mis",
        "error.400": "Deze aanvraag klopt niet: {message}",
        "error.403": "U heeft geen toegang tot deze pagina.",
        "error.csrf": "Het formulier is verlopen of kwam niet van deze site. Open de pagina opnieuw "
        "en probeer het nog eens.",
        "error.404": "Deze pagina bestaat niet.",
        "error.405": "Deze handeling kan hier niet.",
        "error.414": "Het adres is te lang.",
        "error.413": "Het formulier is te groot.",
        "error.500": "De hub kon deze aanvraag niet afhandelen. Het logboek van de hub zegt waarom.",
        "error.503": "Een dienst van de hub (berichtenbroker of database) is niet bereikbaar.",
        "error.home": "Naar het overzicht",
        "footer": "Inbeeld: de hub bevat geen persoonsgegevens.",
    },
    "en": {
        "app.name": "Inbeeld console",
        "skip": "Skip to content",
        "nav.label": "Main menu",
        "nav.overview": "Overview",
        "nav.dead_letters": "Dead letters",
        "nav.tenants": "Tenants",
        "nav.audit": "Audit log",
        "nav.logout": "Log out",
        "lang.switch": "Nederlands",
        "lang.switch_label": "Naar het Nederlands",
        "logged_in_as": "Logged in as {name}",
        "login.title": "Log in",
        "login.intro": "Log in with the details the operator of this hub gave you.",
        "login.name": "Name",
        "login.password": "Password",
        "login.submit": "Log in",
        "login.refused": "Wrong name or password.",
        "login.locked": "Too many failed attempts. Try again after {time}.",
        "login.expired": "Your session has expired. Please log in again.",
        "login.logged_out": "You have logged out.",
        "overview.title": "Overview",
        "overview.live": "This overview refreshes itself every 10 seconds.",
        "overview.dead_letters": "Dead letters waiting",
        "overview.tenants": "Tenants",
        "overview.events": "Events",
        "overview.period": "Period",
        "overview.last_hour": "Last hour",
        "overview.last_day": "Last 24 hours",
        "overview.routed": "Routed",
        "overview.rejected": "Rejected",
        "overview.received": "Received, not yet handled",
        "overview.chain": "Audit chain verification",
        "overview.rejected_by_reason": "Rejected by reason, last 24 hours",
        "overview.none_rejected": "Nothing rejected.",
        "overview.reason": "Reason",
        "overview.count": "Count",
        "overview.health": "Services",
        "overview.database": "Database",
        "overview.broker": "Message broker",
        "overview.ok": "OK",
        "overview.chain_ok": "Intact: {records} records, verified at {time}.",
        "overview.chain_broken": "BROKEN at record {seq} ({records} records), verified at {time}.",
        "overview.updated": "Updated at {time}.",
        "dl.title": "Dead letters",
        "dl.intro": "Messages the hub could not route. Metadata only; never their content.",
        "dl.filter": "Filter",
        "dl.reason": "Reason",
        "dl.tenant": "Sender (code)",
        "dl.since": "Received on or after (date)",
        "dl.apply": "Apply",
        "dl.none": "No dead letters found.",
        "dl.id": "Number",
        "dl.sender": "Sender",
        "dl.received": "Received",
        "dl.replayed": "Replayed",
        "dl.size": "Size (bytes)",
        "dl.not_replayed": "No",
        "dl.detail_title": "Dead letter {id}",
        "dl.detail": "Detail",
        "dl.sha256": "SHA-256 of the content",
        "dl.body_kept": "Content kept (needed to replay)",
        "dl.headers": "Headers",
        "dl.header_name": "Name",
        "dl.header_value": "Value",
        "dl.no_headers": "No headers.",
        "dl.replay": "Replay to the router",
        "dl.replay_intro": "The router checks the message again, as it checks a fresh one.",
        "dl.replay_done": "Dead letter {id} was sent to the router again.",
        "dl.replay_failed": "The replay did not work: {message}",
        "dl.back": "Back to the list",
        "dl.select": "Select",
        "dl.select_label": "Select dead letter {id}",
        "dl.replay_selected": "Replay the selected dead letters",
        "dl.replay_all": "Replay every dead letter shown that was not replayed yet",
        "dl.replayed_title": "Replayed",
        "dl.result": "Result",
        "dl.replay_ok": "Sent to the router again",
        "dl.unknown_sender": "unknown",
        "dl.discarded": "Discarded",
        "dl.not_discarded": "No",
        "dl.discard": "Discard",
        "dl.discard_intro": (
            "A message that will not be replayed is discarded with a reason. "
            "Its kept content is deleted; size and SHA-256 stay."
        ),
        "dl.discard_reason": "Reason (3 to 200 characters, no personal data)",
        "dl.discard_done": "Message {id} was discarded.",
        "dl.discard_failed": "Discarding failed: {message}",
        "audit.title": "Audit log",
        "audit.intro": "Who did what, to what, with which outcome. Each record is chained to the last.",
        "audit.search": "Search",
        "audit.tenant": "Tenant (code)",
        "audit.activity": "Activity",
        "audit.subject": "Subject (event id or reference)",
        "audit.apply": "Search",
        "audit.none": "No records found.",
        "audit.seq": "Number",
        "audit.time": "Time",
        "audit.actor": "By",
        "audit.sender": "Sender",
        "audit.recipients": "Recipients",
        "audit.outcome": "Outcome",
        "audit.verify": "Verify the chain now",
        "audit.not_verified": "The chain has not been verified since the hub started.",
        "yes": "Yes",
        "no": "No",
        "tenants.title": "Tenants",
        "tenants.code": "Code",
        "tenants.name": "Name",
        "tenants.kind": "Kind",
        "tenants.state": "State",
        "tenants.active": "Active",
        "tenants.suspended": "Suspended",
        "tenants.inbox_depth": "Messages in inbox",
        "tenants.action": "Action",
        "tenants.suspend": "Suspend",
        "tenants.reinstate": "Reinstate",
        "tenants.suspend_label": "Suspend {code}",
        "tenants.reinstate_label": "Reinstate {code}",
        "tenants.suspend_done": "{code} is suspended: the broker and the API refuse this tenant now.",
        "tenants.reinstate_done": "{code} is active again.",
        "tenants.confirm_title": "Suspend {code}?",
        "tenants.confirm_text": "{name} ({code}) will then neither send nor receive: the broker "
        "closes its connections and the API refuses its tokens. Messages for this tenant stay in "
        "its inbox.",
        "tenants.confirm": "Yes, suspend {code}",
        "tenants.cancel": "No, back to the tenants",
        "tenants.connector": "Connector",
        "tenants.online": "Connected",
        "tenants.offline": "Not connected",
        "tenants.broker_unknown": "The message broker gave no figures; the inboxes are unknown now.",
        "tenants.token": "Create API token",
        "tenants.token_label": "Create API token for {code}",
        "tenants.password": "Renew broker password",
        "tenants.password_label": "Renew broker password for {code}",
        "tenants.password_confirm_title": "Renew the broker password of {code}?",
        "tenants.password_confirm_text": (
            "The connector of {name} ({code}) loses its connection at once and can connect again "
            "only with the new password."
        ),
        "tenants.password_confirm": "Yes, renew",
        "secret.title": "Shown once",
        "secret.warning": (
            "This secret is shown once and not stored. Hand it to the tenant over a safe channel; "
            "it cannot be shown here again."
        ),
        "secret.token": "API token {id} for {code}",
        "secret.password": "Broker password for {code} (user {user})",
        "secret.closed": "{count} open connection(s) closed.",
        "tenants.back": "Back to the tenants",
        "unknown": "unknown",
        "error.title": "Something went wrong",
        "error.400": "This request is not valid: {message}",
        "error.403": "You have no access to this page.",
        "error.csrf": "The form has expired or did not come from this site. Open the page again and retry.",
        "error.404": "This page does not exist.",
        "error.405": "This action is not possible here.",
        "error.414": "The address is too long.",
        "error.413": "The form is too large.",
        "error.500": "The hub could not handle this request. The hub's log says why.",
        "error.503": "A service of the hub (message broker or database) cannot be reached.",
        "error.home": "To the overview",
        "footer": "Inbeeld: the hub holds no personal data.",
    },
}


# --- alerts (hub/web/alerts_page.py) ------------------------------------------------------------
_ALERTS: Mapping[str, Mapping[str, str]] = {
    "nl": {
        "nav.alerts": "Meldingen",
        "alerts.title": "Meldingen",
        "alerts.intro": "Wat bij een deelnemer aandacht vraagt. Een melding verdwijnt vanzelf als "
        "de oorzaak weg is; ze gaat ook naar de webhook van de beheerder en naar de deelnemer.",
        "alerts.open": "Open meldingen",
        "alerts.cleared": "Opgeloste meldingen",
        "alerts.none": "Geen open meldingen.",
        "alerts.none_cleared": "Nog geen opgeloste meldingen.",
        "alerts.tenant": "Deelnemer",
        "alerts.kind": "Soort",
        "alerts.detail": "Toelichting",
        "alerts.since": "Sinds",
        "alerts.raised": "Gemeld",
        "alerts.cleared_at": "Opgelost",
        "alerts.action": "Wat te doen",
        "alerts.banner": "{count} open melding(en):",
        "alerts.banner_link": "Naar de meldingen",
        "alerts.kind.inbox_offline": "connector niet verbonden",
        "alerts.kind.inbox_backlog": "berichten blijven liggen",
        "alerts.kind.inbox_full": "inbox vol",
        "alerts.kind.webhook_failing": "webhook van het zaaksysteem faalt",
        "alerts.todo.inbox_offline": "Vraag de deelnemer zijn connector te starten "
        "(inbeeld-connector check, dan run).",
        "alerts.todo.inbox_backlog": "Vraag de deelnemer waarom zijn connector niets afneemt; "
        "kijk in het log van de connector.",
        "alerts.todo.inbox_full": "Afzenders krijgen nu recipient_busy. Laat de connector de "
        "inbox leegmaken, of verhoog INBEELD_INBOX_MAX_LENGTH.",
        "alerts.todo.webhook_failing": "Vraag de deelnemer naar zijn zaaksysteem; met "
        "inbeeld-connector outbox list ziet hij wat geparkeerd is.",
    },
    "en": {
        "nav.alerts": "Alerts",
        "alerts.title": "Alerts",
        "alerts.intro": "What needs attention at a tenant. An alert clears itself when its cause "
        "is gone; it is also sent to the operator's webhook and to the tenant.",
        "alerts.open": "Open alerts",
        "alerts.cleared": "Cleared alerts",
        "alerts.none": "No open alerts.",
        "alerts.none_cleared": "No cleared alerts yet.",
        "alerts.tenant": "Tenant",
        "alerts.kind": "Kind",
        "alerts.detail": "Detail",
        "alerts.since": "Since",
        "alerts.raised": "Raised",
        "alerts.cleared_at": "Cleared",
        "alerts.action": "What to do",
        "alerts.banner": "{count} open alert(s):",
        "alerts.banner_link": "To the alerts",
        "alerts.kind.inbox_offline": "connector not connected",
        "alerts.kind.inbox_backlog": "messages left waiting",
        "alerts.kind.inbox_full": "inbox full",
        "alerts.kind.webhook_failing": "case system's webhook failing",
        "alerts.todo.inbox_offline": "Ask the tenant to start its connector "
        "(inbeeld-connector check, then run).",
        "alerts.todo.inbox_backlog": "Ask the tenant why its connector takes nothing; see the "
        "connector's log.",
        "alerts.todo.inbox_full": "Senders get recipient_busy now. Have the connector drain the "
        "inbox, or raise INBEELD_INBOX_MAX_LENGTH.",
        "alerts.todo.webhook_failing": "Ask the tenant about its case system; "
        "inbeeld-connector outbox list shows what is parked.",
    },
}
CATALOGUE = {lang: {**CATALOGUE[lang], **_ALERTS[lang]} for lang in CATALOGUE}
# --- end of alerts ------------------------------------------------------------------------------


def choose(request: Request) -> str:
    """The request's language (see the module doc)."""
    asked = request.query_params.get("lang")
    if asked in LANGUAGES:
        return asked
    remembered = request.cookies.get(COOKIE)
    if remembered in LANGUAGES:
        return remembered
    for part in request.headers.get("accept-language", "")[:200].split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LANGUAGES:
            return tag
    return DEFAULT


def translator(lang: str) -> Translate:
    messages = CATALOGUE.get(lang, CATALOGUE[DEFAULT])

    def translate(key: str, **values: object) -> str:
        text = messages.get(key) or CATALOGUE[DEFAULT][key]
        return text.format(**values) if values else text

    return translate


def local_day_start(day: str) -> datetime:
    """The start of a day (YYYY-MM-DD) in Europe/Amsterdam; ValueError if it is not a date."""
    return datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=ZONE)


def local_time(moment: datetime | None, with_date: bool = True) -> str:
    """A time for people here: Europe/Amsterdam, day-month-year, 24 hours."""
    if moment is None:
        return ""
    local = moment.astimezone(ZONE)
    return local.strftime("%d-%m-%Y %H:%M:%S" if with_date else "%H:%M:%S")
