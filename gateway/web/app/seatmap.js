import { $, MAX_SEATS, announce, h, moneyExact, plural, seatLabel } from './util.js';

// ---------------------------------------------------------------------------------------
// The seat map: a canvas for the seats, a canvas on top for selection, hover and focus
// ---------------------------------------------------------------------------------------

export const TIER_COLORS = ['#6d28d9', '#db2777', '#ea580c', '#0e7490', '#15803d', '#b45309', '#1d4ed8', '#be123c', '#7c3aed', '#047857', '#a21caf', '#4d7c0f'];
export const HELD_COLOR = '#a9b0bc';
export const SOLD_COLOR = '#dde1e7';
export const STATUS_CODE = { available: 0, held: 1, sold: 2 };

export class SeatMap {
  constructor(options) {
    this.onSelectionChange = options.onSelectionChange || (() => {});
    this.onMessage = options.onMessage || (() => {});
    this.wrap = h('div', { class: 'map-wrap' });
    this.base = h('canvas', { 'aria-hidden': 'true' });
    this.over = h('canvas', {
      class: 'over', tabindex: '0', role: 'application', 'aria-roledescription': 'seat map',
      'aria-label': 'Seat map. Arrow keys move between seats, Enter or Space selects a seat, plus and minus zoom, zero shows the whole venue.',
      'aria-describedby': 'map-help',
    });
    this.tip = h('div', { class: 'map-tip', hidden: true, 'aria-hidden': 'true' });
    this.loading = h('div', { class: 'map-loading' }, h('span', null, h('span', { class: 'spinner', 'aria-hidden': 'true' }), ' Loading the seat map…'));
    this.wrap.append(this.base, this.over, this.tip, this.loading);
    this.wrap.style.height = '420px';
    this.n = 0;
    this.selected = new Set();  // indexes
    this.conflicts = new Set(); // indexes, highlighted after a failed hold
    this.hover = -1;
    this.focusIndex = -1;
    this.focused = false;
    this.view = { scale: 1, ox: 0, oy: 0 };
    this.userMoved = false;
    this.frame = 0;
    this.pointers = new Map();
    this.bindEvents();
    this.resizeObserver = new ResizeObserver(() => this.resize());
    this.resizeObserver.observe(this.wrap);
  }

  destroy() { this.resizeObserver.disconnect(); cancelAnimationFrame(this.frame); }

  // --- data

  /** Takes a tickets answer; returns the selected tickets that stopped being available. */
  update(tickets) {
    let list = tickets;
    for (let i = 1; i < tickets.length; i++) {
      if (tickets[i].id < tickets[i - 1].id) { list = tickets.slice().sort((a, b) => a.id - b.id); break; }
    }
    const sameShape = list.length === this.n && list.every((t, i) => t.id === this.ids[i]);
    if (!sameShape) { this.build(list); return []; }
    let changed = false;
    const lost = [];
    for (let i = 0; i < list.length; i++) {
      const code = STATUS_CODE[list[i].status] ?? 2;
      if (code !== this.status[i]) {
        this.status[i] = code;
        changed = true;
        if (code !== 0 && this.selected.has(i)) { this.selected.delete(i); lost.push(i); }
      }
    }
    if (changed) { this.computeTierCounts(); this.requestDraw(true); }
    if (lost.length) this.onSelectionChange();
    return lost;
  }

  /** Sets every seat's status (codes in ticket order); returns the selected seats taken. */
  setStatuses(codes) {
    const lost = [];
    let changed = false;
    for (let i = 0; i < this.n; i++) {
      const code = codes[i] ?? 0;
      if (code !== this.status[i]) { changed = true; this.setOne(i, code, lost); }
    }
    return this.finishChanges(changed, lost);
  }

