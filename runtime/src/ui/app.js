// Wisp's dashboard: plain DOM code over the admin API (/_wisp/...), nothing else. The token
// lives in this tab's sessionStorage; every call sends it as a bearer token.
'use strict';

const $ = (selector) => document.querySelector(selector);
const REFRESH_MS = 5000;
// Steps of the functions' summary: 5 minutes of 10 s.
const SUMMARY_STEPS = 30;
const TOKEN_KEY = 'wisp-token';

const state = {
  token: null,
  view: 'functions',
  functions: [],
  history: null, // every function's last 5 minutes
  chart: null, // the selected function's last 15
  selected: null,
  follow: null, // the AbortController of a followed log
  shownVersion: null, // the serving version when the versions were listed
  keysNext: null,
  timer: null,
  refreshError: null, // the message a failed refresh left
};

// ---- The admin API ----

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(method, path, body) {
  const response = await fetch('/_wisp/' + path, {
    method,
    body,
    cache: 'no-store',
    headers: { Authorization: 'Bearer ' + state.token },
  });
  if (!response.ok) {
    let message = response.statusText;
    try {
      message = (await response.json()).error || message;
    } catch (_) { /* not JSON */ }
    throw new ApiError(response.status, message);
  }
  return response;
}

const getJson = async (path) => (await api('GET', path)).json();
const enc = encodeURIComponent;

// ---- Messages, the token, the confirmation dialog ----

function say(text, kind) {
  const message = $('#message');
  message.textContent = text;
  message.className = kind || 'error';
  message.hidden = !text;
  // Good news goes after a while; an error stays until it is mended.
  if (kind === 'ok') {
    setTimeout(() => {
      if (message.textContent === text) say('');
    }, 10000);
  }
}

// What went wrong, said so that the user knows what to do.
function failed(error) {
  if (!(error instanceof ApiError)) {
    say('The device did not answer: ' + error.message);
  } else if (error.status === 401) {
    signOut();
    say('The device refused this admin token (401). Check the token and try again.');
  } else if (error.status === 403) {
    say('The device refused the call (403): ' + error.message);
  } else {
    say(`Error ${error.status}: ${error.message}`);
  }
}

