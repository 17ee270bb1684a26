import { api, bookingCache, errorText, getEvent, serverNow } from './api.js';
import { focusHeading, go, signInHash } from './router.js';
import { $, PAYMENT_POLL_MS, PAYMENT_WAIT_MS, announce, flashAfterNavigation, fmtDate, getSession, h, message, moneyExact, toMs } from './util.js';

// ---------------------------------------------------------------------------------------
// Booking: hold, pay, release, confirmation
// ---------------------------------------------------------------------------------------

export function seatsTable(booking) {
  const tickets = booking.tickets || [];
  const total = typeof booking.totalCents === 'number' ? booking.totalCents : tickets.reduce((s, t) => s + (t.priceCents || 0), 0);
  return h('table', { class: 'seats' },
    h('caption', { class: 'visually-hidden' }, 'Seats in this booking'),
    h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Section'), h('th', { scope: 'col' }, 'Row'), h('th', { scope: 'col' }, 'Seat'), h('th', { scope: 'col', class: 'num' }, 'Price'))),
    h('tbody', null, tickets.map(t => h('tr', null, h('td', null, t.section), h('td', null, t.row), h('td', null, t.seat), h('td', { class: 'num' }, moneyExact(t.priceCents))))),
    h('tfoot', null, h('tr', null, h('td', { colspan: '3' }, 'Total'), h('td', { class: 'num' }, moneyExact(total)))));
}

export function eventSummary(event) {
  if (!event) return null;
  const venue = event.venue || {};
  return h('p', { class: 'muted' },
    h('time', { datetime: event.startsAt }, `${fmtDate(event.startsAt, 'long')}, ${fmtDate(event.startsAt, 'timeZone')}`),
    h('br'), `${venue.name || ''}${venue.city ? `, ${venue.city}` : ''}`);
}

