// The functions: the list with each one's recent figures, and a function's page (charts,
// versions and rollback, delete, its log).

import { $, bytes, button, element, micros, row, short } from './dom.js';
import { api, confirmAction, enc, failed, getJson, say, state } from './api.js';
import { refresh } from './app.js';

// A sample for every step of history `h`, oldest first: the server leaves out the steps
// without a call.
export function steps(h, samples) {
  const kept = new Map((samples || []).map((s) => [s.at, s]));
  const last = Math.floor(h.now / h.step_s) * h.step_s;
  const all = [];
  for (let i = h.steps - 1; i >= 0; i--) {
    const at = last - i * h.step_s;
    all.push(kept.get(at) || { at, requests: 0, errors: 0, p50_us: 0, p99_us: 0, fuel: 0 });
  }
  return all;
}

function summary(name) {
  const h = state.history, s = steps(h, h.functions[name]), step = h.step_s;
  const lastMinute = s.slice(-60 / step), lastFive = s.slice(-300 / step);
  const requests = lastFive.reduce((n, x) => n + x.requests, 0);
  const errors = lastFive.reduce((n, x) => n + x.errors, 0);
  const p99 = Math.max(0, ...lastFive.map((x) => x.p99_us));
  const perSecond = lastMinute.reduce((n, x) => n + x.requests, 0) / 60;
  let status = 'idle';
  if (requests) status = errors === 0 ? 'ok' : errors * 2 >= requests ? 'failing' : 'errors';
  return { perSecond, errors, p99, status };
}

function triggers(f) {
  const out = [...f.routes];
  for (const t of f.topics) out.push('topic ' + (t.topic || t));
  for (const t of f.timers) out.push('timer ' + (t.schedule || t));
  for (const w of f.watch) out.push(`watch ${w.store}:${w.prefix || ''}`);
  return out.join(', ') || '–';
}

export function renderFunctions() {
  const body = $('#functions tbody');
  body.replaceChildren();
  for (const f of state.functions) {
    const s = summary(f.name);
    const tr = row([f.name, triggers(f), 'v' + f.version, short(s.perSecond), s.errors,
      micros(s.p99), element('span', s.status, 'status ' + s.status)]);
    tr.dataset.name = f.name;
    tr.classList.toggle('selected', f.name === state.selected);
    tr.addEventListener('click', () => select(f.name));
    body.append(tr);
  }
  if (!state.functions.length) {
    body.append(row(['No functions yet: deploy one.']));
  }
  if (state.selected && !state.functions.some((f) => f.name === state.selected)) {
    select(null);
  }
}

export async function select(name) {
  stopFollowing();
  state.selected = name;
  $('#detail').hidden = !name;
  for (const tr of document.querySelectorAll('#functions tbody tr')) {
    tr.classList.toggle('selected', tr.dataset.name === name);
  }
  if (!name) return;
  const f = state.functions.find((x) => x.name === name);
  $('#detail-name').textContent = name;
  const limits = Object.entries(f.limits || {}).filter(([, v]) => v != null).map(([k, v]) => `${k} ${v}`).join(', ');
  $('#detail-config').textContent = `version ${f.version}, ${bytes(f.size)}` +
    (f.methods.length ? `, methods ${f.methods.join(' ')}` : '') + (limits ? `, ${limits}` : '');
  state.chart = null;
  renderCharts();
  $('#log').textContent = '';
  $('#follow').checked = false;
  try {
    const [chart] = await Promise.all([
      getJson(`functions/${enc(name)}/history`),
      renderVersions(name),
      loadLog(name),
    ]);
    if (state.selected === name) {
      state.chart = chart;
      renderCharts();
    }
  } catch (error) {
    failed(error);
  }
}

// ---- Charts: one SVG polyline per series, scaled to the series' largest value ----

const SVG = 'http://www.w3.org/2000/svg';