  /** Applies a delta of the seat stream; returns the selected seats taken. */
  applyDelta(delta) {
    const lost = [];
    let changed = false;
    for (const [key, code] of [['available', 0], ['held', 1], ['sold', 2]]) {
      for (const id of delta[key] || []) {
        const i = this.indexOfId.get(id);
        if (i !== undefined && this.status[i] !== code) { changed = true; this.setOne(i, code, lost); }
      }
    }
    return this.finishChanges(changed, lost);
  }

  setOne(i, code, lost) {
    this.status[i] = code;
    if (code !== 0 && this.selected.has(i)) { this.selected.delete(i); lost.push(i); }
  }

  finishChanges(changed, lost) {
    if (changed) { this.computeTierCounts(); this.requestDraw(true); }
    if (lost.length) this.onSelectionChange();
    return lost;
  }

  build(list) {
    const n = list.length;
    const previouslySelected = this.n ? [...this.selected].map(i => this.ids[i]) : [];
    this.n = n;
    this.ids = list.map(t => t.id);
    this.indexOfId = new Map(this.ids.map((id, i) => [id, i]));
    this.xs = new Float64Array(n);
    this.ys = new Float64Array(n);
    this.price = new Float64Array(n);
    this.status = new Uint8Array(n);
    this.sec = new Uint16Array(n);
    this.rowName = new Array(n);
    this.seatName = new Array(n);
    this.sections = [];
    const sectionIndex = new Map();
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    for (let i = 0; i < n; i++) {
      const t = list[i];
      const x = Number(t.x), y = Number(t.y);
      this.xs[i] = Number.isFinite(x) ? x : 0;
      this.ys[i] = Number.isFinite(y) ? y : 0;
      this.price[i] = t.priceCents || 0;
      this.status[i] = STATUS_CODE[t.status] ?? 2;
      this.rowName[i] = String(t.row);
      this.seatName[i] = String(t.seat);
      let s = sectionIndex.get(t.section);
      if (s === undefined) {
        s = this.sections.length;
        sectionIndex.set(t.section, s);
        this.sections.push({ name: String(t.section), price: t.priceCents || 0, count: 0, sx: 0, sy: 0, minX: Infinity, minY: Infinity, maxX: -Infinity, maxY: -Infinity, rows: [] });
      }
      this.sec[i] = s;
      const section = this.sections[s];
      section.count++; section.sx += this.xs[i]; section.sy += this.ys[i];
      section.minX = Math.min(section.minX, this.xs[i]); section.maxX = Math.max(section.maxX, this.xs[i]);
      section.minY = Math.min(section.minY, this.ys[i]); section.maxY = Math.max(section.maxY, this.ys[i]);
      const lastRow = section.rows[section.rows.length - 1];
      if (lastRow && lastRow.name === this.rowName[i] && lastRow.end === i) lastRow.end = i + 1;
      else section.rows.push({ name: this.rowName[i], start: i, end: i + 1 });
      minX = Math.min(minX, this.xs[i]); maxX = Math.max(maxX, this.xs[i]);
      minY = Math.min(minY, this.ys[i]); maxY = Math.max(maxY, this.ys[i]);
    }
    if (!n) { minX = minY = 0; maxX = maxY = 1; }
    this.bounds = { minX, minY, maxX, maxY };
    this.spacing = this.estimateSpacing();

    // Price tiers, most expensive first.
    const prices = [...new Set(this.sections.map(s => s.price))].sort((a, b) => b - a);
    this.tiers = prices.map((p, i) => ({ price: p, color: TIER_COLORS[i % TIER_COLORS.length], sections: [], available: 0, total: 0 }));
    const tierOfPrice = new Map(prices.map((p, i) => [p, i]));
    this.tierOf = new Uint8Array(n);
    for (let i = 0; i < n; i++) this.tierOf[i] = tierOfPrice.get(this.price[i]) ?? 0;
    for (const section of this.sections) this.tiers[tierOfPrice.get(section.price)].sections.push(section.name);
    this.computeTierCounts();
    this.buildGrid();

    this.selected = new Set(previouslySelected.map(id => this.indexOfId.get(id)).filter(i => i !== undefined && this.status[i] === 0));
    this.conflicts = new Set();
    this.hover = -1;
    this.focusIndex = -1;
    this.loading.remove();
    this.sizeToAspect();
    this.fit();
    this.onSelectionChange();
  }

