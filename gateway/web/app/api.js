import { $, getSession, setSession } from './util.js';

// ---------------------------------------------------------------------------------------
// The API
// ---------------------------------------------------------------------------------------

/** A problem's detail as a sentence: servers often write them in lower case without a stop. */
export function sentence(text) {
  const t = String(text || '').trim();
  if (!t) return '';
  const capital = t[0].toUpperCase() + t.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

export class ApiError extends Error {
  constructor(status, problem) {
    super(sentence(problem && (problem.detail || problem.title)) || `The box office answered ${status}.`);
    this.status = status;
    this.problem = problem || {};
  }
}

/** The server's clock minus ours, in ms, from the Date header when they differ by seconds. */
export let clockSkew = 0;
export function noteServerDate(response) {
  const date = Date.parse(response.headers.get('Date') || '');
  if (!Number.isFinite(date)) return;
  const skew = date - Date.now();
  clockSkew = Math.abs(skew) > 2500 ? skew : 0;
}
export function setClockSkew(ms) { clockSkew = ms; }
export function serverNow() { return Date.now() + clockSkew; }

export async function api(method, path, body, options = {}) {
  const headers = { Accept: 'application/json, application/problem+json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const session = getSession();
  if (options.auth) {
    if (!session) throw new ApiError(401, { title: 'Sign in needed', detail: 'Please sign in to continue.' });
    headers.Authorization = `Bearer ${session.token}`;
  }
  Object.assign(headers, options.headers || {});
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, { title: 'Connection problem', detail: 'We could not reach the box office. Check your connection and try again.' });
  }
  noteServerDate(response);
  const text = await response.text();
  let data = null;
  if (text) { try { data = JSON.parse(text); } catch (e) { data = null; } }
  if (!response.ok) {
    const problem = data && typeof data === 'object' ? data : { title: response.statusText, detail: text.slice(0, 300) || undefined };
    if (response.status === 401 && options.auth) {
      setSession(null);
      problem.detail = problem.detail || 'Your session has ended. Please sign in again.';
    }
    if (response.status >= 500 && !problem.detail) problem.detail = 'The box office is having trouble right now. Please try again in a moment.';
    throw new ApiError(response.status, problem);
  }
  return data;
}

export function errorText(error) {
  if (error instanceof ApiError) return error.message;
  return 'Something went wrong. Please try again.';
}

export const eventCache = new Map();
export async function getEvent(id) {
  if (eventCache.has(String(id))) return eventCache.get(String(id));
  const event = await api('GET', `/events/${encodeURIComponent(id)}`);
  eventCache.set(String(id), event);
  return event;
}

export const bookingCache = new Map();
