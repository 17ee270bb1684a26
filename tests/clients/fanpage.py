"""What the browser tests of the fans' page share: Debian's Chromium as Playwright launches it
here, a signed-in fan's page, the live count of free seats the page shows, and what a failed
test leaves behind (a screenshot and the console of every page)."""

import json
import os
import re
import time

CHROMIUM = os.environ.get("BOXOFFICE_CHROMIUM", "/usr/bin/chromium")
# Flags this machine needs (no background networking: the network is closed). QUIC stays on.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
OUT = os.environ.get("BOXOFFICE_BROWSER_OUT", "target/browser")


def report(**fields):
    print(json.dumps(fields), flush=True)


def open_page(browser, url, token, fan, viewport=None):
    """A page at `url` in a context of its own, signed in as `fan`; its console is kept."""
    context = browser.new_context(viewport=viewport) if viewport else browser.new_context()
    session = {"token": token, "userId": fan, "expiresAt": "2099-01-01T00:00:00Z"}
    context.add_init_script(f"localStorage.setItem('boxoffice.session', {json.dumps(json.dumps(session))});")
    page = context.new_page()
    page.console_lines = []
    page.on("console", lambda m: page.console_lines.append(m.text))
    page.goto(url)
    return page


def available(page):
    """The count of free seats the page shows, or None before it shows one."""
    text = page.text_content(".live") or ""
    match = re.search(r"Live: ([\d,]+) seats? available", text)
    return int(match.group(1).replace(",", "")) if match else None


def wait_available(page, want, within_s):
    """When the page shows `want` seats free (`want` None: any count)."""
    deadline = time.time() + within_s
    seen = None
    while time.time() < deadline:
        seen = available(page)
        if seen is not None and (want is None or seen == want):
            return time.time(), seen
        time.sleep(0.02)
    raise AssertionError(f"the page shows {seen} seats available, not {want}, after {within_s} s")


def keep_evidence(pages, prefix):
    """A screenshot and the console of each page, named `{prefix}-{name}`."""
    os.makedirs(OUT, exist_ok=True)
    for name, page in pages.items():
        page.screenshot(path=os.path.join(OUT, f"{prefix}-{name}.png"))
        with open(os.path.join(OUT, f"{prefix}-{name}-console.log"), "w") as f:
            f.write("\n".join(page.console_lines) + "\n")
