"""The web page of `boxoffice dev` in a real browser: Debian's Chromium, headless, driven by
Playwright, with axe-core checking its accessibility.

1. Two fans open the stadium event in two browser contexts; the first holds two seats; the
   second fan's map shows them taken within a second, without a reload.
2. The first fan pays on the sandbox's hosted checkout page and comes back to a confirmed
   booking.
3. axe-core finds no serious or critical violation on the event page and the booking page.
4. At a phone's width (390 px) the event page fits without scrolling sideways (a screenshot is
   kept in the output folder).
5. A fan on the queued event sees the queue screen, is admitted, and reaches the seat map.

Prints one JSON line per check; exits non-zero on the first failure, after a screenshot and the
console of every page open.

usage: page_browser.py BASE_URL STADIUM_EVENT QUEUED_EVENT TOKEN_A FAN_A TOKEN_B FAN_B TOKEN_C FAN_C
"""

import base64
import os
import re
import sys
import time

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import sync_playwright

from fanpage import CHROMIUM, FLAGS, OUT, keep_evidence, open_page, report, wait_available

LOADED_TIMEOUT_S = 60
SEEN_WITHIN_S = 1.0
PAID_TIMEOUT_S = 30
ADMITTED_TIMEOUT_S = 60
PHONE = {"width": 390, "height": 844}
pages = {}


def page_named(browser, name, url, token, fan, viewport=None):
    page = open_page(browser, url, token, fan, viewport)
    pages[name] = page
    return page


def wait_live(page, within_s):
    return wait_available(page, None, within_s)[1]


def free_seats(page, event, count):
    """The first `count` seats the snapshot shows free."""
    snapshot = page.evaluate(f"async () => (await fetch('/events/{event}/seats')).json()")
    held, sold = base64.b64decode(snapshot["held"]), base64.b64decode(snapshot["sold"])
    taken = lambda i: (held[i // 8] | sold[i // 8]) >> (i % 8) & 1
    return [i for i in range(snapshot["seats"]) if not taken(i)][:count]


def serious_violations(page):
    results = Axe().run(page)
    return [f"{v['id']} ({v['impact']})" for v in results.response["violations"] if v["impact"] in ("serious", "critical")]


def main():
    base, stadium, queued, token_a, fan_a, token_b, fan_b, token_c, fan_c = sys.argv[1:10]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            event_url = f"{base}/#/events/{stadium}"
            first = page_named(browser, "first", event_url, token_a, int(fan_a))
            second = page_named(browser, "second", event_url, token_b, int(fan_b))
            free = wait_live(first, LOADED_TIMEOUT_S)
            assert wait_live(second, LOADED_TIMEOUT_S) == free
            report(check="loaded", available=free)

            seats = free_seats(first, stadium, 2)
            navigations = second.evaluate("() => performance.getEntriesByType('navigation').length")
            hold = first.evaluate("""async ([event, token, seats]) => {
                const r = await fetch(`/events/${event}/bookings`, {method: 'POST', headers: {
                  'Content-Type': 'application/json', Authorization: `Bearer ${token}`},
                  body: JSON.stringify({ticketIds: seats})});
                return {status: r.status, body: await r.json()}; }""", [int(stadium), token_a, seats])
            held_at = time.time()
            assert hold["status"] == 201, f"the hold answered {hold}"
            seen_at, _ = wait_available(second, free - 2, SEEN_WITHIN_S)
            same_page = second.evaluate("() => performance.getEntriesByType('navigation').length") == navigations
            report(check="seen", after_ms=round((seen_at - held_at) * 1000), same_page=same_page)
            assert same_page, "the second page was reloaded"

            booking = hold["body"]["bookingId"]
            first.goto(f"{base}/#/bookings/{booking}")
            first.get_by_role("button", name=re.compile(r"^Pay ")).click()
            first.wait_for_url(lambda url: not url.startswith(base), timeout=15_000)
            checkout_url = first.url
            first.get_by_role("button", name=re.compile(r"^Pay")).click()
            # The provider's page says so and links back to the shop, as hosted checkouts do.
            first.get_by_text("Payment succeeded").wait_for(timeout=15_000)
            first.get_by_role("link", name=re.compile("Back to the shop")).click()
            first.wait_for_url(lambda url: url.startswith(base), timeout=15_000)
            first.wait_for_function("() => document.title.startsWith('Booking confirmed')", timeout=PAID_TIMEOUT_S * 1000)
            report(check="paid", checkout=checkout_url.split("?")[0], booking=booking)

            for name, page in [("event", second), ("booking", first)]:
                serious = serious_violations(page)
                report(check=f"axe_{name}", serious=serious)
                assert not serious, f"axe-core on the {name} page: {serious}"

            phone = page_named(browser, "phone", event_url, token_b, int(fan_b), viewport=PHONE)
            wait_live(phone, LOADED_TIMEOUT_S)
            os.makedirs(OUT, exist_ok=True)
            phone.screenshot(path=os.path.join(OUT, "event-390px.png"), full_page=True)
            width = phone.evaluate("() => document.documentElement.scrollWidth")
            report(check="phone", scroll_width=width)
            assert width <= PHONE["width"], f"the page is {width} px wide at a {PHONE['width']} px viewport"

            queue = page_named(browser, "queue", f"{base}/waiting-room/{queued}", token_c, int(fan_c))
            queue.wait_for_function("() => window.room && window.room.state === 'admitted'",
                                    timeout=ADMITTED_TIMEOUT_S * 1000)
            screen = queue.evaluate("() => window.room.messages.map(m => m.type)")
            queue.click("#shop")
            wait_live(queue, LOADED_TIMEOUT_S)
            report(check="queue", messages=screen, url=queue.url)
            # The content security policy allows everything the pages do: no violation reported.
            blocked = [line for page in pages.values() for line in page.console_lines
                       if "Content Security Policy" in line]
            report(check="csp", blocked=blocked)
            assert not blocked, f"the content security policy blocked: {blocked}"
            report(check="done", ok=True)
        except Exception:
            keep_evidence(pages, "page")
            raise
        finally:
            browser.close()


if __name__ == "__main__":
    main()
