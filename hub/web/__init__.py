"""The hub operator's console: server-rendered pages mounted by hub.api.app at /console.

It is built on the project's web foundation, `webui` (static assets, security headers, sessions
and CSRF, i18n machinery, rendering); what is here is the console's own:

    console    the routes
    i18n       the console's message catalogue
    pages      its templates on webui's renderer
    assets     its own CSS beside the shared vendored files

beside it `activity` (the overview's activity and the flows page), `memberships` (group
membership on the tenants page), `alerts_page` (the alerts list and banner) and `chart` (the
server-drawn SVG bar chart)."""