  computeTierCounts() {
    for (const tier of this.tiers) { tier.available = 0; tier.total = 0; }
    let available = 0;
    for (let i = 0; i < this.n; i++) {
      const tier = this.tiers[this.tierOf[i]];
      tier.total++;
      if (this.status[i] === 0) { tier.available++; available++; }
    }
    this.available = available;
  }

  /** The typical distance between neighbouring seats in a row, in venue units. */
  estimateSpacing() {
    const distances = [];
    const step = Math.max(1, Math.floor(this.n / 4000));
    for (let i = 0; i + 1 < this.n; i += step) {
      if (this.sec[i] === this.sec[i + 1] && this.rowName[i] === this.rowName[i + 1]) {
        const d = Math.hypot(this.xs[i + 1] - this.xs[i], this.ys[i + 1] - this.ys[i]);
        if (d > 0) distances.push(d);
      }
    }
    if (distances.length) {
      distances.sort((a, b) => a - b);
      return distances[Math.floor(distances.length / 2)];
    }
    const { minX, minY, maxX, maxY } = this.bounds;
    return Math.max(1e-6, Math.sqrt(((maxX - minX) || 1) * ((maxY - minY) || 1) / Math.max(1, this.n)));
  }

  /** A uniform grid of seat indexes for hit testing and keyboard moves. */
  buildGrid() {
    const { minX, minY, maxX, maxY } = this.bounds;
    let cell = this.spacing * 2;
    let cols = Math.floor((maxX - minX) / cell) + 1;
    let rows = Math.floor((maxY - minY) / cell) + 1;
    if (cols * rows > 2e6) {
      cell *= Math.sqrt(cols * rows / 2e6);
      cols = Math.floor((maxX - minX) / cell) + 1;
      rows = Math.floor((maxY - minY) / cell) + 1;
    }
    const cellOf = new Int32Array(this.n);
    const starts = new Int32Array(cols * rows + 1);
    for (let i = 0; i < this.n; i++) {
      const c = Math.min(cols - 1, Math.floor((this.xs[i] - minX) / cell)) + cols * Math.min(rows - 1, Math.floor((this.ys[i] - minY) / cell));
      cellOf[i] = c;
      starts[c + 1]++;
    }
    for (let c = 0; c < cols * rows; c++) starts[c + 1] += starts[c];
    const fill = starts.slice(0, cols * rows);
    const items = new Int32Array(this.n);
    for (let i = 0; i < this.n; i++) items[fill[cellOf[i]]++] = i;
    this.grid = { cell, cols, rows, starts, items };
  }

  /** Calls fn(index) for every seat within `radius` venue units of (x, y)'s cells. */
  forEachNear(x, y, radius, fn) {
    const g = this.grid;
    const { minX, minY } = this.bounds;
    const c0 = Math.max(0, Math.floor((x - radius - minX) / g.cell)), c1 = Math.min(g.cols - 1, Math.floor((x + radius - minX) / g.cell));
    const r0 = Math.max(0, Math.floor((y - radius - minY) / g.cell)), r1 = Math.min(g.rows - 1, Math.floor((y + radius - minY) / g.cell));
    for (let r = r0; r <= r1; r++) {
      for (let c = c0; c <= c1; c++) {
        const cellIndex = c + r * g.cols;
        for (let k = g.starts[cellIndex]; k < g.starts[cellIndex + 1]; k++) fn(g.items[k]);
      }
    }
  }

  seatAt(px, py) {
    if (!this.n) return -1;
    const x = (px - this.view.ox) / this.view.scale, y = (py - this.view.oy) / this.view.scale;
    const radius = Math.max(this.spacing * 0.75, 7 / this.view.scale);
    let best = -1, bestDistance = radius;
    this.forEachNear(x, y, radius, i => {
      const d = Math.hypot(this.xs[i] - x, this.ys[i] - y);
      if (d <= bestDistance) { bestDistance = d; best = i; }
    });
    return best;
  }