function chart(id, series, label) {
  const svg = $('#chart-' + id);
  const max = Math.max(0, ...series.flatMap((s) => s.values));
  const top = max > 0 ? max * 1.1 : 1;
  svg.replaceChildren();
  for (const y of [20, 40, 60]) {
    const line = document.createElementNS(SVG, 'line');
    line.setAttribute('x1', 0);
    line.setAttribute('x2', 300);
    line.setAttribute('y1', y);
    line.setAttribute('y2', y);
    line.setAttribute('class', 'grid');
    svg.append(line);
  }
  for (const s of series) {
    const n = s.values.length;
    const points = s.values.map((v, i) => `${(i * 300) / (n - 1)},${80 - (v / top) * 78}`);
    const line = document.createElementNS(SVG, 'polyline');
    line.setAttribute('points', points.join(' '));
    line.setAttribute('class', s.className);
    line.setAttribute('vector-effect', 'non-scaling-stroke');
    svg.append(line);
  }
  $('#max-' + id).textContent = max > 0 ? '(max ' + label(max) + ')' : '(none)';
}

export function renderCharts() {
  const h = state.chart || { now: state.history.now, step_s: 10, steps: 90, samples: [] };
  const s = steps(h, h.samples), step = h.step_s;
  chart('requests', [{ values: s.map((x) => x.requests / step), className: 'a' }], short);
  chart('errors', [{ values: s.map((x) => x.errors), className: 'bad' }], String);
  chart('latency', [
    { values: s.map((x) => x.p50_us), className: 'a' },
    { values: s.map((x) => x.p99_us), className: 'b' },
  ], micros);
  chart('fuel', [{ values: s.map((x) => x.fuel / step), className: 'a' }], short);
}

// ---- Versions, rollback, delete ----

export async function renderVersions(name) {
  const record = await getJson(`functions/${enc(name)}/versions`);
  state.shownVersion = record.active;
  const body = $('#versions tbody');
  body.replaceChildren();
  for (const v of [...record.versions].reverse()) {
    const action = v.active
      ? element('span', 'serving', 'status ok')
      : button('Roll back…', () => rollback(name, v.version));
    const when = new Date(v.deployed_at * 1000).toLocaleString();
    const tr = row(['v' + v.version, when, bytes(v.size), v.hash.slice(0, 12), action]);
    tr.dataset.version = v.version;
    body.append(tr);
  }
}

async function rollback(name, version) {
  if (!(await confirmAction(`Roll ${name} back to version ${version}?`, 'Roll back'))) return;
  try {
    await api('POST', `functions/${enc(name)}/rollback?version=${version}`);
    say(`${name} serves version ${version} again.`, 'ok');
    await refresh();
    await renderVersions(name);
  } catch (error) {
    failed(error);
  }
}

export async function remove() {
  const name = state.selected;
  const question = `Delete ${name}? Its routes stop answering and its versions are removed.`;
  if (!(await confirmAction(question, 'Delete'))) return;
  try {
    await api('DELETE', `functions/${enc(name)}`);
    say(`${name} was deleted.`, 'ok');
    select(null);
    await refresh();
  } catch (error) {
    failed(error);
  }
}

// ---- The log, and following it ----

export async function loadLog(name) {
  const text = await (await api('GET', `functions/${enc(name)}/logs`)).text();
  $('#log').textContent = text;
  $('#log').scrollTop = $('#log').scrollHeight;
}

export function stopFollowing() {
  if (state.follow) state.follow.abort();
  state.follow = null;
}

export async function follow(name) {
  stopFollowing();
  const controller = new AbortController();
  state.follow = controller;
  const log = $('#log');
  log.textContent = '';
  try {
    const path = `functions/${enc(name)}/logs?follow`;
    const response = await api('GET', path, undefined, controller.signal);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      log.append(value);
      // Keep the last 2,000 lines or so.
      if (log.textContent.length > 200000) log.textContent = log.textContent.slice(-150000);
      log.scrollTop = log.scrollHeight;
    }
  } catch (error) {
    if (error.name !== 'AbortError') failed(error);
  }
}