export async function bookingView(main, view, bookingId) {
  document.title = 'Your booking · Boxoffice';
  if (!getSession()) {
    flashAfterNavigation('info', 'Please sign in to see this booking.');
    go(signInHash(`#/bookings/${encodeURIComponent(bookingId)}`));
    return;
  }
  const container = h('div', { class: 'narrow' });
  main.append(container);
  container.append(h('p', { class: 'muted' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), ' Loading your booking…'));

  let booking = bookingCache.get(bookingId);
  try {
    if (!booking) booking = await api('GET', `/bookings/${encodeURIComponent(bookingId)}`, undefined, { auth: true });
  } catch (error) {
    if (!view.alive) return;
    if (error.status === 401) { go(signInHash(`#/bookings/${encodeURIComponent(bookingId)}`)); return; }
    container.replaceChildren(h('h1', null, error.status === 404 ? 'Booking not found' : 'Could not load this booking'),
      message('error', error.status === 404 ? 'We could not find this booking. It may belong to another account.' : errorText(error)),
      h('p', null, h('a', { href: '#/' }, 'Back to all events')));
    view.ready();
    return;
  }
  bookingCache.delete(bookingId);
  let event = null;
  try { event = await getEvent(booking.eventId); } catch (e) { event = null; }
  if (!view.alive) return;

  let countdown = 0;
  view.onDispose(() => clearInterval(countdown));

  function render(current, notice) {
    booking = current;
    clearInterval(countdown);
    container.replaceChildren();
    if (booking.status === 'held' || booking.status === 'paymentPending') renderHeld(notice);
    else if (booking.status === 'confirmed') renderConfirmed(notice);
    else renderEnded(notice);
  }

  function backToEvent(text) {
    return h('a', { class: 'btn secondary', href: `#/events/${encodeURIComponent(booking.eventId)}` }, text || 'Choose seats again');
  }

  function renderHeld(notice) {
    document.title = 'Complete your booking · Boxoffice';
    const expires = toMs(booking.expiresAt);
    const created = toMs(booking.createdAt);
    const span = Number.isFinite(expires) && Number.isFinite(created) && expires > created ? expires - created : 10 * 60 * 1000;
    const clock = h('span', { class: 'clock' });
    const bar = h('i');
    const timerBox = h('div', { class: 'timer', role: 'timer', 'aria-live': 'off' },
      h('div', { style: 'flex:1' }, h('b', null, 'Your seats are held'), h('div', { class: 'muted', style: 'font-size:.9rem' }, 'Pay before the timer runs out or they go back on sale.'),
        h('div', { class: 'bar', 'aria-hidden': 'true' }, bar)),
      clock);
    const errors = h('div');
    const pending = booking.status === 'paymentPending';
    if (pending) {
      errors.append(message('info', 'We are waiting for the payment provider to confirm your payment. This page updates by itself; if you left the checkout page without paying, go back to it.', 'Payment in progress'));
    } else if (booking.lastPaymentError) {
      const reason = String(booking.lastPaymentError).replace(/^./, c => c.toUpperCase()).replace(/([^.!?])$/, '$1.');
      errors.append(message('error', `${reason} Your seats are still held: you can pay again.`, 'Your last payment did not go through'));
    }
    const total = typeof booking.totalCents === 'number' ? booking.totalCents : (booking.tickets || []).reduce((s, t) => s + (t.priceCents || 0), 0);
    const payLabel = pending ? 'Back to the payment page' : `Pay ${moneyExact(total)}`;
    const pay = h('button', { class: 'btn', type: 'submit' }, payLabel);
    const release = h('button', { class: 'btn danger', type: 'button', onclick: () => doRelease() }, 'Release seats');
    const form = h('form', { class: 'card panel', onsubmit: e => { e.preventDefault(); doPay(); }, 'aria-labelledby': 'pay-title' },
      h('h2', { id: 'pay-title' }, 'Payment'),
      h('p', { class: 'muted' }, 'You pay on our payment provider\u2019s secure checkout page and come back here when it is done. Test cards there: 4242 4242 4242 4242 is accepted, 4000 0000 0000 0002 is declined.'),
      errors,
      h('div', { class: 'actions' }, pay, release));

    container.append(
      h('h1', null, 'Complete your booking'),
      notice || '',
      h('section', { class: 'card panel', 'aria-labelledby': 'booking-event' },
        h('h2', { id: 'booking-event' }, event ? event.name : `Event ${booking.eventId}`),
        eventSummary(event),
        seatsTable(booking),
        h('p', { class: 'muted', style: 'font-size:.85rem;margin:0' }, 'Booking reference ', h('span', { class: 'ref' }, booking.bookingId))),
      timerBox,
      form);

    let warned = false;
    function tick() {
      const left = expires - serverNow();
      if (!Number.isFinite(left)) { clock.textContent = ''; return; }
      if (left <= 0) {
        clearInterval(countdown);
        clock.textContent = '0:00';
        bar.style.width = '0%';
        timerBox.classList.add('over');
        pay.disabled = true;
        errors.replaceChildren(message('warn', 'Your hold has ended and the seats went back on sale.', 'Time is up'));
        announce('Time is up. Your hold has ended.');
        setTimeout(() => refresh(), 1500);
        return;
      }
      const seconds = Math.ceil(left / 1000);
      clock.textContent = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`;
      clock.setAttribute('aria-label', `${Math.floor(seconds / 60)} minutes ${seconds % 60} seconds left`);
      bar.style.width = `${Math.max(0, Math.min(100, left / span * 100))}%`;
      timerBox.classList.toggle('urgent', left < 60000);
      if (left < 60000 && !warned) { warned = true; announce('Less than a minute left to pay.'); }
    }
    tick();
    countdown = setInterval(tick, 250);
    if (pending) waitForProvider();

    /** The webhook settles a payment a moment after the checkout page: look again until it has. */
    function waitForProvider() {
      const started = Date.now();
      const poll = setInterval(async () => {
        if (!view.alive || booking.status !== 'paymentPending') { clearInterval(poll); return; }
        if (Date.now() - started > PAYMENT_WAIT_MS) { clearInterval(poll); return; }
        try {
          const current = await api('GET', `/bookings/${encodeURIComponent(booking.bookingId)}`, undefined, { auth: true });
          if (!view.alive || current.status === 'paymentPending') return;
          clearInterval(poll);
          render(current);
          focusHeading();
        } catch (error) { /* try again at the next tick */ }
      }, PAYMENT_POLL_MS);
      view.onDispose(() => clearInterval(poll));
    }

    /** Starts (or resumes) the payment and sends the fan to the provider's checkout page. */
    async function doPay() {
      pay.disabled = true; release.disabled = true;
      pay.replaceChildren(h('span', { class: 'spinner', 'aria-hidden': 'true' }), ' Going to checkout…');
      errors.replaceChildren();
      const returnUrl = `${location.origin}${location.pathname}#/bookings/${encodeURIComponent(booking.bookingId)}`;
      try {
        const answer = await api('POST', `/bookings/${encodeURIComponent(booking.bookingId)}/payment`, { returnUrl }, { auth: true });
        if (!view.alive) return;
        if (answer && answer.checkoutUrl) { location.assign(answer.checkoutUrl); return; }
        // Paid already (the webhook came first): show it.
        render(answer && answer.status ? answer : { ...booking, status: 'confirmed' });
        focusHeading();
      } catch (error) {
        if (!view.alive) return;
        pay.disabled = false; release.disabled = false;
        pay.textContent = payLabel;
        if (error.status === 409) {
          await refresh(message('error', error.message, 'Your hold has ended'));
        } else if (error.status === 401) {
          go(signInHash(`#/bookings/${encodeURIComponent(booking.bookingId)}`));
        } else {
          errors.replaceChildren(message('error', `${errorText(error)} Nothing was charged: try again.`, 'Could not start the payment'));
        }
      }
    }

    async function doRelease() {
      pay.disabled = true; release.disabled = true;
      errors.replaceChildren();
      try {
        const released = await api('DELETE', `/bookings/${encodeURIComponent(booking.bookingId)}`, undefined, { auth: true });
        if (!view.alive) return;
        render(released && released.status ? released : { ...booking, status: 'released' });
        focusHeading();
      } catch (error) {
        if (!view.alive) return;
        pay.disabled = false; release.disabled = false;
        errors.replaceChildren(message('error', errorText(error), 'Could not release the seats'));
      }
    }
  }

  async function refresh(notice) {
    try {
      const current = await api('GET', `/bookings/${encodeURIComponent(booking.bookingId)}`, undefined, { auth: true });
      if (!view.alive) return;
      // A hold whose time is up still reads "held" until the server notices: show it as expired.
      if (current.status === 'held' && toMs(current.expiresAt) <= serverNow()) current.status = 'expired';
      render(current, notice);
    } catch (error) {
      if (!view.alive) return;
      render({ ...booking, status: 'expired' }, notice || message('error', errorText(error)));
    }
  }

  function renderConfirmed(notice) {
    document.title = 'Booking confirmed · Boxoffice';
    announce('Payment accepted. Your booking is confirmed.');
    container.append(
      notice || '',
      h('section', { class: 'card panel', 'aria-labelledby': 'done-title' },
        h('div', { class: 'confirm-mark', 'aria-hidden': 'true' }, '\u2713'),
        h('h1', { id: 'done-title' }, 'You\u2019re going!'),
        h('p', null, 'Your payment went through and your seats are yours. Show your booking reference at the door.'),
        h('h2', null, event ? event.name : `Event ${booking.eventId}`),
        eventSummary(event),
        seatsTable(booking),
        h('p', null, 'Booking reference ', h('span', { class: 'ref' }, booking.bookingId)),
        h('div', { class: 'actions' },
          h('button', { class: 'btn secondary', type: 'button', onclick: () => window.print() }, 'Print'),
          h('a', { class: 'btn', href: '#/' }, 'Find more events'))));
  }

  function renderEnded(notice) {
    const released = booking.status === 'released';
    const refunded = booking.status === 'refunded';
    document.title = `Booking ${booking.status} · Boxoffice`;
    const text = released ? 'You released these seats: they are back on sale and you have not been charged.'
      : refunded ? 'Your payment came after your hold had ended and another fan had taken the seats, so we refunded it in full.'
      : 'The time to pay ran out, so the seats went back on sale. You have not been charged.';
    container.append(
      h('h1', null, released ? 'Seats released' : refunded ? 'Payment refunded' : 'Your hold has ended'),
      notice || '',
      message(released || refunded ? 'info' : 'warn', text),
      h('section', { class: 'card panel' },
        h('h2', null, event ? event.name : `Event ${booking.eventId}`),
        eventSummary(event),
        seatsTable(booking),
        h('div', { class: 'actions' }, backToEvent(), h('a', { href: '#/' }, 'All events'))));
  }

  render(booking);
  view.ready();
}

