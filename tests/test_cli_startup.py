"""The two console scripts start without loading what only their commands need: printing the
help (of the program, a group or a command) must not import the API, the store, the broker's
clients, the letters or the tracing SDK. Each command imports its implementation when it runs
(hub.cli, connectors.cli); a module-level import of one of these would make every command line,
and every test that runs one, seconds slower. Not a timing test: it lists the modules loaded."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = (
    "aio_pika",
    "aiormq",
    "aiosqlite",
    "alembic",
    "argon2",
    "asyncpg",
    "cryptography",
    "demo.story",
    "fastapi",
    "fontTools",
    "fpdf",
    "httpx",
    "jinja2",
    "joserfc",
    "opentelemetry.exporter",
    "opentelemetry.instrumentation",
    "opentelemetry.sdk",
    "playwright",
    "prometheus_client",
    "sqlalchemy",
    "starlette",
    "uharfbuzz",
    "uvicorn",
)

# A program's main() with `--help`, as its console script runs it; then every module it loaded.
PROBE = """
import sys
sys.argv = [{script!r}, *{args!r}, "--help"]
from {module} import main
try:
    main()
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
print("\\n".join(sorted(sys.modules)), file=sys.stderr)
"""


@pytest.mark.parametrize(
    ("module", "script", "args"),
    [
        ("hub.cli", "inbeeld", []),
        ("hub.cli", "inbeeld", ["serve"]),
        ("hub.cli", "inbeeld", ["tenant", "add"]),
        ("hub.cli", "inbeeld", ["demo"]),  # the plugin's entry point is loaded for the help
        ("connectors.cli", "inbeeld-connector", []),
        ("connectors.cli", "inbeeld-connector", ["check"]),
        ("connectors.cli", "inbeeld-connector", ["user", "add"]),
        ("connectors.cli", "inbeeld-connector", ["letter", "render"]),
    ],
)
def test_help_loads_none_of_the_commands_machinery(module: str, script: str, args: list[str]) -> None:
    probe = PROBE.format(script=script, args=args, module=module)
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, done.stderr
    assert "Usage" in done.stdout
    loaded = set(done.stderr.split())
    heavy = sorted(m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert not heavy, f"`{script} {' '.join(args)} --help` imports {heavy[:10]}"


def test_tracing_loads_the_sdk_only_when_set_up() -> None:
    probe = (
        "import sys\n"
        "from schemas import tracing, observability\n"
        "assert 'opentelemetry.sdk' not in sys.modules, 'imported with schemas.tracing'\n"
        "tracing.configure('probe')\n"
        "assert 'opentelemetry.sdk.trace' in sys.modules\n"
        "assert not tracing.recording()\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