  ticket(i) {
    return { id: this.ids[i], section: this.sections[this.sec[i]].name, row: this.rowName[i], seat: this.seatName[i], priceCents: this.price[i], status: ['available', 'held', 'sold'][this.status[i]] };
  }

  // --- view

  sizeToAspect() {
    const { minX, minY, maxX, maxY } = this.bounds;
    const width = this.wrap.clientWidth || 800;
    const aspect = ((maxY - minY) + this.spacing * 4) / ((maxX - minX) + this.spacing * 4);
    const maxHeight = Math.max(320, Math.min(760, window.innerHeight * 0.72));
    this.wrap.style.height = `${Math.round(Math.max(320, Math.min(maxHeight, width * aspect)))}px`;
  }

  resize() {
    const width = this.wrap.clientWidth, height = this.wrap.clientHeight;
    if (!width || !height) return;
    const dpr = window.devicePixelRatio || 1;
    for (const canvas of [this.base, this.over]) {
      canvas.width = Math.round(width * dpr);
      canvas.height = Math.round(height * dpr);
      canvas.style.width = `${width}px`;
      canvas.style.height = `${height}px`;
    }
    this.cssWidth = width; this.cssHeight = height; this.dpr = dpr;
    if (!this.userMoved) this.fit(); else this.requestDraw(true);
  }

  fit() {
    if (!this.n || !this.cssWidth) { this.requestDraw(true); return; }
    const { minX, minY, maxX, maxY } = this.bounds;
    const pad = 16;
    const w = Math.max(maxX - minX, this.spacing), hgt = Math.max(maxY - minY, this.spacing);
    const scale = Math.min((this.cssWidth - 2 * pad) / w, (this.cssHeight - 2 * pad) / hgt);
    this.fitScale = scale;
    this.view = { scale, ox: (this.cssWidth - w * scale) / 2 - minX * scale, oy: (this.cssHeight - hgt * scale) / 2 - minY * scale };
    this.userMoved = false;
    this.requestDraw(true);
  }

  zoom(factor, cx = this.cssWidth / 2, cy = this.cssHeight / 2) {
    if (!this.n) return;
    const min = this.fitScale * 0.8, max = Math.max(this.fitScale * 60, 40 / this.spacing);
    const scale = Math.min(max, Math.max(min, this.view.scale * factor));
    const k = scale / this.view.scale;
    this.view = { scale, ox: cx - (cx - this.view.ox) * k, oy: cy - (cy - this.view.oy) * k };
    this.userMoved = true;
    this.requestDraw(true);
  }

  pan(dx, dy) {
    this.view.ox += dx; this.view.oy += dy;
    this.userMoved = true;
    this.requestDraw(true);
  }

  /** Pans so that seat i is on screen. */
  reveal(i) {
    const px = this.xs[i] * this.view.scale + this.view.ox, py = this.ys[i] * this.view.scale + this.view.oy;
    const margin = 30;
    let dx = 0, dy = 0;
    if (px < margin) dx = margin - px; else if (px > this.cssWidth - margin) dx = this.cssWidth - margin - px;
    if (py < margin) dy = margin - py; else if (py > this.cssHeight - margin) dy = this.cssHeight - margin - py;
    if (dx || dy) this.pan(dx, dy);
  }

