import { api, errorText } from './api.js';
import { go } from './router.js';
import { $, flashAfterNavigation, h, message, setSession } from './util.js';

// ---------------------------------------------------------------------------------------
// Sign in and sign up
// ---------------------------------------------------------------------------------------

export function safeNext(next) { return next && next.startsWith('#/') && !next.startsWith('#/signin') && !next.startsWith('#/signup') ? next : '#/'; }

export function authView(main, view, mode, next) {
  const signUp = mode === 'signup';
  const target = safeNext(next);
  document.title = `${signUp ? 'Create an account' : 'Sign in'} · Boxoffice`;
  const errors = h('div');
  const nameInput = h('input', { type: 'text', id: 'name', name: 'name', autocomplete: 'name', required: true, maxlength: '200' });
  const emailInput = h('input', { type: 'email', id: 'email', name: 'email', autocomplete: 'email', required: true, maxlength: '320' });
  const passwordInput = h('input', { type: 'password', id: 'password', name: 'password', autocomplete: signUp ? 'new-password' : 'current-password', required: true, minlength: signUp ? '8' : null, 'aria-describedby': signUp ? 'password-hint' : null });
  const submit = h('button', { class: 'btn block', type: 'submit' }, signUp ? 'Create account' : 'Sign in');
  const other = signUp
    ? h('p', null, 'Already have an account? ', h('a', { href: `#/signin?next=${encodeURIComponent(target)}` }, 'Sign in'))
    : h('p', null, 'New here? ', h('a', { href: `#/signup?next=${encodeURIComponent(target)}` }, 'Create an account'));

  const form = h('form', { class: 'card panel', novalidate: true, onsubmit: e => { e.preventDefault(); send(); } },
    signUp ? h('div', { class: 'field' }, h('label', { for: 'name' }, 'Your name'), nameInput) : null,
    h('div', { class: 'field' }, h('label', { for: 'email' }, 'Email'), emailInput),
    h('div', { class: 'field' }, h('label', { for: 'password' }, 'Password'), passwordInput,
      signUp ? h('span', { class: 'hint', id: 'password-hint' }, 'At least 8 characters.') : null),
    submit);
  main.append(h('div', { class: 'auth' },
    h('h1', null, signUp ? 'Create your account' : 'Sign in'),
    h('p', { class: 'muted' }, signUp ? 'An account lets you hold seats and pay for them.' : 'Sign in to hold seats and pay for them.'),
    errors, form, other));
  view.ready();

  function invalid(input, text) {
    input.setAttribute('aria-invalid', 'true');
    errors.replaceChildren(message('error', text));
    input.focus();
    return false;
  }

  function check() {
    for (const input of [nameInput, emailInput, passwordInput]) input.removeAttribute('aria-invalid');
    if (signUp && !nameInput.value.trim()) return invalid(nameInput, 'Please enter your name.');
    if (!emailInput.value.trim() || !emailInput.checkValidity()) return invalid(emailInput, 'Please enter a valid email address.');
    if (!passwordInput.value) return invalid(passwordInput, 'Please enter your password.');
    if (signUp && passwordInput.value.length < 8) return invalid(passwordInput, 'Please choose a password of at least 8 characters.');
    return true;
  }

  async function send() {
    if (!check()) return;
    submit.disabled = true;
    submit.replaceChildren(h('span', { class: 'spinner', 'aria-hidden': 'true' }), signUp ? ' Creating account…' : ' Signing in…');
    errors.replaceChildren();
    const email = emailInput.value.trim();
    try {
      if (signUp) await api('POST', '/users', { name: nameInput.value.trim(), email, password: passwordInput.value });
      const session = await api('POST', '/sessions', { email, password: passwordInput.value });
      if (!view.alive) return;
      setSession({ token: session.token, userId: session.userId, expiresAt: session.expiresAt, email });
      flashAfterNavigation('success', signUp ? `Welcome! Your account is ready and you are signed in as ${email}.` : `Signed in as ${email}.`);
      go(target);
    } catch (error) {
      if (!view.alive) return;
      submit.disabled = false;
      submit.textContent = signUp ? 'Create account' : 'Sign in';
      if (signUp && error.status === 409) {
        errors.replaceChildren(message('error', h('span', null, `${error.message} `, h('a', { href: `#/signin?next=${encodeURIComponent(target)}` }, 'Sign in instead'), '.'), 'That email is taken'));
        emailInput.setAttribute('aria-invalid', 'true');
        emailInput.focus();
      } else if (error.status === 401 || error.status === 403) {
        errors.replaceChildren(message('error', error.message || 'The email or password is not right.', 'Could not sign you in'));
        passwordInput.focus();
      } else {
        errors.replaceChildren(message('error', errorText(error), signUp ? 'Could not create your account' : 'Could not sign you in'));
      }
    }
  }
}
