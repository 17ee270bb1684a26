import { api, errorText, eventCache } from './api.js';
import { $, CATEGORIES, dateFormats, fmtDate, h, message, money, plural, toMs } from './util.js';

// ---------------------------------------------------------------------------------------
// Event list
// ---------------------------------------------------------------------------------------

export function minPrice(event) {
  const prices = (event.sections || []).filter(s => s.seats === undefined || s.seats > 0).map(s => s.priceCents).filter(p => typeof p === 'number');
  return prices.length ? Math.min(...prices) : null;
}

export async function eventListView(main, view) {
  document.title = 'Upcoming events · Boxoffice';
  const state = { events: [], page: 0, hasMore: true, loading: false, category: 'all', search: '' };
  const grid = h('ul', { class: 'grid', 'aria-label': 'Events' });
  const status = h('p', { class: 'muted', role: 'status', 'aria-live': 'polite' });
  const moreButton = h('button', { class: 'btn secondary', type: 'button', onclick: () => loadPage() }, 'Show more events');
  const more = h('div', { class: 'more' });
  const errorArea = h('div');

  const searchInput = h('input', { type: 'search', id: 'search', placeholder: 'Artist, team, venue or city', autocomplete: 'off',
    oninput: () => { state.search = searchInput.value.trim().toLowerCase(); renderGrid(); } });
  const chips = h('fieldset', { class: 'chips' }, h('legend', null, 'Category'),
    ['all', ...CATEGORIES].map(c => h('label', { class: 'chip' },
      h('input', { type: 'radio', name: 'category', value: c, checked: c === 'all', onchange: () => { state.category = c; renderGrid(); } }),
      h('span', null, c === 'all' ? 'All' : c[0].toUpperCase() + c.slice(1)))));

  main.append(
    h('div', { class: 'list-head' },
      h('div', null, h('h1', null, 'Upcoming events'), h('p', { class: 'muted' }, 'Concerts, games, shows and more. Pick an event to choose your seats.')),
      h('div', { class: 'filters' },
        h('div', { class: 'field' }, h('label', { for: 'search' }, 'Search'), searchInput),
        chips)),
    errorArea, status, grid, more);
  view.ready();

  function matches(event) {
    if (state.category !== 'all' && event.category !== state.category) return false;
    if (!state.search) return true;
    const haystack = [event.name, event.description, event.category, event.venue && event.venue.name, event.venue && event.venue.city,
      ...(event.performers || []).map(p => p.name)].join(' ').toLowerCase();
    return haystack.includes(state.search);
  }

  function card(event) {
    const ms = toMs(event.startsAt);
    const date = new Date(ms);
    const from = minPrice(event);
    const performers = (event.performers || []).map(p => p.name).join(', ');
    return h('li', null, h('article', { class: 'card event-card' },
      h('div', { class: 'datebox', 'aria-hidden': 'true' },
        h('span', { class: 'm' }, Number.isFinite(ms) ? dateFormats.month.format(date) : ''),
        h('span', { class: 'd' }, Number.isFinite(ms) ? String(date.getDate()) : '?'),
        h('span', { class: 'w' }, Number.isFinite(ms) ? dateFormats.weekday.format(date) : '')),
      h('div', null,
        h('span', { class: `badge ${CATEGORIES.includes(event.category) ? event.category : ''}` }, event.category || 'event'),
        h('h2', null, h('a', { class: 'stretch', href: `#/events/${encodeURIComponent(event.id)}` }, event.name)),
        h('p', { class: 'meta' }, h('time', { datetime: event.startsAt }, `${fmtDate(event.startsAt, 'short')} · ${fmtDate(event.startsAt, 'time')}`)),
        h('p', { class: 'meta' }, event.venue ? `${event.venue.name}, ${event.venue.city}` : ''),
        performers ? h('p', { class: 'performers' }, performers) : null,
        from !== null ? h('p', { class: 'price' }, `from ${money(from)}`) : null)));
  }

  function renderGrid() {
    const shown = state.events.filter(matches);
    grid.replaceChildren(...shown.map(card));
    if (!state.loading) {
      if (state.events.length === 0) status.textContent = 'No events are on sale yet. Please check back soon.';
      else if (shown.length === 0) status.textContent = state.hasMore ? 'No loaded events match. Show more events to search further.' : 'No events match your search.';
      else status.textContent = `${plural(shown.length, 'event', 'events')}${state.hasMore ? ' so far' : ''}.`;
    }
    more.replaceChildren(state.hasMore && state.events.length ? moreButton : '');
  }

  async function loadPage() {
    if (state.loading || !state.hasMore) return;
    state.loading = true;
    moreButton.disabled = true;
    status.textContent = 'Loading events…';
    errorArea.replaceChildren();
    try {
      const data = await api('GET', `/events?page=${state.page + 1}&pageSize=20`);
      if (!view.alive) return;
      state.page += 1;
      const known = new Set(state.events.map(e => e.id));
      for (const event of data.events || []) {
        if (!known.has(event.id)) state.events.push(event);
        eventCache.set(String(event.id), event);
      }
      state.hasMore = Boolean(data.hasMore);
    } catch (error) {
      if (!view.alive) return;
      errorArea.replaceChildren(message('error', errorText(error), 'Could not load events'));
    } finally {
      state.loading = false;
      moreButton.disabled = false;
      if (view.alive) renderGrid();
    }
  }

  await loadPage();
}