  requestDraw(base) {
    this.needBase = this.needBase || base;
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      if (this.needBase) this.drawBase();
      this.needBase = false;
      this.drawOverlay();
    });
  }

  seatRadius() { return Math.max(0.6, Math.min(this.spacing * this.view.scale * 0.42, 9)); }

  drawBase() {
    const ctx = this.base.getContext('2d');
    if (!ctx || !this.cssWidth) return;
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    ctx.clearRect(0, 0, this.cssWidth, this.cssHeight);
    if (!this.n) return;
    const { scale, ox, oy } = this.view;
    const r = this.seatRadius();
    const colors = this.tiers.map(t => t.color).concat([HELD_COLOR, SOLD_COLOR]);
    const held = this.tiers.length, sold = this.tiers.length + 1;
    // Sort the visible seats by colour (a counting sort), then fill each colour in one go.
    if (!this.colorOf || this.colorOf.length !== this.n) { this.colorOf = new Uint8Array(this.n); this.order = new Int32Array(this.n); }
    const colorOf = this.colorOf, order = this.order;
    const starts = new Int32Array(colors.length + 1);
    const right = this.cssWidth + r, bottom = this.cssHeight + r;
    for (let i = 0; i < this.n; i++) {
      const x = this.xs[i] * scale + ox, y = this.ys[i] * scale + oy;
      if (x < -r || y < -r || x > right || y > bottom) { colorOf[i] = 255; continue; }
      const c = this.status[i] === 0 ? this.tierOf[i] : this.status[i] === 1 ? held : sold;
      colorOf[i] = c;
      starts[c + 1]++;
    }
    for (let c = 0; c < colors.length; c++) starts[c + 1] += starts[c];
    const next = starts.slice(0, colors.length);
    for (let i = 0; i < this.n; i++) if (colorOf[i] !== 255) order[next[colorOf[i]]++] = i;
    // Unavailable seats first, so that available ones stand out on top.
    const drawOrder = [sold, held, ...this.tiers.map((_, i) => i)];
    for (const c of drawOrder) {
      if (starts[c] === starts[c + 1]) continue;
      ctx.fillStyle = colors[c];
      if (r < 1.6) {
        const size = Math.max(1, r * 2), half = size / 2;
        for (let k = starts[c]; k < starts[c + 1]; k++) {
          const i = order[k];
          ctx.fillRect(this.xs[i] * scale + ox - half, this.ys[i] * scale + oy - half, size, size);
        }
      } else {
        ctx.beginPath();
        for (let k = starts[c]; k < starts[c + 1]; k++) {
          const i = order[k];
          const x = this.xs[i] * scale + ox, y = this.ys[i] * scale + oy;
          ctx.moveTo(x + r, y);
          ctx.arc(x, y, r, 0, Math.PI * 2);
        }
        ctx.fill();
      }
    }
    // Section names while the seats are small.
    if (r < 2.5 && this.sections.length <= 400) {
      ctx.font = '600 12px system-ui, sans-serif';
      ctx.textAlign = 'center';
      ctx.textBaseline = 'middle';
      ctx.lineJoin = 'round';
      for (const section of this.sections) {
        const widthPx = (section.maxX - section.minX) * scale, heightPx = (section.maxY - section.minY) * scale;
        const label = section.name;
        const textWidth = ctx.measureText(label).width;
        if (widthPx < textWidth + 6 && heightPx < textWidth + 6) continue;
        if (Math.max(widthPx, heightPx) < 18) continue;
        const x = section.sx / section.count * scale + ox, y = section.sy / section.count * scale + oy;
        ctx.lineWidth = 4;
        ctx.strokeStyle = 'rgba(255,255,255,.92)';
        ctx.strokeText(label, x, y);
        ctx.fillStyle = '#1f2430';
        ctx.fillText(label, x, y);
      }
    }
  }

  drawOverlay() {
    const ctx = this.over.getContext('2d');
    if (!ctx || !this.cssWidth) return;
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    ctx.clearRect(0, 0, this.cssWidth, this.cssHeight);
    if (!this.n) return;
    const { scale, ox, oy } = this.view;
    const r = Math.max(this.seatRadius(), 3.5);
    const at = i => [this.xs[i] * scale + ox, this.ys[i] * scale + oy];
    for (const i of this.conflicts) {
      const [x, y] = at(i);
      ctx.beginPath(); ctx.arc(x, y, r + 3, 0, Math.PI * 2);
      ctx.lineWidth = 3; ctx.strokeStyle = '#dc2626'; ctx.stroke();
    }
    for (const i of this.selected) {
      const [x, y] = at(i);
      ctx.beginPath(); ctx.arc(x, y, r + 1.5, 0, Math.PI * 2);
      ctx.fillStyle = '#111827'; ctx.fill();
      ctx.lineWidth = 2; ctx.strokeStyle = '#ffffff'; ctx.stroke();
      ctx.beginPath(); ctx.arc(x, y, r + 4, 0, Math.PI * 2);
      ctx.lineWidth = 2; ctx.strokeStyle = '#111827'; ctx.stroke();
    }
    if (this.hover >= 0) {
      const [x, y] = at(this.hover);
      ctx.beginPath(); ctx.arc(x, y, r + 3, 0, Math.PI * 2);
      ctx.lineWidth = 2.5; ctx.strokeStyle = '#111827'; ctx.stroke();
    }
    if (this.focused && this.focusIndex >= 0) {
      const [x, y] = at(this.focusIndex);
      ctx.beginPath(); ctx.arc(x, y, r + 6, 0, Math.PI * 2);
      ctx.setLineDash([4, 3]);
      ctx.lineWidth = 2.5; ctx.strokeStyle = '#1d4ed8'; ctx.stroke();
      ctx.setLineDash([]);
    }
  }

  // --- selection

  toggle(i) {
    if (i < 0) return;
    const t = this.ticket(i);
    if (this.selected.has(i)) {
      this.selected.delete(i);
      announce(`Removed ${seatLabel(t)}. ${plural(this.selected.size, 'seat', 'seats')} selected.`);
    } else if (this.status[i] !== 0) {
      this.onMessage('info', `${seatLabel(t)} is ${t.status === 'held' ? 'held by someone else' : 'sold'}. Please pick an available seat.`);
      announce(`${seatLabel(t)} is not available.`);
      return;
    } else if (this.selected.size >= MAX_SEATS) {
      this.onMessage('warn', `You can hold up to ${MAX_SEATS} seats at a time. Remove one to pick another.`);
      announce(`You already have ${MAX_SEATS} seats selected.`);
      return;
    } else {
      this.selected.add(i);
      this.conflicts.delete(i);
      announce(`Selected ${seatLabel(t)}, ${moneyExact(t.priceCents)}. ${plural(this.selected.size, 'seat', 'seats')} selected.`);
    }
    this.requestDraw(false);
    this.onSelectionChange();
  }

  setSelection(indexes) {
    this.selected = new Set(indexes.filter(i => i >= 0 && i < this.n && this.status[i] === 0).slice(0, MAX_SEATS));
    this.requestDraw(false);
    this.onSelectionChange();
  }

  selectedTickets() { return [...this.selected].sort((a, b) => a - b).map(i => this.ticket(i)); }

  markConflicts(ids) {
    this.conflicts = new Set(ids.map(id => this.indexOfId.get(id)).filter(i => i !== undefined));
    for (const i of this.conflicts) this.selected.delete(i);
    this.requestDraw(false);
    this.onSelectionChange();
  }

  /** The best block of `count` seats side by side: in `sectionName`, or in the dearest section that has one. */
  findBlock(count, sectionName) {
    const sections = this.sections.filter(s => !sectionName || s.name === sectionName).sort((a, b) => b.price - a.price);
    const gap = this.spacing * 1.7;
    for (const section of sections) {
      for (const row of section.rows) {
        const runs = [];
        let run = [];
        for (let i = row.start; i < row.end; i++) {
          const free = this.status[i] === 0;
          const adjacent = run.length && Math.hypot(this.xs[i] - this.xs[i - 1], this.ys[i] - this.ys[i - 1]) <= gap;
          if (free && (adjacent || !run.length)) run.push(i);
          else { if (run.length) runs.push(run); run = free ? [i] : []; }
        }
        if (run.length) runs.push(run);
        const middle = (row.start + row.end - 1) / 2;
        let best = null, bestScore = Infinity;
        for (const r of runs) {
          for (let k = 0; k + count <= r.length; k++) {
            const score = Math.abs(r[k] + (count - 1) / 2 - middle);
            if (score < bestScore) { bestScore = score; best = r.slice(k, k + count); }
          }
        }
        if (best) return best;
      }
    }
    return null;
  }

  // --- input

  bindEvents() {
    const over = this.over;
    const local = e => { const rect = over.getBoundingClientRect(); return [e.clientX - rect.left, e.clientY - rect.top]; };
    over.addEventListener('pointerdown', e => {
      over.setPointerCapture(e.pointerId);
      this.pointers.set(e.pointerId, local(e));
      this.drag = { start: local(e), moved: false, last: local(e) };
      if (this.pointers.size === 2) this.pinch = this.pinchDistance();
    });
    over.addEventListener('pointermove', e => {
      const p = local(e);
      if (this.pointers.has(e.pointerId)) {
        this.pointers.set(e.pointerId, p);
        if (this.pointers.size === 2 && this.pinch) {
          const d = this.pinchDistance();
          const [a, b] = [...this.pointers.values()];
          this.zoom(d / this.pinch, (a[0] + b[0]) / 2, (a[1] + b[1]) / 2);
          this.pinch = d;
          if (this.drag) this.drag.moved = true;
          return;
        }
        if (this.drag) {
          if (!this.drag.moved && Math.hypot(p[0] - this.drag.start[0], p[1] - this.drag.start[1]) > 4) { this.drag.moved = true; over.classList.add('dragging'); }
          if (this.drag.moved) { this.pan(p[0] - this.drag.last[0], p[1] - this.drag.last[1]); this.hideTip(); }
          this.drag.last = p;
          if (this.drag.moved) return;
        }
      }
      if (e.pointerType === 'mouse') this.hoverAt(p);
    });
    const end = e => {
      const p = local(e);
      const wasClick = this.drag && !this.drag.moved && this.pointers.size === 1;
      this.pointers.delete(e.pointerId);
      if (this.pointers.size < 2) this.pinch = null;
      over.classList.remove('dragging');
      if (e.type === 'pointerup' && wasClick) {
        const i = this.seatAt(p[0], p[1]);
        if (i >= 0) { this.focusIndex = i; this.toggle(i); if (e.pointerType !== 'mouse') this.showTip(i, p); }
      }
      if (this.pointers.size === 0) this.drag = null;
    };
    over.addEventListener('pointerup', end);
    over.addEventListener('pointercancel', end);
    over.addEventListener('pointerleave', e => { if (e.pointerType === 'mouse') { this.hover = -1; this.hideTip(); this.requestDraw(false); } });
    over.addEventListener('wheel', e => {
      if (!this.n) return;
      e.preventDefault();
      const [x, y] = local(e);
      const delta = e.deltaMode === 1 ? e.deltaY * 16 : e.deltaY;
      this.zoom(Math.exp(-delta * 0.0015), x, y);
      this.hideTip();
    }, { passive: false });
    over.addEventListener('focus', () => {
      this.focused = true;
      if (this.focusIndex < 0 && this.n) this.focusIndex = this.firstAvailableNearCentre();
      if (this.focusIndex >= 0) this.describeFocus();
      this.requestDraw(false);
    });
    over.addEventListener('blur', () => { this.focused = false; this.hideTip(); this.requestDraw(false); });
    over.addEventListener('keydown', e => this.onKey(e));
  }

  pinchDistance() {
    const [a, b] = [...this.pointers.values()];
    return Math.hypot(a[0] - b[0], a[1] - b[1]) || 1;
  }

  hoverAt(p) {
    const i = this.seatAt(p[0], p[1]);
    if (i !== this.hover) { this.hover = i; this.requestDraw(false); }
    if (i >= 0) this.showTip(i, p); else this.hideTip();
  }

  showTip(i, p) {
    const t = this.ticket(i);
    const state = this.selected.has(i) ? 'selected' : t.status === 'held' ? 'held' : t.status;
    this.tip.replaceChildren(h('b', null, `Section ${t.section}`), ` · Row ${t.row} · Seat ${t.seat}`, h('br'), `${moneyExact(t.priceCents)} · ${state}`);
    this.tip.hidden = false;
    const x = p ? p[0] : this.xs[i] * this.view.scale + this.view.ox;
    const y = p ? p[1] : this.ys[i] * this.view.scale + this.view.oy;
    const tw = this.tip.offsetWidth, th = this.tip.offsetHeight;
    let left = x + 14, top = y + 14;
    if (left + tw > this.cssWidth - 4) left = x - tw - 14;
    if (top + th > this.cssHeight - 4) top = y - th - 14;
    this.tip.style.left = `${Math.max(4, left)}px`;
    this.tip.style.top = `${Math.max(4, top)}px`;
  }

  hideTip() { this.tip.hidden = true; }

  firstAvailableNearCentre() {
    const cx = (this.cssWidth / 2 - this.view.ox) / this.view.scale, cy = (this.cssHeight / 2 - this.view.oy) / this.view.scale;
    let best = -1, bestDistance = Infinity;
    for (let i = 0; i < this.n; i++) {
      const d = Math.hypot(this.xs[i] - cx, this.ys[i] - cy) + (this.status[i] === 0 ? 0 : 1e9);
      if (d < bestDistance) { bestDistance = d; best = i; }
    }
    return best;
  }

  /** The nearest seat from `from` in direction (dx, dy), within a 45° cone. */
  neighbour(from, dx, dy) {
    const x0 = this.xs[from], y0 = this.ys[from];
    const { minX, minY, maxX, maxY } = this.bounds;
    const limit = Math.hypot(maxX - minX, maxY - minY) + this.spacing;
    for (let radius = this.spacing * 1.6; ; radius *= 2) {
      let best = -1, bestScore = Infinity;
      this.forEachNear(x0, y0, radius, i => {
        if (i === from) return;
        const vx = this.xs[i] - x0, vy = this.ys[i] - y0;
        const along = vx * dx + vy * dy, across = Math.abs(vx * dy - vy * dx);
        if (along <= this.spacing * 0.2 || across > along) return;
        const score = along + across * 2;
        if (score < bestScore && Math.hypot(vx, vy) <= radius) { bestScore = score; best = i; }
      });
      if (best >= 0) return best;
      if (radius > limit) return from;
    }
  }

  onKey(e) {
    if (!this.n) return;
    const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (moves[e.key]) {
      e.preventDefault();
      if (this.focusIndex < 0) this.focusIndex = this.firstAvailableNearCentre();
      else this.focusIndex = this.neighbour(this.focusIndex, ...moves[e.key]);
      this.reveal(this.focusIndex);
      this.describeFocus();
      this.requestDraw(false);
    } else if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      if (this.focusIndex >= 0) { this.toggle(this.focusIndex); this.showTip(this.focusIndex); }
    } else if (e.key === '+' || e.key === '=') {
      e.preventDefault();
      const i = this.focusIndex;
      if (i >= 0) this.zoom(1.4, this.xs[i] * this.view.scale + this.view.ox, this.ys[i] * this.view.scale + this.view.oy); else this.zoom(1.4);
    } else if (e.key === '-' || e.key === '_') {
      e.preventDefault(); this.zoom(1 / 1.4);
    } else if (e.key === '0') {
      e.preventDefault(); this.fit();
    } else if (e.key === 'Escape') {
      this.hideTip();
    }
  }

  describeFocus() {
    const i = this.focusIndex;
    if (i < 0) return;
    const t = this.ticket(i);
    const state = this.selected.has(i) ? 'selected' : t.status === 'held' ? 'held by someone else' : t.status;
    announce(`${seatLabel(t)}, ${moneyExact(t.priceCents)}, ${state}.`);
    this.showTip(i);
  }
}
