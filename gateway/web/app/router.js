import { errorText } from './api.js';
import { authView } from './auth.js';
import { bookingView, myBookingsView } from './booking.js';
import { eventView } from './event.js';
import { eventListView } from './events.js';
import { $, flash, flashAfterNavigation, getSession, h, message, setSession, takePendingFlash } from './util.js';

// ---------------------------------------------------------------------------------------
// Router
// ---------------------------------------------------------------------------------------

export let currentView = null;
export let firstRoute = true;

export function parseHash() {
  const hash = location.hash || '#/';
  const [path, query] = hash.slice(1).split('?');
  const parts = path.split('/').filter(Boolean).map(p => decodeURIComponent(p));
  return { parts, query: new URLSearchParams(query || ''), hash };
}

export function go(hash) {
  if (location.hash === hash) route(); else location.hash = hash;
}

export function signInHash(next) { return `#/signin?next=${encodeURIComponent(next || location.hash || '#/')}`; }

export function route() {
  const hash = location.hash || '#/';
  if (!hash.startsWith('#/')) return; // e.g. the skip link
  if (currentView) currentView.dispose();
  const { parts, query } = parseHash();
  const main = $('#main');
  main.replaceChildren();
  $('#flash').replaceChildren();
  const pending = takePendingFlash();
  if (pending) flash(pending.kind, pending.text, pending.title);

  const view = makeView();
  currentView = view;
  let render;
  if (parts.length === 0 || (parts[0] === 'events' && parts.length === 1)) render = () => eventListView(main, view);
  else if (parts[0] === 'events' && parts.length === 2) render = () => eventView(main, view, parts[1]);
  else if (parts[0] === 'signin') render = () => authView(main, view, 'signin', query.get('next'));
  else if (parts[0] === 'signup') render = () => authView(main, view, 'signup', query.get('next'));
  else if (parts[0] === 'bookings' && parts.length === 2) render = () => bookingView(main, view, parts[1]);
  else if (parts[0] === 'bookings') render = () => myBookingsView(main, view);
  else render = () => notFoundView(main);
  renderNav();
  view.wantsFocus = !firstRoute;
  if (!firstRoute) window.scrollTo(0, 0);
  firstRoute = false;
  Promise.resolve(render()).then(() => view.ready(), error => {
    if (!view.alive) return;
    main.replaceChildren(h('h1', null, 'Something went wrong'), message('error', errorText(error)),
      h('p', null, h('a', { href: '#/' }, 'Back to all events')));
    view.ready();
  });
}

export function makeView() {
  const cleanups = [];
  return {
    alive: true,
    wantsFocus: false,
    /** The page's heading is in place: move focus to it once, after a navigation. */
    ready() {
      if (!this.alive || !this.wantsFocus || !$('#main h1')) return;
      this.wantsFocus = false;
      focusHeading();
    },
    onDispose(fn) { cleanups.push(fn); },
    dispose() { this.alive = false; for (const fn of cleanups) { try { fn(); } catch (e) { /* ignore */ } } },
  };
}

/** Moves focus to the page's heading after a navigation, for keyboard and screen reader users. */
export function focusHeading() {
  requestAnimationFrame(() => {
    const heading = $('#main h1');
    if (heading) { heading.setAttribute('tabindex', '-1'); heading.focus({ preventScroll: true }); }
  });
}

export function renderNav() {
  const nav = $('#nav');
  const session = getSession();
  const { parts } = parseHash();
  const here = parts[0] || 'events';
  const link = (href, text, key) => h('a', { href, 'aria-current': here === key ? 'page' : null }, text);
  nav.replaceChildren(...[
    link('#/', 'Events', 'events'),
    session ? link('#/bookings', 'My bookings', 'bookings') : null,
    session
      ? [h('span', { class: 'who' }, `Signed in as ${session.email || 'you'}`),
         h('button', { class: 'linklike', type: 'button', onclick: signOut }, 'Sign out')]
      : [h('a', { href: signInHash(here === 'signin' || here === 'signup' ? '#/' : location.hash), 'aria-current': here === 'signin' ? 'page' : null }, 'Sign in'),
         h('a', { href: `#/signup?next=${encodeURIComponent(here === 'signin' || here === 'signup' ? '#/' : location.hash || '#/')}`, 'aria-current': here === 'signup' ? 'page' : null }, 'Sign up')],
  ].flat().filter(Boolean));
}

export function signOut() {
  setSession(null);
  flashAfterNavigation('info', 'You are signed out.');
  go('#/');
}

export function notFoundView(main) {
  document.title = 'Not found · Boxoffice';
  main.append(h('h1', null, 'Page not found'), h('p', null, 'There is nothing at this address. ', h('a', { href: '#/' }, 'See all events'), '.'));
}
