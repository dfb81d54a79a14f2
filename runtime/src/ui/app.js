// Wisp's dashboard: plain DOM code over the admin API (/_wisp/...), nothing else. The token
// lives in this tab's sessionStorage; every call sends it as a bearer token. This module signs
// in and out, switches views, refreshes what is shown, and wires the page's controls.

import { $ } from './dom.js';
import { enc, failed, getJson, say, state } from './api.js';
import {
  follow, loadLog, remove, renderCharts, renderFunctions, renderVersions, stopFollowing,
} from './functions.js';
import {
  deploy, fillKeyChoices, listKeys, renderDevice, renderDeviceLine, renderFleet, renderTopics,
  showChosen,
} from './views.js';

const REFRESH_MS = 5000;
// Steps of the functions' summary: 5 minutes of 10 s.
const SUMMARY_STEPS = 30;
const TOKEN_KEY = 'wisp-token';

function takeToken() {
  const match = location.hash.match(/[#&]token=([^&]*)/);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    // Out of the address bar and the history.
    history.replaceState(null, '', location.pathname + location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

export function signOut() {
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


// ---- Views ----

export function show(view) {
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

export async function refresh() {
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
