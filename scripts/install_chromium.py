"""Make sure the browser of the report page's tests is here: Debian's Chromium, at /usr/bin.

tox's tests environment runs this before the tests (tests/reliability/test_report_page.py opens
results.html in it, headless, through Playwright). Playwright's own browser download is not used:
it comes from a CDN that CI machines cannot reach, while Debian's package comes from the
distribution's registry. Nothing happens when `chromium` is already on PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

BROWSER = "chromium"
INSTALL = ["apt-get", "install", "-y", "-qq", BROWSER]


def main() -> int:
    if shutil.which(BROWSER):
        return 0
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        print(f"install_chromium: no {BROWSER} on PATH, and installing it needs root and apt-get; "
              f"install Chromium as `{BROWSER}` (Debian: apt-get install {BROWSER}) and run the "
              "tests again", file=sys.stderr)
        return 1
    print(f"install_chromium: installing Debian's {BROWSER} for the report page's browser tests",
          flush=True)
    quiet = {"stdout": subprocess.DEVNULL, "env": {**os.environ, "DEBIAN_FRONTEND":
                                                   "noninteractive"}}
    if subprocess.run(INSTALL, **quiet).returncode != 0:  # a fresh machine's lists may be stale
        subprocess.run(["apt-get", "update", "-qq"], **quiet, check=False)
        if subprocess.run(INSTALL, **quiet).returncode != 0:
            print(f"install_chromium: `{' '.join(INSTALL)}` failed (its error is above)",
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
