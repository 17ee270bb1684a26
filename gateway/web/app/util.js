import { renderNav } from './router.js';

// ---------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------

export const MAX_SEATS = 8;
/** How often a booking whose payment is with the provider is looked at again, and for how long. */
export const PAYMENT_POLL_MS = 1000;
export const PAYMENT_WAIT_MS = 120000;
export const CATEGORIES = ['concert', 'sports', 'theater', 'comedy', 'family'];

export const $ = (selector, root = document) => root.querySelector(selector);

/** Builds an element: h('a', {href: '#/', class: 'x', onclick: f}, 'text', child). */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'value') el.value = value;
    // Through the CSSOM: the content security policy blocks style attributes, not this.
    else if (key === 'style') el.style.cssText = value;
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export const moneyFormat = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' });
export function money(cents) {
  const text = moneyFormat.format((cents || 0) / 100);
  return text.endsWith('.00') ? text.slice(0, -3) : text;
}
export function moneyExact(cents) { return moneyFormat.format((cents || 0) / 100); }

/** Milliseconds since the epoch from an RFC 3339 string or a number of milliseconds. */
export function toMs(value) {
  if (value === null || value === undefined || value === '') return NaN;
  if (typeof value === 'number') return value;
  if (/^\d+$/.test(value)) return Number(value);
  return Date.parse(value);
}

export const dateFormats = {
  long: new Intl.DateTimeFormat(undefined, { weekday: 'long', month: 'long', day: 'numeric', year: 'numeric' }),
  short: new Intl.DateTimeFormat(undefined, { weekday: 'short', month: 'short', day: 'numeric' }),
  time: new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' }),
  timeZone: new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit', timeZoneName: 'short' }),
  month: new Intl.DateTimeFormat(undefined, { month: 'short' }),
  weekday: new Intl.DateTimeFormat(undefined, { weekday: 'short' }),
};
export function fmtDate(value, kind) {
  const ms = toMs(value);
  return Number.isFinite(ms) ? dateFormats[kind].format(new Date(ms)) : '';
}
export const numberFormat = new Intl.NumberFormat();
export function plural(n, one, many) { return `${numberFormat.format(n)} ${n === 1 ? one : many}`; }
export function seatLabel(t) { return `Section ${t.section}, row ${t.row}, seat ${t.seat}`; }

export let announceTimer = 0;
/** Says something to screen readers without moving focus. */
export function announce(text) {
  const region = $('#announcer');
  clearTimeout(announceTimer);
  region.textContent = '';
  announceTimer = setTimeout(() => { region.textContent = text; }, 60);
}

/** A message box; kind is error, success, info or warn. */
export function message(kind, text, title) {
  const box = h('div', { class: `msg ${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('div', null, title ? h('strong', null, title) : null, text));
  return box;
}

/** A message at the top of the page that survives one navigation. */
export let pendingFlash = null;
export function flash(kind, text, title) {
  const area = $('#flash');
  area.replaceChildren();
  const box = message(kind, text, title);
  box.append(h('button', { class: 'close', type: 'button', 'aria-label': 'Dismiss message', onclick: () => box.remove() }, '\u00d7'));
  area.append(box);
}
export function takePendingFlash() { const pending = pendingFlash; pendingFlash = null; return pending; }
export function flashAfterNavigation(kind, text, title) { pendingFlash = { kind, text, title }; }

// ---------------------------------------------------------------------------------------
// Session and local memory
// ---------------------------------------------------------------------------------------

export const SESSION_KEY = 'boxoffice.session';
export const BOOKINGS_KEY = 'boxoffice.bookings';

export function getSession() {
  try {
    const s = JSON.parse(localStorage.getItem(SESSION_KEY) || 'null');
    if (!s || !s.token) return null;
    const expires = toMs(s.expiresAt);
    if (Number.isFinite(expires) && expires <= Date.now()) { localStorage.removeItem(SESSION_KEY); return null; }
    return s;
  } catch (e) { return null; }
}
export function setSession(session) {
  if (session) localStorage.setItem(SESSION_KEY, JSON.stringify(session));
  else localStorage.removeItem(SESSION_KEY);
  renderNav();
}

export function rememberBooking(booking, event) {
  const s = getSession();
  if (!s) return;
  let list = [];
  try { list = JSON.parse(localStorage.getItem(BOOKINGS_KEY) || '[]'); } catch (e) { list = []; }
  list = list.filter(b => b.id !== booking.bookingId);
  list.unshift({ id: booking.bookingId, userId: s.userId, eventId: booking.eventId, eventName: event ? event.name : '', startsAt: event ? event.startsAt : null, at: Date.now() });
  localStorage.setItem(BOOKINGS_KEY, JSON.stringify(list.slice(0, 30)));
}
export function rememberedBookings() {
  const s = getSession();
  try { return JSON.parse(localStorage.getItem(BOOKINGS_KEY) || '[]').filter(b => s && b.userId === s.userId); } catch (e) { return []; }
}

export function selectionKey(eventId) { return `boxoffice.selection.${eventId}`; }
export function saveSelection(eventId, ids) {
  try { sessionStorage.setItem(selectionKey(eventId), JSON.stringify(ids)); } catch (e) { /* private mode */ }
}
export function loadSelection(eventId) {
  try { return JSON.parse(sessionStorage.getItem(selectionKey(eventId)) || '[]'); } catch (e) { return []; }
}
