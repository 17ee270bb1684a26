import { renderNav, route } from './router.js';
import { $, SESSION_KEY } from './util.js';

// ---------------------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------------------

$('#skip').addEventListener('click', e => { e.preventDefault(); $('#main').focus(); });
window.addEventListener('hashchange', route);
window.addEventListener('storage', e => { if (e.key === SESSION_KEY) renderNav(); });
route();
