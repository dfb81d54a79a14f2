// The other views: deploy, topics, keys, the device.

import { $, bytes, button, duration, element, row } from './dom.js';
import { api, confirmAction, enc, failed, getJson, say, state } from './api.js';
import { refresh, show } from './app.js';
import { select } from './functions.js';

// ---- Deploy ----

function chosenFile() {
  return $('#deploy-file').files[0] || null;
}

export function showChosen() {
  const file = chosenFile();
  $('#drop-text').textContent = file
    ? `${file.name} (${bytes(file.size)})`
    : 'Drop a .wasm module here, or choose one';
  if (file && !$('#deploy-name').value) {
    $('#deploy-name').value = file.name.replace(/\.wasm$/, '').toLowerCase()
      .replace(/[^a-z0-9-]/g, '-').slice(0, 63);
  }
}

export async function deploy(event) {
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

export async function renderTopics() {
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

export function fillKeyChoices() {
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

export async function listKeys(more) {
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

export function renderDeviceLine(d) {
  const fleet = d.fleet ? ` · fleet ${d.fleet.name}` : '';
  $('#device-line').textContent =
    `${d.board || 'no board profile'} · up ${duration(d.uptime_s)} · ${d.functions} functions${fleet}`;
}

export function renderDevice(d) {
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
export async function renderFleet(d) {
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

