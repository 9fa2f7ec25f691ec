"""A connector's services, wired once from its configuration.

Internal to the connector (behind `inbeeld-connector`), not SDK: see `connectors.__all__`.

    keystore -> local store -> hub API -> key directory -> sealer -> connector -> desks

`open_services(config, ...)` opens the parts a caller asks for and closes them again, in
reverse order; the command line (`connectors.cli`) and the long-running runtime
(`connectors.runtime`) use the same builders, so the wiring is written here only.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from connectors.client import Connector, EventSealer
from connectors.config import ConnectorConfig
from connectors.directory import Directory
from connectors.group_keys import GroupKeyring
from connectors.hub_api import HubApi
from connectors.keystore import KEK_ENV, PASSPHRASE_ENV, Keystore
from connectors.notices import NoticeDesk
from connectors.sealing import Sealer
from connectors.store import LocalStore
from connectors.templates import TemplateCatalogue

__all__ = ["ConnectorServices", "notice_desk", "open_keystore", "open_services"]


def open_keystore(config: ConnectorConfig) -> Keystore | None:
    """The tenant's keystore, unlocked by the env variables the config names (or None)."""
    ks = config.keystore
    if ks is None:
        return None
    environ = {
        KEK_ENV: os.environ.get(ks.kek_env, ""),
        PASSPHRASE_ENV: os.environ.get(ks.passphrase_env, ""),
    }
    return Keystore.from_env(ks.path, environ=environ, create=ks.create)


def notice_desk(
    config: ConnectorConfig, connector: Connector, sealer: Sealer, store: LocalStore, directory: Directory
) -> NoticeDesk:
    """The notice desk, with the contact person and answering mode of [notices]."""
    notices = config.notices
    return NoticeDesk(
        connector,
        sealer,
        store,
        GroupKeyring(store, config.tenant, directory),
        contact_person=notices.contact_person() if notices is not None else None,
        # Without a contact person there is nobody to name in an answer: record matches only.
        auto_answer=notices is not None and notices.auto_answer,
    )


@dataclass
class ConnectorServices:
    """What `open_services` (or `ConnectorServices.open`) opened; a part not asked for (or not
    configured) is None. `aclose()` closes everything it opened, in reverse order."""

    config: ConnectorConfig
    keystore: Keystore | None = None
    store: LocalStore | None = None
    hub_api: HubApi | None = None
    directory: Directory | None = None
    sealer: Sealer | None = None
    connector: Connector | None = None
    _stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack, repr=False)

    @classmethod
    async def open(
        cls,
        config: ConnectorConfig,
        *,
        keystore: bool | Keystore = True,
        store: bool = False,
        hub: bool = False,
    ) -> ConnectorServices:
        """Open the keystore (or take the given one), the local store, and the hub's API with
        the key directory and a sealer over it; see `open_services` for the flags."""
        services = cls(config)
        try:
            if isinstance(keystore, Keystore):
                services.keystore = keystore
            elif keystore:
                services.keystore = open_keystore(config)
            if store:
                services.store = await LocalStore.open(config.store.path, services.keystore)
                services.store.activities = config.activity_ids()
                services._stack.push_async_callback(services.store.close)
            if hub and config.hub is not None:
                services.hub_api = HubApi(
                    config.hub.url, config.hub.resolved_token() or "", ssl_context=config.tls.client_context()
                )
                services._stack.push_async_callback(services.hub_api.aclose)
                services.directory = Directory(services.hub_api)
                if services.keystore is not None:
                    services.sealer = Sealer(services.keystore, services.directory, config.tenant)
        except BaseException:
            await services.aclose()
            raise
        return services

    def open_connector(
        self, *, sealer: EventSealer | None = None, publish_deadline: float = 120.0, **options: Any
    ) -> Connector:
        """The broker client of this tenant (not yet connected), closed with the services.
        `options` are the runtime's extras (inbox name, state, receipts, gap callback...)."""
        config = self.config
        options.setdefault("processing_log", self.store)  # what it sends and receives, logged
        self.connector = Connector(
            config.tenant,
            config.broker.amqp_url(),
            system=config.system,
            oin=config.oin,
            publish_timeout=config.broker.publish_timeout,
            publish_deadline=publish_deadline,
            sealer=sealer,
            ssl_context=config.tls.client_context(),
            **options,
        )
        self._stack.push_async_callback(self.connector.close)
        return self.connector

    async def aclose(self) -> None:
        await self._stack.aclose()

    def notice_desk(self) -> NoticeDesk:
        assert self.connector is not None and self.sealer is not None
        assert self.store is not None and self.directory is not None
        return notice_desk(self.config, self.connector, self.sealer, self.store, self.directory)

    def catalogue(self) -> TemplateCatalogue:
        assert self.store is not None
        return TemplateCatalogue(self.store, self.sealer)


@contextlib.asynccontextmanager
async def open_services(
    config: ConnectorConfig,
    *,
    keystore: bool = True,
    store: bool = False,
    hub: bool = False,
    connector: bool = False,
    connect: bool = True,
    seal_connector: bool = False,
    publish_deadline: float = 120.0,
) -> AsyncIterator[ConnectorServices]:
    """Open the asked-for services of `config`.

    keystore: unlock [keystore] (when configured); store: the local store (encrypted with the
    keystore, if opened); hub: the one client of the hub's API (`HubApi`, needs [hub]), the
    key directory over it, and a sealer over that (also needs a keystore); connector: a
    broker client, connected when `connect`, sealing and opening events itself when
    `seal_connector`. Everything opened is closed on exit.
    """
    services = await ConnectorServices.open(config, keystore=keystore, store=store, hub=hub)
    try:
        if connector:
            sealer = services.sealer if seal_connector else None
            built = services.open_connector(sealer=sealer, publish_deadline=publish_deadline)
            if connect:
                await built.connect()
        yield services
    finally:
        await services.aclose()
