"""The live seat map in a real browser: Debian's Chromium, headless, driven by Playwright.

Two fans open the same event in two browser contexts. The first holds two seats (through the
API, as the page's hold button does); the second fan's page must show them taken, and its count
of free seats fall by two, within a second and without a reload. Prints one JSON line per check;
exits non-zero on the first failure, after a screenshot of each page.

usage: seatmap_browser.py BASE_URL EVENT_ID SEATS FAN_TOKEN FAN_ID OTHER_FAN_TOKEN OTHER_FAN_ID
"""

import json
import os
import re
import sys
import time

from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("BOXOFFICE_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
LOADED_TIMEOUT_S = 30
SEEN_WITHIN_S = 1.0


def report(**fields):
    print(json.dumps(fields), flush=True)


def open_event(browser, base, event, token, fan):
    context = browser.new_context()
    session = {"token": token, "userId": fan, "expiresAt": "2099-01-01T00:00:00Z"}
    context.add_init_script(f"localStorage.setItem('boxoffice.session', {json.dumps(json.dumps(session))});")
    page = context.new_page()
    page.console_lines = []
    page.on("console", lambda m: page.console_lines.append(m.text))
    page.goto(f"{base}/#/events/{event}")
    return context, page


def available(page):
    """The count of free seats the page shows, or None before it shows one."""
    text = page.text_content(".live") or ""
    match = re.search(r"Live: ([\d,]+) seats? available", text)
    return int(match.group(1).replace(",", "")) if match else None


def wait_available(page, want, within_s):
    deadline = time.time() + within_s
    seen = None
    while time.time() < deadline:
        seen = available(page)
        if seen == want:
            return time.time()
        time.sleep(0.02)
    raise AssertionError(f"the page shows {seen} seats available, not {want}, after {within_s} s")


def main():
    base, event, seats, token, fan, other_token, other_fan = sys.argv[1:8]
    event, seats = int(event), int(seats)
    out_dir = os.environ.get("BOXOFFICE_BROWSER_OUT", "target/browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        pages = []
        try:
            first_context, first = open_event(browser, base, event, token, int(fan))
            second_context, second = open_event(browser, base, event, other_token, int(other_fan))
            pages = [first, second]
            for page in pages:
                wait_available(page, seats, LOADED_TIMEOUT_S)
            report(check="loaded", available=seats)
            navigations = second.evaluate("() => performance.getEntriesByType('navigation').length")
            status = first.evaluate("""async ([event, token]) => {
                const r = await fetch(`/events/${event}/bookings`, {method: 'POST', headers: {
                  'Content-Type': 'application/json', Authorization: `Bearer ${token}`},
                  body: JSON.stringify({ticketIds: [1, 2]})});
                return r.status; }""", [event, token])
            held_at = time.time()
            assert status == 201, f"the hold answered {status}"
            seen_at = wait_available(second, seats - 2, SEEN_WITHIN_S)
            same_page = second.evaluate("() => performance.getEntriesByType('navigation').length") == navigations
            report(check="seen", after_ms=round((seen_at - held_at) * 1000), same_page=same_page)
            assert same_page, "the second page was reloaded"
            wait_available(first, seats - 2, SEEN_WITHIN_S)
            report(check="done", ok=True)
        except Exception:
            os.makedirs(out_dir, exist_ok=True)
            for i, page in enumerate(pages):
                page.screenshot(path=os.path.join(out_dir, f"seatmap-fan{i + 1}.png"))
                with open(os.path.join(out_dir, f"seatmap-fan{i + 1}-console.log"), "w") as f:
                    f.write("\n".join(page.console_lines) + "\n")
            raise
        finally:
            browser.close()


if __name__ == "__main__":
    main()
