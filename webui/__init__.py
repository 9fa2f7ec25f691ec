"""The foundation of the project's server-rendered web pages, shared by the hub's operator
console and the connector's workspace. It knows neither: each app gives its own templates,
message catalogue and static files.

    assets     the vendored NL Design System CSS and htmx, with their manifest
    security   response headers (Content-Security-Policy and friends), request limits
    sessions   the signed session cookie, its idle timeout and the CSRF token
    i18n       language choice, a translator over an app's catalogue, local dates
    pages      Jinja2 rendering (autoescape) and the error page, plus the shared page frame
    passwords  Argon2id password hashes and the throttling of failed logins"""