function takeToken() {
  const match = location.hash.match(/[#&]token=([^&]*)/);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    // Out of the address bar and the history.
    history.replaceState(null, '', location.pathname + location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  stopFollowing();
  clearInterval(state.timer);
  $('#app').hidden = true;
  $('#sign-out').hidden = true;
  $('#login').hidden = false;
  $('#device-line').textContent = '';
}

async function signIn(token) {
  state.token = token;
  try {
    await refresh();
  } catch (error) {
    failed(error);
    // Whatever went wrong, the form stays, to try again.
    $('#login').hidden = false;
    return;
  }
  $('#login').hidden = true;
  $('#app').hidden = false;
  $('#sign-out').hidden = false;
  clearInterval(state.timer);
  state.timer = setInterval(refreshNow, REFRESH_MS);
}

// Resolves true when the user confirms `text`.
function confirmAction(text, action) {
  const dialog = $('#confirm');
  $('#confirm-text').textContent = text;
  $('#confirm-ok').textContent = action;
  return new Promise((resolve) => {
    const close = (answer) => () => {
      dialog.close();
      resolve(answer);
    };
    $('#confirm-ok').onclick = close(true);
    $('#confirm-cancel').onclick = close(false);
    dialog.oncancel = close(false);
    dialog.showModal();
  });
}

// ---- Small helpers ----

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function row(cells) {
  const tr = document.createElement('tr');
  for (const cell of cells) {
    const td = document.createElement('td');
    if (cell instanceof Node) td.append(cell);
    else td.textContent = cell;
    tr.append(td);
  }
  return tr;
}

function button(text, onClick, className) {
  const node = element('button', text, className);
  node.type = 'button';
  node.addEventListener('click', onClick);
  return node;
}

function bytes(n) {
  if (n == null) return '?';
  if (n < 1024) return n + ' B';
  if (n < 1 << 20) return (n / 1024).toFixed(1) + ' KiB';
  if (n < 1 << 30) return (n / (1 << 20)).toFixed(1) + ' MiB';
  return (n / (1 << 30)).toFixed(2) + ' GiB';
}

function micros(us) {
  if (!us) return '–';
  return us < 1000 ? us + ' µs' : us < 1e6 ? (us / 1000).toFixed(1) + ' ms' : (us / 1e6).toFixed(2) + ' s';
}

function duration(seconds) {
  const d = Math.floor(seconds / 86400), h = Math.floor(seconds / 3600) % 24;
  const m = Math.floor(seconds / 60) % 60, s = seconds % 60;
  return d ? `${d} d ${h} h` : h ? `${h} h ${m} min` : m ? `${m} min ${s} s` : `${s} s`;
}

function short(number) {
  if (number >= 1e9) return (number / 1e9).toFixed(1) + 'G';
  if (number >= 1e6) return (number / 1e6).toFixed(1) + 'M';
  if (number >= 1e3) return (number / 1e3).toFixed(1) + 'k';
  return String(Math.round(number * 10) / 10);
}

// ---- Views ----

function show(view) {
  state.view = view;
  for (const b of document.querySelectorAll('nav button')) {
    b.classList.toggle('active', b.dataset.view === view);
  }
  for (const section of document.querySelectorAll('main > section')) {
    section.hidden = section.id !== 'view-' + view;
  }
  refreshNow();
}

// A refresh whose failure (the device away, say) is said until a later refresh succeeds.
function refreshNow() {
  refresh().then(
    () => {
      if (state.refreshError && $('#message').textContent === state.refreshError) say('');
      state.refreshError = null;
    },
    (error) => {
      failed(error);
      state.refreshError = $('#message').textContent;
    },
  );
}

async function refresh() {
  const name = state.selected;
  const [device, list, history, chart] = await Promise.all([
    getJson('device'),
    getJson('functions'),
    getJson('history?steps=' + SUMMARY_STEPS),
    name ? getJson(`functions/${enc(name)}/history`).catch(() => null) : null,
  ]);
  state.functions = list.functions;
  state.history = history;
  renderDeviceLine(device);
  renderFunctions();
  const selected = state.functions.find((f) => f.name === state.selected);
  if (selected && chart && chart.name === state.selected) {
    state.chart = chart;
    renderCharts();
    // Deployed or rolled back elsewhere (the CLI, another device of the fleet).
    if (selected.version !== state.shownVersion) await renderVersions(selected.name);
  }
  if (state.view === 'device') {
    renderDevice(device);
    await renderFleet(device);
  }
  if (state.view === 'topics') await renderTopics();
  if (state.view === 'keys') fillKeyChoices();
}

// A sample for every step of history `h`, oldest first: the server leaves out the steps
// without a call.
function steps(h, samples) {
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

function renderFunctions() {
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

async function select(name) {
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

function renderCharts() {
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

async function renderVersions(name) {
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

async function remove() {
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

async function loadLog(name) {
  const text = await (await api('GET', `functions/${enc(name)}/logs`)).text();
  $('#log').textContent = text;
  $('#log').scrollTop = $('#log').scrollHeight;
}

function stopFollowing() {
  if (state.follow) state.follow.abort();
  state.follow = null;
}

async function follow(name) {
  stopFollowing();
  const controller = new AbortController();
  state.follow = controller;
  const log = $('#log');
  log.textContent = '';
  try {
    const response = await fetch(`/_wisp/functions/${enc(name)}/logs?follow`, {
      headers: { Authorization: 'Bearer ' + state.token },
      signal: controller.signal,
    });
    if (!response.ok) throw new ApiError(response.status, response.statusText);
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

// ---- Deploy ----

function chosenFile() {
  return $('#deploy-file').files[0] || null;
}

function showChosen() {
  const file = chosenFile();
  $('#drop-text').textContent = file
    ? `${file.name} (${bytes(file.size)})`
    : 'Drop a .wasm module here, or choose one';
  if (file && !$('#deploy-name').value) {
    $('#deploy-name').value = file.name.replace(/\.wasm$/, '').toLowerCase()
      .replace(/[^a-z0-9-]/g, '-').slice(0, 63);
  }
}

async function deploy(event) {
  event.preventDefault();
  const file = chosenFile();
  if (!file) {
    say('Choose a .wasm module first.');
    return;
  }
  const name = $('#deploy-name').value.trim();
  const route = $('#deploy-route').value.trim();
  const where = route ? ` on ${route}` : ' (keeping its configuration)';
  if (!(await confirmAction(`Deploy ${file.name} as ${name}${where}?`, 'Deploy'))) return;
  try {
    const query = route ? '?route=' + enc(route) : '';
    const response = await api('PUT', `functions/${enc(name)}${query}`, await file.arrayBuffer());
    const f = await response.json();
    say(`Deployed ${f.name} version ${f.version}.`, 'ok');
    $('#deploy-form').reset();
    showChosen();
    await refresh();
    show('functions');
    select(f.name);
  } catch (error) {
    failed(error);
  }
}

// ---- Topics ----

async function renderTopics() {
  const answer = await getJson('topics');
  const body = $('#topics tbody');
  body.replaceChildren();
  for (const topic of answer.topics) {
    for (const s of topic.subscribers) {
      const replay = s.dead_letters
        ? button('Replay…', () => replayDead(topic.name, s.function, s.dead_letters))
        : '';
      const who = s.subscribed ? s.function : s.function + ' (unsubscribed)';
      body.append(row([topic.name, who, s.depth, s.in_flight, s.delivered, s.dead_letters, replay]));
    }
  }
  if (!answer.topics.length) body.append(row(['No topics have subscribers.']));
  $('#topics-summary').textContent =
    `At most ${answer.max_depth} messages wait per subscriber; ` +
    `${answer.unrouted} published to no subscriber.`;
}

async function replayDead(topic, fn, count) {
  const question = `Put ${count} dead letter(s) of ${fn} on ${topic} back in its queue?`;
  if (!(await confirmAction(question, 'Replay'))) return;
  try {
    await api('POST', `topics/${enc(topic)}/dead-letters/replay?function=${enc(fn)}`);
    say(`Dead letters of ${fn} on ${topic} are queued again.`, 'ok');
    await renderTopics();
  } catch (error) {
    failed(error);
  }
}

// ---- Keys ----

function fillKeyChoices() {
  const stores = new Set(['default']);
  for (const f of state.functions) {
    for (const s of [...(f.stores || []), ...(f.shared_stores || [])]) stores.add(s);
  }
  const fill = (select, values) => {
    const chosen = select.value;
    select.replaceChildren(...values.map((v) => element('option', v)));
    if (values.includes(chosen)) select.value = chosen;
  };
  fill($('#keys-store'), [...stores].sort());
  fill($('#keys-namespace'), [...state.functions.map((f) => f.name), '_shared']);
}

function keysPlace() {
  return `kv/${enc($('#keys-store').value)}/${enc($('#keys-namespace').value)}`;
}

async function listKeys(more) {
  const list = $('#keys');
  if (!more) {
    list.replaceChildren();
    state.keysNext = null;
    $('#key-value').hidden = true;
  }
  let query = '?limit=100&prefix=' + enc($('#keys-prefix').value);
  if (more && state.keysNext !== null) query += '&after=' + enc(state.keysNext);
  try {
    const answer = await getJson(keysPlace() + query);
    for (const key of answer.keys) {
      const item = element('li');
      item.append(button(key, () => showValue(key), 'link'));
      list.append(item);
    }
    if (!more && !answer.keys.length) list.append(element('li', 'No keys.'));
    state.keysNext = answer.next;
    $('#keys-more').hidden = answer.next === null;
  } catch (error) {
    failed(error);
  }
}

async function showValue(key) {
  try {
    const value = new Uint8Array(await (await api('GET', `${keysPlace()}/${enc(key)}`)).arrayBuffer());
    let text;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(value);
    } catch (_) {
      const hex = [...value.slice(0, 512)].map((b) => b.toString(16).padStart(2, '0'));
      text = hex.join(' ') + (value.length > 512 ? ' …' : '');
    }
    $('#key-name').textContent = `${key} (${bytes(value.length)})`;
    $('#value').textContent = text;
    $('#key-value').hidden = false;
  } catch (error) {
    failed(error);
  }
}

// ---- The device ----

function renderDeviceLine(d) {
  const fleet = d.fleet ? ` · fleet ${d.fleet.name}` : '';
  $('#device-line').textContent =
    `${d.board || 'no board profile'} · up ${duration(d.uptime_s)} · ${d.functions} functions${fleet}`;
}

function renderDevice(d) {
  const m = d.memory;
  const fleet = d.fleet
    ? `${d.fleet.name}, as ${d.fleet.device} (${d.fleet.connected ? 'connected' : 'away from Redis'})`
    : 'not in a fleet';
  const facts = [
    ['Version', d.version],
    ['Board profile', d.board || 'none'],
    ['Up since', `${new Date(d.started_at).toLocaleString()} (${duration(d.uptime_s)})`],
    ['Memory of Wisp', bytes(m.rss_bytes)],
    ['Memory of the device', `${bytes(m.available_bytes)} available of ${bytes(m.total_bytes)}`],
    ['Workers', d.workers],
    ['Functions', d.functions],
    ['Key-value store', d.store],
    ['Connections open', d.open_connections],
    ['Requests served', d.requests],
    ['Fleet', fleet],
  ];
  const list = $('#device');
  list.replaceChildren();
  for (const [term, value] of facts) list.append(element('dt', term), element('dd', String(value)));
}

// The devices of the fleet this one is in, as the fleet's Redis last heard of them.
async function renderFleet(d) {
  $('#fleet').hidden = !d.fleet;
  if (!d.fleet) return;
  const fleet = await getJson('fleet');
  const body = $('#devices tbody');
  body.replaceChildren();
  for (const device of fleet.devices) {
    const name = device.this ? device.name + ' (this one)' : device.name;
    const seen = device.seen_ago == null ? '–' : `${device.seen_ago} s ago`;
    const functions = Object.keys(device.functions || {}).length;
    const tr = row([name, device.state, device.address || '–', functions, seen]);
    tr.dataset.device = device.name;
    body.append(tr);
  }
}

// ---- Start ----

function start() {
  $('#login').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = $('#token-input').value.trim();
    sessionStorage.setItem(TOKEN_KEY, token);
    $('#token-input').value = '';
    signIn(token);
  });
  $('#sign-out').addEventListener('click', () => {
    signOut();
    say('Signed out.', 'ok');
  });
  for (const b of document.querySelectorAll('nav button')) {
    b.addEventListener('click', () => show(b.dataset.view));
  }
  $('#delete').addEventListener('click', remove);
  $('#follow').addEventListener('change', (event) => {
    if (event.target.checked) follow(state.selected);
    else {
      stopFollowing();
      loadLog(state.selected).catch(failed);
    }
  });
  $('#deploy-form').addEventListener('submit', deploy);
  $('#deploy-file').addEventListener('change', showChosen);
  const drop = $('#drop');
  drop.addEventListener('dragover', (event) => {
    event.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (event) => {
    event.preventDefault();
    drop.classList.remove('over');
    $('#deploy-file').files = event.dataTransfer.files;
    showChosen();
  });
  $('#keys-form').addEventListener('submit', (event) => {
    event.preventDefault();
    listKeys(false);
  });
  $('#keys-more').addEventListener('click', () => listKeys(true));

  const token = takeToken();
  if (token) signIn(token);
  else $('#login').hidden = false;
}

start();
