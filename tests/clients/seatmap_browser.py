"""The live seat map in a real browser: Debian's Chromium, headless, driven by Playwright.

Two fans open the same event in two browser contexts. The first holds two seats (through the
API, as the page's hold button does); the second fan's page must show them taken, and its count
of free seats fall by two, within a second and without a reload. Prints one JSON line per check;
exits non-zero on the first failure, after a screenshot of each page.

usage: seatmap_browser.py BASE_URL EVENT_ID SEATS FAN_TOKEN FAN_ID OTHER_FAN_TOKEN OTHER_FAN_ID
"""

import sys
import time

from playwright.sync_api import sync_playwright

from fanpage import CHROMIUM, FLAGS, keep_evidence, open_page, report, wait_available

LOADED_TIMEOUT_S = 30
SEEN_WITHIN_S = 1.0


def main():
    base, event, seats, token, fan, other_token, other_fan = sys.argv[1:8]
    event, seats = int(event), int(seats)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        pages = {}
        try:
            pages["fan1"] = first = open_page(browser, f"{base}/#/events/{event}", token, int(fan))
            pages["fan2"] = second = open_page(browser, f"{base}/#/events/{event}", other_token, int(other_fan))
            for page in pages.values():
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
            seen_at, _ = wait_available(second, seats - 2, SEEN_WITHIN_S)
            same_page = second.evaluate("() => performance.getEntriesByType('navigation').length") == navigations
            report(check="seen", after_ms=round((seen_at - held_at) * 1000), same_page=same_page)
            assert same_page, "the second page was reloaded"
            wait_available(first, seats - 2, SEEN_WITHIN_S)
            report(check="done", ok=True)
        except Exception:
            keep_evidence(pages, "seatmap")
            raise
        finally:
            browser.close()


if __name__ == "__main__":
    main()
