// The admin API (/_wisp/...) with the token this tab holds, what the page says to the user,
// and the confirmation every action asks for.

import { $ } from './dom.js';
import { signOut } from './app.js';

export const state = {
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

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// `signal` aborts the call, or the reading of its body (a followed log).
export async function api(method, path, body, signal) {
  const response = await fetch('/_wisp/' + path, {
    method,
    body,
    signal,
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

export const getJson = async (path) => (await api('GET', path)).json();
export const enc = encodeURIComponent;

// ---- Messages, the token, the confirmation dialog ----

export function say(text, kind) {
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
export function failed(error) {
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


// Resolves true when the user confirms `text`.
export function confirmAction(text, action) {
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

