// The labeling console of `intent serve` (/ui/). Plain JavaScript, no framework, no network
// beyond this server's admin routes. Texts from the query log are user input: they are only
// ever set as textContent, never parsed as HTML.
'use strict';

const TOKEN_KEY = 'intent-admin-token';
const $ = (id) => document.getElementById(id);

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  model: null, // the serving model from /v1/models
  items: [], // the queue as shown
  focus: 0, // index into items
  selected: new Set(), // ids
  done: [], // labels given in this tab, newest last: {id, labels}
  draft: new Set(), // multi-label: labels chosen for the focused item
};

function status(message, isError) {
  const s = $('status');
  s.textContent = message;
  s.classList.toggle('error', Boolean(isError));
}

// A request to this server with the admin token; a refused token signs out.
async function api(method, path, body) {
  const headers = { Authorization: 'Bearer ' + state.token };
  const init = { method, headers };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  if (r.status === 401) {
    signOut('The admin token was refused; sign in again.');
    throw new Error('unauthorized');
  }
  return r;
}

async function errorOf(r) {
  try {
    const b = await r.json();
    return b.error || r.statusText;
  } catch (_) {
    return r.status + ' ' + r.statusText;
  }
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

// ---- sign-in and pages ----

function signOut(message) {
  state.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  show();
  if (message) status(message, true);
}

async function signIn(event) {
  event.preventDefault();
  const token = $('token').value.trim();
  if (!token) return;
  const r = await fetch('/admin/labeling/stats', { headers: { Authorization: 'Bearer ' + token } });
  if (r.status === 401 || r.status === 403) {
    status(await errorOf(r), true);
    return;
  }
  state.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  $('token').value = '';
  status(r.ok ? 'Signed in.' : await errorOf(r), !r.ok);
  show();
}

function show() {
  const signedIn = Boolean(state.token);
  const page = location.hash === '#model' ? 'model' : 'queue';
  $('sign-in-page').hidden = signedIn;
  for (const id of ['nav', 'counters', 'sign-out']) $(id).hidden = !signedIn;
  $('queue-page').hidden = !signedIn || page !== 'queue';
  $('model-page').hidden = !signedIn || page !== 'model';
  $('nav-queue').classList.toggle('active', page === 'queue');
  $('nav-model').classList.toggle('active', page === 'model');
  if (!signedIn) {
    $('token').focus();
    return;
  }
  loadModel().then(() => (page === 'model' ? loadModelPage() : loadQueue())).catch(report);
  loadCounters().catch(report);
}

function report(e) {
  if (e && e.message !== 'unauthorized') status(String(e.message || e), true);
}

// ---- the serving model and the counters ----

async function loadModel() {
  const r = await fetch('/v1/models');
  if (!r.ok) {
    state.model = null;
    return;
  }
  const b = await r.json();
  state.model = b.models && b.models[0] ? b.models[0] : null;
  const labels = state.model ? state.model.labels : [];
  const list = $('label-list');
  const predicted = $('f-predicted');
  list.replaceChildren();
  const keep = predicted.value;
  predicted.replaceChildren(el('option', 'any label'));
  predicted.firstChild.value = '';
  for (const l of labels) {
    const o = el('option');
    o.value = l;
    list.appendChild(o);
    const p = el('option', l);
    p.value = l;
    predicted.appendChild(p);
  }
  predicted.value = keep;
}

function localMidnight() {
  const d = new Date();
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

async function loadCounters() {
  const r = await api('GET', '/admin/labeling/stats?since_ms=' + localMidnight());
  if (!r.ok) return;
  const s = await r.json();
  $('count-waiting').textContent = s.waiting;
  $('count-today').textContent = s.labeled_since;
  $('count-fallback').textContent =
    s.fallback_rate_last_hour === null
      ? 'no queries'
      : (100 * s.fallback_rate_last_hour).toFixed(1) + ' % of ' + s.queries_last_hour;
}

// ---- the queue ----

function queuePath() {
  const p = new URLSearchParams({ limit: '200', order: $('f-order').value });
  if ($('f-predicted').value) p.set('predicted', $('f-predicted').value);
  if ($('f-min').value !== '') p.set('min_confidence', $('f-min').value);
  if ($('f-max').value !== '') p.set('max_confidence', $('f-max').value);
  if ($('f-text').value.trim()) p.set('q', $('f-text').value.trim());
  return '/admin/labeling/queue?' + p.toString();
}

async function loadQueue() {
  const r = await api('GET', queuePath());
  if (!r.ok) {
    status(await errorOf(r), true);
    return;
  }
  state.items = (await r.json()).items;
  state.focus = 0;
  state.selected.clear();
  state.draft.clear();
  renderQueue();
}

function suggestionsOf(item) {
  if (item.suggestions && item.suggestions.length) return item.suggestions;
  return [{ label: item.predicted, score: item.confidence }];
}

function renderQueue() {
  const body = $('queue-body');
  body.replaceChildren();
  state.items.forEach((item, i) => {
    const tr = el('tr');
    tr.dataset.id = item.id;
    tr.classList.toggle('focused', i === state.focus);
    tr.classList.toggle('selected', state.selected.has(item.id));
    tr.classList.toggle('done', Boolean(item.labels));
    const pick = el('td');
    const box = el('input');
    box.type = 'checkbox';
    box.checked = state.selected.has(item.id);
    box.addEventListener('change', () => toggleSelected(item.id));
    pick.appendChild(box);
    tr.appendChild(pick);
    const text = el('td', item.text, 'text');
    if (item.labels) text.appendChild(el('div', '→ ' + item.labels.join(', '), 'labeled'));
    tr.appendChild(text);
    tr.appendChild(el('td', item.seen));
    const sugg = el('td');
    suggestionsOf(item).forEach((s, n) => {
      const b = el('button', null, 'suggestion');
      b.type = 'button';
      b.appendChild(el('span', n + 1, 'n'));
      b.appendChild(document.createTextNode(s.label + ' ' + (100 * s.score).toFixed(0) + '%'));
      b.addEventListener('click', () => {
        state.focus = i;
        accept(n);
      });
      sugg.appendChild(b);
    });
    tr.appendChild(sugg);
    tr.appendChild(el('td', item.model_version || ''));
    tr.appendChild(el('td', new Date(item.created_ms).toLocaleString()));
    tr.addEventListener('click', (e) => {
      if (e.target.tagName !== 'BUTTON' && e.target.tagName !== 'INPUT') {
        state.focus = i;
        renderQueue();
      }
    });
    body.appendChild(tr);
  });
  $('queue-empty').hidden = state.items.length > 0;
  $('draft').textContent = state.draft.size ? 'chosen: ' + [...state.draft].join(', ') : '';
  const focused = body.children[state.focus];
  if (focused) focused.scrollIntoView({ block: 'nearest' });
}

function toggleSelected(id) {
  if (state.selected.has(id)) state.selected.delete(id);
  else state.selected.add(id);
  renderQueue();
}

// The items a key acts on: the selected ones, else the focused one.
function targets() {
  if (state.selected.size) return state.items.filter((i) => state.selected.has(i.id));
  const f = state.items[state.focus];
  return f ? [f] : [];
}

function moveFocus(step) {
  if (!state.items.length) return;
  state.focus = Math.max(0, Math.min(state.items.length - 1, state.focus + step));
  state.draft.clear();
  renderQueue();
}

// Focus on the next item without a label, after the current one.
function advance() {
  const next = state.items.findIndex((it, i) => i > state.focus && !it.labels);
  if (next >= 0) state.focus = next;
  state.selected.clear();
  state.draft.clear();
}

function multiLabel() {
  return Boolean(state.model && state.model.multi_label);
}

async function labelItems(items, labelsFor) {
  let ok = 0;
  for (const item of items) {
    const labels = labelsFor(item);
    const body = labels.length === 1 ? { label: labels[0] } : { labels };
    if (item.labels) body.replaces = item.labels;
    const r = await api('POST', '/admin/labeling/' + item.id, body);
    if (r.ok) {
      state.done.push({ id: item.id, labels });
      item.labels = labels;
      ok += 1;
    } else if (r.status === 409) {
      const b = await r.json();
      item.labels = b.current;
      status(b.error, true);
    } else {
      status(await errorOf(r), true);
    }
  }
  if (ok) status('Labeled ' + ok + (ok === 1 ? ' item.' : ' items.'));
  advance();
  renderQueue();
  loadCounters().catch(report);
}

function accept(n) {
  if (multiLabel()) {
    const item = state.items[state.focus];
    const s = item && suggestionsOf(item)[n];
    if (s) toggleDraft(s.label);
    return;
  }
  const items = targets().filter((it) => suggestionsOf(it)[n]);
  if (items.length) labelItems(items, (it) => [suggestionsOf(it)[n].label]).catch(report);
}

function toggleDraft(label) {
  if (state.draft.has(label)) state.draft.delete(label);
  else state.draft.add(label);
  renderQueue();
}

function commitDraft() {
  if (!state.draft.size) return;
  const labels = [...state.draft];
  labelItems(targets(), () => labels).catch(report);
}

function outOfScopeLabel() {
  const labels = state.model ? state.model.labels : [];
  return labels.find((l) => /^(oos|out[-_ ]of[-_ ]scope)$/i.test(l)) || 'oos';
}

async function undo() {
  const last = state.done.pop();
  if (!last) {
    status('Nothing to undo.');
    return;
  }
  const r = await api('POST', '/admin/labeling/' + last.id, { labels: [], replaces: last.labels });
  if (!r.ok) {
    status(await errorOf(r), true);
    return;
  }
  const i = state.items.findIndex((it) => it.id === last.id);
  if (i >= 0) {
    state.items[i].labels = null;
    state.focus = i;
  }
  status('Undone: item ' + last.id + ' is waiting again.');
  renderQueue();
  loadCounters().catch(report);
}

function applySearchedLabel() {
  const input = $('label-search');
  const label = input.value.trim();
  if (!label) return;
  input.value = '';
  input.blur();
  if (multiLabel()) toggleDraft(label);
  else labelItems(targets(), () => [label]).catch(report);
}

function onKey(e) {
  if ($('queue-page').hidden || e.ctrlKey || e.metaKey || e.altKey) return;
  const tag = e.target.tagName;
  if (tag === 'INPUT' || tag === 'SELECT' || tag === 'TEXTAREA') {
    if (e.key === 'Escape') e.target.blur();
    return;
  }
  const item = state.items[state.focus];
  switch (e.key) {
    case 'ArrowDown':
    case 'j':
      moveFocus(1);
      break;
    case 'ArrowUp':
    case 'k':
      moveFocus(-1);
      break;
    case 'x':
    case ' ':
      if (item) toggleSelected(item.id);
      break;
    case '1':
    case '2':
    case '3':
      accept(Number(e.key) - 1);
      break;
    case '/':
      $('label-search').focus();
      break;
    case 'o':
      labelItems(targets(), () => [outOfScopeLabel()]).catch(report);
      break;
    case 's':
      moveFocus(1);
      break;
    case 'u':
      undo().catch(report);
      break;
    case 'Enter':
      commitDraft();
      break;
    default:
      return;
  }
  e.preventDefault();
}

async function exportLabels() {
  const r = await api('GET', '/admin/labeling/export');
  if (!r.ok) {
    status(await errorOf(r), true);
    return;
  }
  const a = el('a');
  a.href = URL.createObjectURL(await r.blob());
  a.download = 'labels.jsonl';
  document.body.appendChild(a);
  a.click();
  a.remove();
  status('Exported the labeled items.');
}

// ---- the model page ----

function fmt(v) {
  return typeof v === 'number' ? v.toFixed(4) : v === undefined || v === null ? '–' : String(v);
}

let perClassRows = [];
let perClassSort = { key: 'f1', up: true };

function renderPerClass() {
  const { key, up } = perClassSort;
  const rows = [...perClassRows].sort((a, b) => {
    const c = key === 'label' ? a.label.localeCompare(b.label) : a[key] - b[key];
    return up ? c : -c;
  });
  const body = document.querySelector('#per-class tbody');
  body.replaceChildren();
  for (const r of rows) {
    const tr = el('tr');
    tr.appendChild(el('td', r.label));
    for (const k of ['precision', 'recall', 'f1']) tr.appendChild(el('td', r[k].toFixed(3)));
    tr.appendChild(el('td', r.support));
    body.appendChild(tr);
  }
}

// Shows a report plot the served model has (`files`: GET /admin/model/report), else hides it.
async function plot(img, file, files) {
  const figure = img.closest('figure');
  figure.hidden = !files.includes(file);
  if (figure.hidden) return;
  const r = await api('GET', '/admin/model/report/' + file);
  figure.hidden = !r.ok;
  if (r.ok) img.src = URL.createObjectURL(await r.blob());
}

async function loadModelPage() {
  const m = state.model;
  const summary = $('model-summary');
  summary.replaceChildren();
  if (!m) {
    $('model-title').textContent = 'No model is serving';
    return;
  }
  $('model-title').textContent = m.name + ' · version ' + m.version;
  const test = m.metrics ? m.metrics.test || m.metrics : null;
  const facts = [
    ['kind', m.kind],
    ['labels', m.labels.length + (m.multi_label ? ' (multi-label)' : '')],
    ['fallback threshold', m.fallback_threshold],
    ['loaded', new Date(m.loaded_unix * 1000).toLocaleString()],
  ];
  if (test) {
    facts.push(['test examples', test.n]);
    if (test.micro_f1 !== undefined) facts.push(['micro F1', fmt(test.micro_f1)]);
    else facts.push(['accuracy', fmt(test.accuracy)]);
    facts.push(['macro F1', fmt(test.macro_f1)], ['ECE', fmt(test.ece)]);
  }
  for (const [k, v] of facts) {
    summary.appendChild(el('dt', k));
    summary.appendChild(el('dd', v));
  }
  const perClass = test && test.per_class ? test.per_class : {};
  // Per class as scikit-learn's classification_report writes it: `f1-score`.
  perClassRows = Object.entries(perClass).map(([label, v]) => ({
    label,
    precision: v.precision,
    recall: v.recall,
    f1: v['f1-score'],
    support: v.support,
  }));
  $('no-metrics').hidden = perClassRows.length > 0;
  renderPerClass();
  const listed = await api('GET', '/admin/model/report');
  const files = listed.ok ? (await listed.json()).files : [];
  await Promise.all([
    plot($('plot-confusion'), 'confusion_matrix.svg', files),
    plot($('plot-histogram'), 'confidence_histogram.svg', files),
  ]);
  await loadRegistry();
}

async function loadRegistry() {
  const r = await api('GET', '/admin/registry');
  $('registry').hidden = !r.ok;
  if (!r.ok) return;
  const reg = await r.json();
  const byVersion = {};
  for (const [alias, v] of Object.entries(reg.aliases)) (byVersion[v] = byVersion[v] || []).push(alias);
  const body = document.querySelector('#versions tbody');
  body.replaceChildren();
  for (const v of reg.versions) {
    const tr = el('tr');
    tr.appendChild(el('td', v.version));
    tr.appendChild(el('td', (byVersion[v.version] || []).join(', ')));
    tr.appendChild(el('td', v.kind));
    tr.appendChild(el('td', fmt(v.score)));
    tr.appendChild(el('td', new Date(v.created_unix * 1000).toLocaleString()));
    const cell = el('td');
    if (reg.aliases.current !== v.version) {
      const b = el('button', 'Promote');
      b.type = 'button';
      b.addEventListener('click', () => moveRegistry('/admin/registry/promote', { version: v.version }));
      cell.appendChild(b);
    }
    tr.appendChild(cell);
    body.appendChild(tr);
  }
  $('registry-rollback').hidden = reg.aliases.previous === undefined;
}

async function moveRegistry(path, body) {
  const r = await api('POST', path, body);
  const b = await r.json().catch(() => ({}));
  if (!r.ok) {
    status(b.error || r.statusText, true);
  } else {
    status(b.swapped ? 'Now serving version ' + b.to.version + '.' : 'The served model did not change.');
  }
  await loadModel();
  await loadModelPage();
}

// Starts the server's retrain job (POST /admin/retrain, forced) and follows it until it ends.
async function retrainNow() {
  const out = $('retrain-state');
  const r = await api('POST', '/admin/retrain', { force: true });
  const b = await r.json().catch(() => ({}));
  if (r.status !== 202) {
    out.textContent = b.error || r.statusText;
    return;
  }
  for (;;) {
    const s = await api('GET', b.status_url);
    const job = await s.json();
    if (job.state !== 'running') {
      out.textContent = 'Retrain job ' + job.id + ': ' + job.state +
        (job.error ? ' (' + job.error + ')' : '') +
        (job.reload && job.reload.to ? ': now serving version ' + job.reload.to.version : '');
      await loadModel();
      await loadModelPage();
      return;
    }
    out.textContent = 'Retrain job ' + job.id + ' running' + (job.progress ? ': ' + job.progress : '') +
      ' (' + Math.round(job.elapsed_s) + ' s)';
    await new Promise((done) => setTimeout(done, 2000));
  }
}

// ---- wiring ----

document.addEventListener('DOMContentLoaded', () => {
  $('sign-in').addEventListener('submit', (e) => signIn(e).catch(report));
  $('sign-out').addEventListener('click', () => signOut());
  $('filters').addEventListener('submit', (e) => {
    e.preventDefault();
    loadQueue().catch(report);
  });
  $('export').addEventListener('click', () => exportLabels().catch(report));
  $('label-search').addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      applySearchedLabel();
    }
  });
  $('registry-rollback').addEventListener('click', () => moveRegistry('/admin/registry/rollback'));
  $('retrain-now').addEventListener('click', () => retrainNow().catch(report));
  for (const th of document.querySelectorAll('#per-class th')) {
    th.addEventListener('click', () => {
      const key = th.dataset.key;
      perClassSort = { key, up: perClassSort.key === key ? !perClassSort.up : true };
      renderPerClass();
    });
  }
  document.addEventListener('keydown', onKey);
  window.addEventListener('hashchange', show);
  show();
});
