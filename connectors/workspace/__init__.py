"""The connector's web workspace (`inbeeld-connector serve`): the municipality's officers log
in with local accounts and handle pupil transfers in the werkbak. Built on `webui`, the same
foundation as the hub's console; it works through the connector's own services (the store,
the hub API, a sealing broker client) and shows the decrypted dossier, which stays inside the
municipality.

    app          the routes: login, werkbak, dossier, answers
    offer_pages  offering a register pupil to another tenant (`/outgoing/new`)
    bureau       a regional bureau's members, for whom it answers and closes transfers
    form_once    one send per form: a second submit of the same form sends nothing
    i18n         the workspace's message catalogue (Dutch, English)"""

from connectors.workspace.app import create_workspace

__all__ = ["create_workspace"]
