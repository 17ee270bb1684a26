"""The waiting room in a real browser: Debian's Chromium, headless, driven by Playwright.

Opens the room page as a signed-in fan and checks that it joins over WebTransport (pinning the
node's self-signed certificate by its hash), is admitted, and holds seats with the admission
token; then the same with WebTransport removed from the page, which must fall back to the HTTP
join and server-sent events. Prints one JSON line per check; exits non-zero on the first failure.

usage: room_browser.py BASE_URL EVENT_ID FAN_TOKEN FAN_ID OTHER_FAN_TOKEN OTHER_FAN_ID
"""

import json
import os
import sys
import time

from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("BOXOFFICE_CHROMIUM", "/usr/bin/chromium")
# Flags this machine needs (no background networking: the network is closed). QUIC stays on.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
ADMITTED_TIMEOUT_S = 30


def report(**fields):
    print(json.dumps(fields), flush=True)


def visit(browser, base, event, token, fan, without_webtransport, out_dir):
    context = browser.new_context()
    session = {"token": token, "userId": fan, "expiresAt": "2099-01-01T00:00:00Z"}
    script = f"localStorage.setItem('boxoffice.session', {json.dumps(json.dumps(session))});"
    if without_webtransport:
        script += "delete window.WebTransport;"
    context.add_init_script(script)
    page = context.new_page()
    console = []
    page.on("console", lambda m: console.append(m.text))
    try:
        page.goto(f"{base}/waiting-room/{event}")
        deadline = time.time() + ADMITTED_TIMEOUT_S
        state = None
        while time.time() < deadline:
            state = page.evaluate("() => ({state: window.room.state, transport: window.room.transport, "
                                  "admission: window.room.admission, lastError: window.room.lastError || null, "
                                  "types: window.room.messages.map(m => m.type)})")
            if state["state"] == "admitted":
                break
            time.sleep(0.2)
        if not state or state["state"] != "admitted":
            raise AssertionError(f"not admitted within {ADMITTED_TIMEOUT_S} s: {state}")
        hold = page.evaluate("""async ([event, token]) => {
            const r = await fetch(`/events/${event}/bookings`, {method: 'POST', headers: {
              'Content-Type': 'application/json', Authorization: `Bearer ${token}`,
              'Admission-Token': window.room.admission}, body: JSON.stringify({quantity: 1})});
            return r.status; }""", [event, token])
        visible = page.is_visible("#admitted")
        return state, hold, visible
    except Exception:
        os.makedirs(out_dir, exist_ok=True)
        page.screenshot(path=os.path.join(out_dir, f"room-{'sse' if without_webtransport else 'wt'}.png"))
        with open(os.path.join(out_dir, "console.log"), "a") as f:
            f.write("\n".join(console) + "\n")
        raise
    finally:
        context.close()


def main():
    base, event, token, fan, other_token, other_fan = sys.argv[1:7]
    out_dir = os.environ.get("BOXOFFICE_BROWSER_OUT", "target/browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        state, hold, visible = visit(browser, base, int(event), token, int(fan), False, out_dir)
        report(check="webtransport", transport=state["transport"], messages=state["types"], hold_status=hold)
        assert state["transport"] == "webtransport", f"the page took {state['transport']}: {state}"
        assert hold == 201, f"a hold with the admission token answered {hold}"
        assert visible, "the page does not show the admission"
        state, hold, visible = visit(browser, base, int(event), other_token, int(other_fan), True, out_dir)
        report(check="fallback", transport=state["transport"], messages=state["types"], hold_status=hold)
        assert state["transport"] == "sse", f"without WebTransport the page took {state['transport']}"
        assert hold == 201, f"a hold with the fallback's admission token answered {hold}"
        browser.close()
    report(check="done", ok=True)


if __name__ == "__main__":
    main()
