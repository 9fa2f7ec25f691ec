"""Vendor the fallback fonts of PDF and HTML letters into connectors/letters/font_files/.

The static Noto TTFs come from Debian's `fonts-noto-core` (OFL-1.1): PyPI's Noto packages ship
variable fonts only, which fpdf2 instances about twenty times slower than it loads a static file.
Run on a Debian machine with network access to its mirror:

    python tools/vendor-fonts/vendor.py

It downloads the pinned package version, copies the listed files with the package's copyright
file, and writes MANIFEST.json (source, version, file, sha256, licence). A test checks the
manifest against the files, so the vendored fonts cannot change unnoticed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PACKAGE = "fonts-noto-core"
VERSION = "20201225-1"
SCRIPTS = ("", "Hebrew", "Armenian", "Georgian", "Ethiopic", "Devanagari", "Thai")
FILES = tuple(f"NotoSans{s}-{w}.ttf" for s in SCRIPTS for w in ("Regular", "Bold"))
TARGET = Path(__file__).resolve().parents[2] / "connectors" / "letters" / "font_files"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        subprocess.run(["apt-get", "download", f"{PACKAGE}={VERSION}"], cwd=work, check=True)
        [deb] = work.glob(f"{PACKAGE}_*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "root")], check=True)
        fonts = work / "root" / "usr" / "share" / "fonts" / "truetype" / "noto"
        TARGET.mkdir(parents=True, exist_ok=True)
        entries = []
        for name in FILES:
            shutil.copyfile(fonts / name, TARGET / name)
            digest = hashlib.sha256((TARGET / name).read_bytes()).hexdigest()
            entries.append(
                {"file": name, "sha256": digest, "licence": "OFL-1.1", "source": f"debian:{PACKAGE}"}
            )
        copyright_file = work / "root" / "usr" / "share" / "doc" / PACKAGE / "copyright"
        shutil.copyfile(copyright_file, TARGET / "COPYRIGHT.debian")
        manifest = {"source": f"debian:{PACKAGE}", "version": VERSION, "files": entries}
        (TARGET / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
    print(f"vendored {len(FILES)} fonts of {PACKAGE} {VERSION}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
