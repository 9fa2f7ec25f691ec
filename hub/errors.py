"""Hub-side errors that are about the deployment rather than the contract.

    InbeeldError (schemas.errors)
    ├── ServiceUnavailable       RabbitMQ, its management API or the database cannot be reached
    │   ├── BrokerUnavailable
    │   ├── ManagementUnavailable
    │   ├── DatabaseUnavailable
    │   └── DatabaseMissing      the server answers, but the database (or SQLite's folder) is not there
    └── Transient                the store or the broker is briefly away: keep the work, retry

The CLI turns a ServiceUnavailable into one line naming the URL and how to start the service,
and exit code 2; the API reports it in `/health`. `Transient` is raised by the store and broker
adapters themselves (`hub.store.db.Database.session` per `hub.store.db.store_away`, and
`hub.broker.connection.broker_away`; the library error is its `__cause__`), so the router
decides retry on this one type; a `RuntimeError` is a bug, not transient. Being an
`InbeeldError`, it must be let through wherever a refusal is made of every `InbeeldError`
(the router's decision re-raises it first); the API answers it with 503.
"""

from __future__ import annotations

from schemas.errors import InbeeldError


class ServiceUnavailable(InbeeldError):
    reason = "service_unavailable"
    hint = ""

    def __init__(self, url: str, detail: str = "") -> None:
        self.url = url
        self.detail = detail
        message = f"{self.service} is not reachable at {url}"
        if detail:
            message += f" ({detail})"
        if self.hint:
            message += f"; {self.hint}"
        super().__init__(message)

    service = "a service"


class BrokerUnavailable(ServiceUnavailable):
    service = "RabbitMQ"
    hint = "start it with `rabbitmq-server -detached` or set INBEELD_AMQP_URL"


class ManagementUnavailable(ServiceUnavailable):
    service = "The RabbitMQ management API"
    hint = "enable it with `rabbitmq-plugins enable rabbitmq_management` or set INBEELD_RABBITMQ_API_URL"


class DatabaseUnavailable(ServiceUnavailable):
    service = "The database"
    hint = (
        "start PostgreSQL with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` "
        "or set INBEELD_DATABASE_URL"
    )


class DatabaseMissing(ServiceUnavailable):
    """Not an outage: the server is up and the URL names a database it does not have (or a
    SQLite file in a folder that does not exist). The message says how to make it."""

    service = "The database"

    def __init__(self, url: str, message: str) -> None:
        self.url = url
        self.detail = message
        InbeeldError.__init__(self, message)


class Transient(InbeeldError):
    """The store or the broker is briefly away; what was being done is kept and tried again.
    Never a refusal: the router retries on it and never tells the sender."""

    reason = "transient"