export async function myBookingsView(main, view) {
  document.title = 'My bookings · Boxoffice';
  if (!getSession()) { go(signInHash('#/bookings')); return; }
  const list = h('ul', { class: 'bookings-list' });
  main.append(h('div', { class: 'narrow' }, h('h1', null, 'My bookings'),
    h('p', { class: 'muted' }, 'Bookings made in this browser.'), list));
  view.ready();
  const remembered = rememberedBookings();
  if (!remembered.length) {
    list.append(h('li', { class: 'card' }, h('span', null, 'No bookings yet. ', h('a', { href: '#/' }, 'Find an event'), '.')));
    return;
  }
  const rows = remembered.map(b => {
    const status = h('span', { class: 'status-pill' }, '…');
    list.append(h('li', { class: 'card' },
      h('div', null, h('a', { href: `#/bookings/${encodeURIComponent(b.id)}` }, h('b', null, b.eventName || `Event ${b.eventId}`)),
        h('div', { class: 'muted', style: 'font-size:.9rem' }, b.startsAt ? `${fmtDate(b.startsAt, 'short')} · ${fmtDate(b.startsAt, 'time')}` : '', ' · ', h('span', { class: 'ref' }, b.id))),
      status));
    return { b, status };
  });
  await Promise.all(rows.map(async ({ b, status }) => {
    try {
      const booking = await api('GET', `/bookings/${encodeURIComponent(b.id)}`, undefined, { auth: true });
      if (!view.alive) return;
      const shown = booking.status === 'held' && toMs(booking.expiresAt) <= serverNow() ? 'expired' : booking.status;
      status.textContent = shown === 'paymentPending' ? 'payment pending' : shown;
      status.className = `status-pill ${shown}`;
    } catch (error) {
      if (!view.alive) return;
      status.textContent = error.status === 404 ? 'not found' : 'unknown';
    }
  }));
}
