"""Server-rendered web pages: a reusable foundation and the hub operator's console.

The foundation modules know nothing of the hub and can move to a package of their own when the
connector's workspace uses them too:

    assets     the vendored NL Design System CSS and htmx, with their manifest
    security   response headers (Content-Security-Policy and friends), request limits
    sessions   the signed session cookie, its idle timeout and the CSRF token
    i18n       the message catalogue (Dutch first, English), language choice, local dates
    pages      Jinja2 rendering (autoescape) and the error pages

`console` is the hub's own: the operator's pages, mounted by hub.api.app at /console, with
beside it `activity` (the overview's activity and the flows page), `memberships` (group
membership on the tenants page) and `chart` (the server-drawn SVG bar chart)."""
