import { api, bookingCache, errorText, getEvent, setClockSkew } from './api.js';
import { go, signInHash } from './router.js';
import { HELD_COLOR, SOLD_COLOR, SeatMap } from './seatmap.js';
import { $, CATEGORIES, MAX_SEATS, announce, dateFormats, flashAfterNavigation, fmtDate, getSession, h, loadSelection, message, money, moneyExact, numberFormat, plural, rememberBooking, saveSelection, seatLabel, toMs } from './util.js';

// ---------------------------------------------------------------------------------------
// Event page
// ---------------------------------------------------------------------------------------

export async function eventView(main, view, eventId) {
  main.append(h('a', { class: 'back', href: '#/' }, '\u2190 All events'), h('p', { class: 'muted' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), ' Loading the event…'));
  let event;
  try {
    event = await getEvent(eventId);
  } catch (error) {
    if (!view.alive) return;
    main.replaceChildren(h('a', { class: 'back', href: '#/' }, '\u2190 All events'),
      h('h1', null, error.status === 404 ? 'Event not found' : 'Could not load this event'),
      message('error', error.status === 404 ? 'This event does not exist or is no longer on sale.' : errorText(error)));
    view.ready();
    return;
  }
  if (!view.alive) return;
  document.title = `${event.name} · Boxoffice`;

  const messages = h('div', { 'aria-live': 'polite' });
  function say(kind, text, title) {
    messages.replaceChildren(message(kind, text, title));
    messages.firstChild.append(h('button', { class: 'close', type: 'button', 'aria-label': 'Dismiss message', onclick: () => messages.replaceChildren() }, '\u00d7'));
  }

  const map = new SeatMap({ onSelectionChange: () => renderSelection(), onMessage: (kind, text) => say(kind, text) });
  view.onDispose(() => map.destroy());

  // --- header
  const venue = event.venue || {};
  main.replaceChildren(
    h('a', { class: 'back', href: '#/' }, '\u2190 All events'),
    h('section', { class: 'event-head card panel', 'aria-labelledby': 'event-title' },
      h('div', null,
        h('span', { class: `badge ${CATEGORIES.includes(event.category) ? event.category : ''}` }, event.category || 'event'),
        h('h1', { id: 'event-title', style: 'margin-top:.4rem' }, event.name),
        h('div', { class: 'facts' },
          h('span', null, h('b', null, 'When: '), h('time', { datetime: event.startsAt }, `${fmtDate(event.startsAt, 'long')}, ${fmtDate(event.startsAt, 'timeZone')}`)),
          h('span', null, h('b', null, 'Where: '), `${venue.name || ''}${venue.address ? `, ${venue.address}` : ''}${venue.city && !(venue.address || '').includes(venue.city) ? `, ${venue.city}` : ''}`),
          venue.capacity ? h('span', null, h('b', null, 'Capacity: '), numberFormat.format(venue.capacity)) : null),
        event.description ? h('p', null, event.description) : null,
        (event.performers || []).length
          ? [h('h2', { class: 'visually-hidden' }, 'Performers'),
             h('ul', { class: 'performer-list' }, event.performers.map(p => h('li', null, h('b', null, p.name), h('span', { class: 'muted' }, [p.genre, p.description].filter(Boolean).join(' · ')))))]
          : null)),
    messages);

  // --- map column
  const liveText = h('span', null, 'Connecting…');
  const live = h('p', { class: 'live', role: 'status' }, h('span', { class: 'dot', 'aria-hidden': 'true' }), liveText);
  const zoomButtons = h('div', { class: 'zoom', role: 'group', 'aria-label': 'Zoom' },
    h('button', { class: 'btn secondary small', type: 'button', 'aria-label': 'Zoom in', onclick: () => map.zoom(1.5) }, '+'),
    h('button', { class: 'btn secondary small', type: 'button', 'aria-label': 'Zoom out', onclick: () => map.zoom(1 / 1.5) }, '\u2212'),
    h('button', { class: 'btn secondary small', type: 'button', onclick: () => map.fit() }, 'Whole venue'));
  const mapColumn = h('section', { class: 'card map-card', 'aria-labelledby': 'map-title' },
    h('div', { class: 'map-toolbar' }, h('h2', { id: 'map-title', style: 'margin:0' }, 'Choose your seats'), zoomButtons),
    live,
    map.wrap,
    h('p', { class: 'map-help', id: 'map-help' },
      `Click up to ${MAX_SEATS} available seats. Drag to move around, scroll or pinch to zoom. With a keyboard: tab to the map, use the arrow keys to move between seats and Enter to select. You can also let us find seats for you.`));

  // --- side column
  const legendList = h('ul', { class: 'legend' });
  const legend = h('section', { class: 'card panel', 'aria-labelledby': 'legend-title' },
    h('h2', { id: 'legend-title' }, 'Prices'),
    legendList,
    h('div', { class: 'legend-status' },
      h('span', null, h('i', { style: `background:${HELD_COLOR}` }), 'Held'),
      h('span', null, h('i', { style: `background:${SOLD_COLOR};border:1px solid #c3c8d0` }), 'Sold'),
      h('span', null, h('i', { style: 'background:#111827;box-shadow:0 0 0 2px #fff inset' }), 'Your pick')));

  const quantity = h('select', { id: 'pick-count' }, Array.from({ length: MAX_SEATS }, (_, k) => h('option', { value: String(k + 1) }, String(k + 1))));
  quantity.value = '2';
  const sectionSelect = h('select', { id: 'pick-section' }, h('option', { value: '' }, 'Best available'));
  const pickForm = h('form', { class: 'card panel', 'aria-labelledby': 'pick-title', onsubmit: e => { e.preventDefault(); findSeats(); } },
    h('h2', { id: 'pick-title' }, 'Find seats for me'),
    h('div', { class: 'pick' },
      h('div', { class: 'field' }, h('label', { for: 'pick-count' }, 'Seats'), quantity),
      h('div', { class: 'field' }, h('label', { for: 'pick-section' }, 'Section'), sectionSelect),
      h('button', { class: 'btn secondary', type: 'submit' }, 'Find seats together')));

  const selectionList = h('ul', { class: 'selection', 'aria-label': 'Selected seats' });
  const totalLine = h('div', { class: 'total' });
  const holdButton = h('button', { class: 'btn block', type: 'button', onclick: () => hold() }, 'Hold seats');
  const selectionPanel = h('section', { class: 'card panel', 'aria-labelledby': 'sel-title' },
    h('h2', { id: 'sel-title' }, 'Your seats'), selectionList, totalLine, holdButton,
    h('p', { class: 'muted', style: 'font-size:.85rem;margin:.6rem 0 0' }, 'Seats are held for you for a few minutes while you pay.'));

  main.append(h('div', { class: 'layout' }, mapColumn, h('div', { class: 'side' }, selectionPanel, pickForm, legend)));
  view.ready();

  let holding = false;
  // What was picked before a sign in, restored once the map has loaded.
  let savedSelection = loadSelection(eventId);

  function renderSelection() {
    const tickets = map.n ? map.selectedTickets() : [];
    if (map.n) saveSelection(eventId, tickets.map(t => t.id));
    if (!tickets.length) {
      selectionList.replaceChildren(h('li', { class: 'muted' }, 'No seats selected yet.'));
    } else {
      selectionList.replaceChildren(...tickets.map(t => h('li', null,
        h('span', null, `Sec ${t.section} · Row ${t.row} · Seat ${t.seat}`, h('br'), h('span', { class: 'muted' }, moneyExact(t.priceCents))),
        h('button', { class: 'btn secondary small', type: 'button', 'aria-label': `Remove ${seatLabel(t)}`,
          onclick: () => { const i = map.indexOfId.get(t.id); if (i !== undefined) map.toggle(i); } }, 'Remove'))));
    }
    const total = tickets.reduce((sum, t) => sum + t.priceCents, 0);
    totalLine.replaceChildren(h('span', null, `Total (${plural(tickets.length, 'seat', 'seats')})`), h('span', null, moneyExact(total)));
    const session = getSession();
    holdButton.textContent = holding ? 'Holding…' : session ? (tickets.length ? `Hold ${plural(tickets.length, 'seat', 'seats')}` : 'Hold seats') : 'Sign in to hold seats';
    holdButton.disabled = holding || (session && !tickets.length);
  }

  function renderLegend() {
    legendList.replaceChildren(...map.tiers.map(tier => {
      const names = tier.sections.length > 4 ? `${tier.sections.slice(0, 4).join(', ')} +${tier.sections.length - 4} more` : tier.sections.join(', ');
      return h('li', null,
        h('span', { class: 'sw', style: `background:${tier.color}`, 'aria-hidden': 'true' }),
        h('span', null, h('b', null, moneyExact(tier.price)), h('span', { class: 'sections', title: tier.sections.join(', ') }, names)),
        h('span', { class: 'left' }, `${numberFormat.format(tier.available)} left`));
    }));
    const current = sectionSelect.value;
    const sorted = map.sections.slice().sort((a, b) => b.price - a.price || a.name.localeCompare(b.name, undefined, { numeric: true }));
    if (sectionSelect.options.length !== sorted.length + 1) {
      sectionSelect.replaceChildren(h('option', { value: '' }, 'Best available'),
        ...sorted.map(s => h('option', { value: s.name }, `${s.name} (${money(s.price)})`)));
      sectionSelect.value = current;
    }
  }

  function findSeats() {
    if (!map.n) return;
    const count = Number(quantity.value);
    const block = map.findBlock(count, sectionSelect.value || null);
    if (!block) {
      say('warn', `We could not find ${count} seats together${sectionSelect.value ? ` in section ${sectionSelect.value}` : ''}. Try fewer seats or another section.`);
      return;
    }
    map.setSelection(block);
    map.reveal(block[0]);
    const first = map.ticket(block[0]), last = map.ticket(block[block.length - 1]);
    const text = `Found ${plural(count, 'seat', 'seats')} together: section ${first.section}, row ${first.row}, seat${count > 1 ? `s ${first.seat}–${last.seat}` : ` ${first.seat}`}.`;
    say('success', text);
    announce(text);
  }

  async function hold() {
    const session = getSession();
    if (!session) { go(signInHash(`#/events/${encodeURIComponent(eventId)}`)); return; }
    const tickets = map.selectedTickets();
    if (!tickets.length || holding) return;
    holding = true;
    renderSelection();
    messages.replaceChildren();
    try {
      // An event behind the waiting room needs the admission the room page kept.
      const admission = JSON.parse(localStorage.getItem(`boxoffice.admission.${eventId}`) || 'null');
      const headers = admission && admission.expiresAt > Date.now() ? { 'Admission-Token': admission.token } : {};
      const booking = await api('POST', `/events/${encodeURIComponent(eventId)}/bookings`, { ticketIds: tickets.map(t => t.id) }, { auth: true, headers });
      const created = toMs(booking.createdAt);
      if (Number.isFinite(created) && Math.abs(created - Date.now()) > 2500) setClockSkew(created - Date.now());
      bookingCache.set(booking.bookingId, booking);
      rememberBooking(booking, event);
      saveSelection(eventId, []);
      map.selected.clear();
      go(`#/bookings/${encodeURIComponent(booking.bookingId)}`);
    } catch (error) {
      if (!view.alive) return;
      holding = false;
      if (error.status === 409 && Array.isArray(error.problem.unavailableTicketIds)) {
        const taken = error.problem.unavailableTicketIds;
        const labels = taken.map(id => map.indexOfId.get(id)).filter(i => i !== undefined).map(i => { const t = map.ticket(i); return `${t.section} ${t.row}-${t.seat}`; });
        map.markConflicts(taken);
        say('error', `${error.message}${labels.length ? ` Taken: ${labels.join(', ')} (circled in red on the map).` : ''} Your other seats are still selected.`, 'Some seats were just taken');
      } else if (error.status === 403 && error.problem && error.problem.waitingRoom) {
        location.href = `/waiting-room/${encodeURIComponent(eventId)}`;
      } else if (error.status === 401) {
        flashAfterNavigation('info', 'Your session has ended. Please sign in again to hold your seats.');
        go(signInHash(`#/events/${encodeURIComponent(eventId)}`));
      } else {
        say('error', errorText(error), 'Could not hold your seats');
      }
      renderSelection();
    }
  }

  // --- live updates: the layout once (immutable, so the browser keeps it), then the seat
  // stream: a snapshot, then a delta per change. EventSource reconnects by itself and sends
  // the last version it saw, so a short drop costs only the deltas it missed.
  function showLive(available) {
    live.classList.remove('paused');
    liveText.textContent = `Live: ${plural(available, 'seat', 'seats')} available of ${numberFormat.format(map.n)}. Updated ${dateFormats.time.format(new Date())}.`;
  }
  function sayLost(lost) {
    if (!lost.length) return;
    const labels = lost.map(i => { const t = map.ticket(i); return `${t.section} ${t.row}-${t.seat}`; });
    say('warn', `Someone else just took ${labels.join(', ')}. We removed ${lost.length === 1 ? 'it' : 'them'} from your selection.`);
  }
  function bits(base64, n) {
    const bytes = Uint8Array.from(atob(base64 || ''), c => c.charCodeAt(0));
    return i => (bytes[i >> 3] >> (i & 7)) & 1;
  }
  async function loadLayout() {
    try {
      const layout = await api('GET', `/events/${encodeURIComponent(eventId)}/layout`);
      if (!view.alive) return false;
      const list = [];
      for (const section of layout.sections || []) {
        for (const row of section.rows || []) {
          for (const [seat, x, y] of row.seats || []) {
            list.push({ id: list.length, section: section.name, row: row.name, seat, x, y, priceCents: section.priceCents, status: 'available' });
          }
        }
      }
      map.build(list);
      if (savedSelection.length) {
        const saved = savedSelection.map(id => map.indexOfId.get(id)).filter(i => i !== undefined);
        savedSelection = [];
        if (saved.length) map.setSelection(saved);
      }
      renderLegend();
      return true;
    } catch (error) {
      if (!view.alive) return false;
      live.classList.add('paused');
      liveText.textContent = `Could not load the seat map: ${errorText(error)}`;
      if (error.status === 404) map.loading.replaceChildren(h('span', null, 'This event has no seat map.'));
      return false;
    }
  }
  function follow() {
    const stream = new EventSource(`/events/${encodeURIComponent(eventId)}/seats/stream`);
    view.onDispose(() => stream.close());
    stream.addEventListener('snapshot', e => {
      const snapshot = JSON.parse(e.data);
      const held = bits(snapshot.held), sold = bits(snapshot.sold);
      const codes = new Uint8Array(map.n);
      for (let i = 0; i < map.n; i++) codes[i] = sold(i) ? 2 : held(i) ? 1 : 0;
      sayLost(map.setStatuses(codes));
      renderLegend();
      showLive(snapshot.availableCount);
    });
    stream.addEventListener('delta', e => {
      const delta = JSON.parse(e.data);
      sayLost(map.applyDelta(delta));
      renderLegend();
      showLive(delta.availableCount);
    });
    stream.onerror = () => {
      if (!view.alive) return;
      live.classList.add('paused');
      liveText.textContent = 'Live updates paused: reconnecting…';
    };
  }
  renderSelection();
  if (await loadLayout()) follow();
}
