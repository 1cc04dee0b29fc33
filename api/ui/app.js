// The operator's page of the tenantsql admin API (api.WithUI).
//
// It reads the API it is served by, relative to its own address (the page
// is at <mount>/ui/, the API at <mount>/), with the token the operator
// types. The token lives in one variable of this closure: never in
// storage, a cookie or the address, so that closing or reloading the page
// forgets it. Nothing is written as HTML: every text from the API becomes
// a text node (the page's Content-Security-Policy requires Trusted Types,
// so the browser would refuse an innerHTML anyway).
'use strict';

(() => {
  const STATS_EVERY = 1000; // ms; /stats/ is a snapshot of counters, cheap
  const TENANTS_EVERY = 5000; // /tenant/ lists the store
  // /health-check/ pings every tenant's database, which opens a session
  // for each: polled rarely, and on demand.
  const HEALTH_EVERY = 60000;
  const HISTORY = 5 * 60 * 1000; // what the charts show
  // What the API shows in place of what it withholds: a password or a
  // secret, or a whole value it cannot show safely. Sent back as a value,
  // each would replace the real one (the API refuses them too).
  const PLACEHOLDERS = ['xxxxx', '(unparsable URL)', '(ambiguous URL, not shown)'];
  const SERIES = [
    { key: 'open', label: 'open', color: '#0969da' },
    { key: 'inUse', label: 'in use', color: '#bc4c00' },
    { key: 'waiting', label: 'waiting', color: '#cf222e' },
  ];

  let token = null; // the admin token; null when the API needs none or none was given

  const state = {
    tenants: [], // from /tenant/, sorted by id
    stats: null, // /stats/, null until read
    statsMissingAt: 0, // when /stats/ answered 404 (the API has no WithStats); 0: it did not
    health: null, // /health-check/
    healthAt: 0,
    history: new Map(), // server -> [{t, open, inUse, waiting, budget}]
    rows: new Map(), // tenant id -> its <tr>, kept so that focus and selection survive a refresh
    editing: null, // the tenant being edited, or null when creating
    confirmDelete: null, // {id, until}
    // gen is the generation of the pollers: stop bumps it, and a poller
    // of an older generation ends when it wakes, so that a new login
    // never runs beside the pollers of the last one.
    gen: 0,
    running: false,
    timers: new Set(),
    // issued counts the requests made per resource; an answer is applied
    // only if no newer request was made since (the poll's /tenant/ that
    // left before a create must not undo its refresh).
    issued: { tenants: 0, stats: 0, health: 0 },
  };

  const $ = (id) => document.getElementById(id);

  // el makes an element; children that are strings become text nodes.
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === 'class') e.className = v;
      else if (k.startsWith('data-') || k === 'title') e.setAttribute(k, String(v));
      else e[k] = v;
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    }
    return e;
  }

  class APIError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // api sends one request to the API and returns {status, data}. A 401
  // asks for the token again.
  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (token !== null) headers.Authorization = 'Bearer ' + token;
    const init = { method, headers, cache: 'no-store', credentials: 'omit', redirect: 'error' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const resp = await fetch('../' + path, init);
    let data = null;
    try {
      data = await resp.json();
    } catch {
      data = null;
    }
    if (resp.status === 401) {
      stop(token === null ? '' : 'The API refused the token: type it again.');
      throw new APIError(401, (data && data.error) || 'unauthorized');
    }
    return { status: resp.status, data };
  }

  function errorText(status, data) {
    return (data && data.error) || 'HTTP ' + status;
  }

  // ---------------------------------------------------------------- login

  function showLogin(message) {
    $('app').hidden = true;
    $('forget').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = message || '';
    $('token').focus();
  }

  // stop ends the polling, forgets the token and everything read with it,
  // and asks for the token.
  function stop(message) {
    state.running = false;
    state.gen++;
    for (const id of state.timers) clearTimeout(id);
    state.timers.clear();
    token = null;
    endEdit();
    result(true, '');
    Object.assign(state, { tenants: [], stats: null, statsMissingAt: 0, health: null, healthAt: 0, confirmDelete: null });
    state.history.clear();
    state.rows.clear();
    $('tenants').tBodies[0].replaceChildren();
    $('servers').replaceChildren();
    $('store').textContent = 'store: not checked yet';
    $('store').dataset.state = 'unknown';
    banner('');
    showLogin(message);
  }

  async function open() {
    // Whether the API wants a token (it does unless WithoutAuth): asked of
    // the page's own files, so that no request is refused on the way.
    let r;
    try {
      const resp = await fetch('auth.json', { cache: 'no-store', credentials: 'omit' });
      const auth = await resp.json();
      if (auth.token_required) {
        showLogin('');
        return;
      }
      r = await api('GET', 'tenant/');
    } catch (e) {
      if (!(e instanceof APIError)) showLogin('The API cannot be reached: ' + e.message);
      return;
    }
    start(r);
  }

  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const input = $('token');
    token = input.value.trim();
    input.value = '';
    if (token === '') {
      token = null;
      return;
    }
    try {
      const r = await api('GET', 'tenant/');
      start(r);
    } catch (e) {
      if (!(e instanceof APIError)) showLogin('The API cannot be reached: ' + e.message);
    }
  });

  $('forget').addEventListener('click', () => stop(''));

  function start(first) {
    $('login').hidden = true;
    $('login-error').textContent = '';
    $('app').hidden = false;
    $('forget').hidden = token === null;
    if (first.status === 200) setTenants(first.data);
    if (state.running) return;
    state.running = true;
    const gen = state.gen;
    poll(refreshStats, STATS_EVERY, gen);
    poll(refreshTenants, TENANTS_EVERY, gen);
    poll(refreshHealth, HEALTH_EVERY, gen);
  }

  // poll runs f now and then every ms after it returns, until stop starts
  // another generation.
  async function poll(f, ms, gen) {
    while (state.gen === gen) {
      try {
        await f();
      } catch (e) {
        if (e instanceof APIError && e.status === 401) return;
        banner('The API cannot be reached: ' + e.message);
      }
      await new Promise((resolve) => {
        const id = setTimeout(() => {
          state.timers.delete(id);
          resolve();
        }, ms);
        state.timers.add(id);
      });
    }
  }

  // latest makes a request for kind with f and returns its answer, or
  // null if another request for kind was made meanwhile or the pollers
  // stopped: that one's answer, newer, is the one to show.
  async function latest(kind, f) {
    const n = ++state.issued[kind];
    const gen = state.gen;
    const r = await f();
    return n === state.issued[kind] && gen === state.gen ? r : null;
  }

  function banner(message) {
    const b = $('banner');
    b.textContent = message || '';
    b.hidden = !message;
  }

  function stamp() {
    $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
  }

  // ---------------------------------------------------------------- data

  async function refreshTenants() {
    const r = await latest('tenants', () => api('GET', 'tenant/'));
    if (r === null) return;
    if (r.status !== 200) {
      banner('Listing the tenants failed: ' + errorText(r.status, r.data));
      return;
    }
    banner('');
    setTenants(r.data);
  }

  function setTenants(data) {
    state.tenants = (data && data.tenants) || [];
    renderTenants();
    stamp();
  }

  async function refreshStats() {
    // Without WithStats, asked again now and then: the 404 may have come
    // from a proxy while the program restarted.
    if (state.statsMissingAt !== 0 && Date.now() - state.statsMissingAt < HEALTH_EVERY) return;
    const r = await latest('stats', () => api('GET', 'stats/'));
    if (r === null) return;
    if (r.status === 404) {
      state.statsMissingAt = Date.now();
      state.stats = null;
      $('servers-note').textContent = 'This API has no statistics: the program gives none (api.WithStats).';
      return;
    }
    state.statsMissingAt = 0;
    if (r.status !== 200 || !r.data) {
      banner('Reading the statistics failed: ' + errorText(r.status, r.data));
      return;
    }
    state.stats = r.data;
    const now = Date.now();
    const servers = r.data.Servers || {};
    for (const [name, s] of Object.entries(servers)) {
      let h = state.history.get(name);
      if (!h) state.history.set(name, (h = []));
      h.push({ t: now, open: s.Open, inUse: s.InUse, waiting: s.Waiting, budget: s.Budget });
      while (h.length > 0 && h[0].t < now - HISTORY) h.shift();
    }
    for (const name of state.history.keys()) {
      if (!Object.hasOwn(servers, name)) state.history.delete(name);
    }
    $('servers-note').textContent = Object.keys(servers).length === 0
      ? 'No server yet: no tenant has a database.'
      : 'Sessions per server, sampled every second while this page is open; the charts show up to the last ' + HISTORY / 60000 + ' minutes.';
    renderServers(servers, now);
    renderTenants();
    stamp();
  }

  async function refreshHealth() {
    $('health-note').textContent = 'checking...';
    const r = await latest('health', () => api('GET', 'health-check/'));
    if (r === null) return;
    state.healthAt = Date.now();
    if (r.status !== 200 && r.status !== 503) {
      $('health-note').textContent = 'health check failed: ' + errorText(r.status, r.data);
      return;
    }
    state.health = r.data;
    $('health-note').textContent = 'health checked at ' + new Date(state.healthAt).toLocaleTimeString() +
      (r.data && r.data.tenants ? '' : ' (store only: the program gives no database to check tenants with, api.WithHealth)');
    renderStore(r.data && r.data.store);
    renderTenants();
  }

  $('check-health').addEventListener('click', () => {
    refreshHealth().catch((e) => banner('Health check: ' + e.message));
  });

  // ---------------------------------------------------------------- store

  function renderStore(s) {
    const b = $('store');
    if (!s) return;
    const parts = [];
    let bad = !s.result;
    if (s.connected === false) {
      parts.push('not connected');
      bad = true;
    } else if (s.connected === true) {
      parts.push('connected');
    }
    if (s.data_loss) {
      parts.push('DATA LOSS: the store came back without tenants it had');
      bad = true;
    }
    if (s.version !== undefined) parts.push('version ' + s.version);
    if (s.last_sync) parts.push('last sync ' + new Date(s.last_sync).toLocaleTimeString());
    if (s.last_error) parts.push('last error: ' + s.last_error);
    if (!s.result && s.msg) parts.push(s.msg);
    b.dataset.state = bad ? 'bad' : 'ok';
    b.textContent = 'store ' + (bad ? 'unhealthy' : 'ok') + (parts.length ? ': ' + parts.join(', ') : '');
  }

  // ---------------------------------------------------------------- servers

  const FIGURES = [
    ['budget', 'Budget'], ['open', 'Open'], ['in_use', 'In use'], ['waiting', 'Waiting'],
    ['idle', 'Idle'], ['pools', 'Tenant pools'],
  ];

  function renderServers(servers, now) {
    const box = $('servers');
    const names = Object.keys(servers).sort();
    for (const card of [...box.children]) {
      if (!Object.hasOwn(servers, card.dataset.server)) card.remove();
    }
    for (const name of names) {
      let card = [...box.children].find((c) => c.dataset.server === name);
      if (!card) {
        card = serverCard(name);
        box.append(card);
      }
      const s = servers[name];
      const values = { budget: s.Budget, open: s.Open, in_use: s.InUse, waiting: s.Waiting, idle: s.Idle, pools: s.Pools };
      for (const [k] of FIGURES) card.querySelector('[data-figure="' + k + '"]').textContent = String(values[k]);
      card.querySelector('.counters').textContent =
        s.NewConns + ' sessions opened, ' + s.Acquires + ' checkouts, ' + s.Waits + ' waited (' +
        formatDuration(s.WaitDuration) + ' in all), ' + s.Timeouts + ' timed out, ' + s.Evictions + ' evicted, ' +
        s.ConnectErrors + ' failed to connect';
      drawChart(card.querySelector('canvas'), state.history.get(name) || [], now);
    }
  }

  function serverCard(name) {
    const dl = el('dl', { class: 'figures' });
    for (const [k, label] of FIGURES) dl.append(el('dt', null, label), el('dd', { 'data-figure': k }, '-'));
    const legend = el('div', { class: 'legend' });
    for (const s of SERIES) {
      const sw = el('span', { class: 'swatch' });
      sw.style.background = s.color;
      legend.append(el('span', null, sw, s.label));
    }
    const budget = el('span', { class: 'swatch' });
    budget.style.background = '#8c959f';
    legend.append(el('span', null, budget, 'budget'));
    return el('div', { class: 'server', 'data-server': name },
      el('h3', null, name), dl, el('p', { class: 'counters' }),
      el('canvas', { 'data-samples': 0, role: 'img', ariaLabel: 'Sessions of ' + name + ' over time' }),
      legend);
  }

  function formatDuration(ns) {
    const ms = (ns || 0) / 1e6;
    return ms < 1000 ? ms.toFixed(0) + ' ms' : (ms / 1000).toFixed(1) + ' s';
  }

  // drawChart draws the samples of one server over the last HISTORY ms:
  // a step line per series and the budget dashed.
  function drawChart(canvas, samples, now) {
    const ratio = window.devicePixelRatio || 1;
    const w = Math.max(200, Math.round(canvas.clientWidth * ratio));
    const h = Math.max(100, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    const g = canvas.getContext('2d');
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    const cw = w / ratio;
    const ch = h / ratio;
    const pad = { l: 34, r: 8, t: 8, b: 18 };
    g.clearRect(0, 0, cw, ch);
    g.fillStyle = '#ffffff';
    g.fillRect(0, 0, cw, ch);

    let top = 1;
    for (const s of samples) top = Math.max(top, s.budget, s.open, s.inUse, s.waiting);
    top = Math.ceil(top * 1.15);
    // The last HISTORY ms, or less while the page has not been open that
    // long (at least a minute), so that the first minutes are not a
    // sliver at the right edge.
    const span = Math.min(HISTORY, Math.max(60000, samples.length > 0 ? now - samples[0].t : 0));
    const x = (t) => pad.l + ((t - (now - span)) / span) * (cw - pad.l - pad.r);
    const y = (v) => ch - pad.b - (v / top) * (ch - pad.t - pad.b);

    g.font = '11px system-ui, sans-serif';
    g.fillStyle = '#59636e';
    g.strokeStyle = '#d1d9e0';
    g.lineWidth = 1;
    g.beginPath();
    g.moveTo(pad.l, y(0));
    g.lineTo(cw - pad.r, y(0));
    g.stroke();
    g.textAlign = 'right';
    g.fillText('0', pad.l - 4, y(0) + 4);
    g.fillText(String(top), pad.l - 4, y(top) + 8);
    g.textAlign = 'left';
    g.fillText('-' + (span >= 60000 ? Math.round(span / 60000) + ' min' : Math.round(span / 1000) + ' s'), pad.l, ch - 4);
    g.textAlign = 'right';
    g.fillText('now', cw - pad.r, ch - 4);

    if (samples.length > 0) {
      const last = samples[samples.length - 1];
      g.setLineDash([4, 3]);
      g.strokeStyle = '#8c959f';
      g.beginPath();
      g.moveTo(pad.l, y(last.budget));
      g.lineTo(cw - pad.r, y(last.budget));
      g.stroke();
      g.setLineDash([]);
    }
    g.lineWidth = 2;
    for (const s of SERIES) {
      g.strokeStyle = s.color;
      g.beginPath();
      samples.forEach((p, i) => {
        if (i === 0) g.moveTo(x(p.t), y(p[s.key]));
        else {
          g.lineTo(x(p.t), y(samples[i - 1][s.key]));
          g.lineTo(x(p.t), y(p[s.key]));
        }
      });
      if (samples.length > 0) g.lineTo(x(now), y(samples[samples.length - 1][s.key]));
      g.stroke();
    }
    // For whoever checks what was drawn (the browser tests): the figures
    // of the last sample, and where the zero line is, in canvas pixels.
    canvas.dataset.samples = String(samples.length);
    canvas.dataset.baseline = String(Math.round(y(0) * ratio));
    const last = samples[samples.length - 1];
    canvas.dataset.last = last ? [last.open, last.inUse, last.waiting].join(',') : '';
  }

  // ---------------------------------------------------------------- tenants

  $('filter').addEventListener('input', () => renderTenants());

  // own returns obj[key] if obj has it as its own property: a tenant id
  // such as "constructor" must not find Object.prototype's.
  const own = (obj, key) => (obj && Object.hasOwn(obj, key) ? obj[key] : undefined);

  // renderTenants brings the table up to date in place: rows are kept by
  // tenant and a cell is written only when what it shows changed, so that
  // the focus, a selection, or a click in progress survive the refresh
  // every second.
  function renderTenants() {
    const filter = $('filter').value.trim().toLowerCase();
    const stats = (state.stats && state.stats.Tenants) || null;
    const health = (state.health && state.health.tenants) || null;
    const rows = [];
    const seen = new Set();
    for (const t of state.tenants) {
      seen.add(t.tenant_id);
      if (filter && !t.tenant_id.toLowerCase().includes(filter)) continue;
      let row = state.rows.get(t.tenant_id);
      if (!row) {
        row = newRow(t.tenant_id);
        state.rows.set(t.tenant_id, row);
      }
      updateRow(row, t, own(stats, t.tenant_id), own(health, t.tenant_id));
      rows.push(row);
    }
    for (const id of [...state.rows.keys()]) {
      if (!seen.has(id)) state.rows.delete(id);
    }
    const body = $('tenants').tBodies[0];
    const current = [...body.children];
    if (current.length !== rows.length || current.some((r, i) => r !== rows[i])) body.replaceChildren(...rows);
    $('tenant-count').textContent = '(' + state.tenants.length + (filter ? ', ' + rows.length + ' shown' : '') + ')';
  }

  const COLUMNS = ['id', 'version', 'ready', 'health', 'migration', 'sessions', 'failure'];

  function newRow(id) {
    const row = el('tr', { 'data-tenant': id });
    for (const c of COLUMNS) {
      const cls = { id: 'id', version: 'num', migration: 'num', failure: 'failure' }[c];
      row.append(el('td', cls ? { class: cls, 'data-col': c } : { 'data-col': c }));
    }
    const edit = el('button', { type: 'button', 'data-action': 'edit' }, 'Edit');
    edit.addEventListener('click', () => beginEdit(id));
    const del = el('button', { type: 'button', class: 'danger', 'data-action': 'delete' }, 'Delete');
    del.addEventListener('click', () => deleteTenant(id, del));
    row.append(el('td', { class: 'actions' }, edit, ' ', del));
    return row;
  }

  // setCell shows text in a cell, in a span of class cls ('' for none),
  // with a title; it touches the cell only if one of them changed.
  function setCell(row, col, text, cls, title) {
    const td = row.querySelector('td[data-col="' + col + '"]');
    const key = cls + '\u0000' + text + '\u0000' + (title || '');
    if (td.dataset.shown === key) return;
    td.dataset.shown = key;
    td.replaceChildren(cls ? el('span', { class: cls }, text) : document.createTextNode(text));
    if (title) td.title = title;
    else td.removeAttribute('title');
  }

  function updateRow(row, t, st, hc) {
    setCell(row, 'id', t.tenant_id, '', 'created ' + (t.created_at || '?') + ', updated ' + (t.updated_at || '?'));
    setCell(row, 'version', String(t.version), '');

    if (state.statsMissingAt !== 0) setCell(row, 'ready', 'unknown', 'muted');
    else if (!st) setCell(row, 'ready', 'pending', 'muted', 'this process has not applied it yet, or it has no database under this program\'s key');
    else if (st.Ready) setCell(row, 'ready', 'ready', 'ok');
    else setCell(row, 'ready', 'not ready', 'error');

    if (!hc) {
      setCell(row, 'health', 'not checked', 'muted');
      setCell(row, 'migration', '-', 'muted');
    } else {
      if (hc.result) setCell(row, 'health', hc.msg || 'ok', 'ok');
      else setCell(row, 'health', hc.msg || 'failed', 'error');
      if (hc.migration_version === null || hc.migration_version === undefined) setCell(row, 'migration', 'none', 'muted');
      else setCell(row, 'migration', String(hc.migration_version), '');
    }

    setCell(row, 'sessions', st ? st.Open + ' open, ' + st.InUse + ' in use, ' + st.Waiting + ' waiting' : '-', st ? '' : 'muted');
    if (st && st.LastHookFailure) {
      const f = st.LastHookFailure;
      setCell(row, 'failure', f.Change + ' hooks, ' + new Date(f.Time).toLocaleString() + ': ' + f.Error, st.Ready ? 'warn' : 'error');
    } else {
      setCell(row, 'failure', '-', 'muted');
    }

    const del = row.querySelector('button[data-action="delete"]');
    const c = state.confirmDelete;
    const confirming = c !== null && c.id === t.tenant_id && c.until > Date.now();
    const label = confirming ? 'Confirm delete' : 'Delete';
    if (del.textContent !== label) del.textContent = label;
    if (confirming) del.dataset.confirm = '1';
    else delete del.dataset.confirm;
  }

  async function deleteTenant(id, button) {
    const c = state.confirmDelete;
    if (!c || c.id !== id || c.until <= Date.now()) {
      // A second click within five seconds deletes: no dialog to miss.
      state.confirmDelete = { id, until: Date.now() + 5000 };
      renderTenants();
      setTimeout(renderTenants, 5100);
      return;
    }
    state.confirmDelete = null;
    button.disabled = true;
    try {
      const r = await api('DELETE', 'tenant/' + encodeURIComponent(id) + '/');
      result(r.status === 200, r.status === 200 ? 'Deleted ' + id + '.' : 'Deleting ' + id + ' failed: ' + errorText(r.status, r.data));
      if (r.status === 200 && state.editing && state.editing.id === id) endEdit();
      await refreshTenants();
    } catch (e) {
      if (!(e instanceof APIError)) result(false, 'Deleting ' + id + ': the API cannot be reached: ' + e.message);
    } finally {
      button.disabled = false;
    }
  }

  // ---------------------------------------------------------------- form

  function result(ok, message) {
    const p = $('form-result');
    p.className = ok ? 'ok' : 'error';
    p.textContent = message;
  }

  function beginEdit(id) {
    const t = state.tenants.find((x) => x.tenant_id === id);
    if (!t) return;
    const info = Object.assign({}, t.deploy_info);
    const url = info.POSTGRES_URL || '';
    delete info.POSTGRES_URL;
    state.editing = { id, version: t.version };
    $('form-title').textContent = 'Update ' + id + ' (version ' + t.version + ')';
    $('f-id').value = id;
    $('f-id').readOnly = true;
    $('f-url').value = url;
    $('f-more').value = JSON.stringify(info, null, 2);
    $('f-submit').textContent = 'Update';
    $('f-cancel').hidden = false;
    $('form-help').textContent = 'The API never shows passwords: type each one where ' + PLACEHOLDERS[0] +
      ' stands (and any value shown as ' + PLACEHOLDERS[1] + ' or ' + PLACEHOLDERS[2] + '). ' +
      'The update replaces the whole deploy_info, and fails if the tenant changed since version ' + t.version + '.';
    result(true, '');
    $('f-url').focus();
  }

  function endEdit() {
    state.editing = null;
    $('form-title').textContent = 'Create a tenant';
    $('f-id').readOnly = false;
    $('tenant-form').reset();
    $('f-more').value = '{}';
    $('f-submit').textContent = 'Create';
    $('f-cancel').hidden = true;
    $('form-help').textContent = '';
  }

  $('f-cancel').addEventListener('click', () => {
    endEdit();
    result(true, '');
  });

  $('tenant-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const id = $('f-id').value.trim();
    let info;
    try {
      info = JSON.parse($('f-more').value.trim() || '{}');
    } catch (e) {
      result(false, 'Other deploy_info keys: not JSON: ' + e.message);
      return;
    }
    if (info === null || typeof info !== 'object' || Array.isArray(info)) {
      result(false, 'Other deploy_info keys: want a JSON object of strings, such as {"REGION": "eu"}');
      return;
    }
    info.POSTGRES_URL = $('f-url').value.trim();
    for (const [k, v] of Object.entries(info)) {
      if (typeof v !== 'string') {
        result(false, 'deploy_info.' + k + ': want a string');
        return;
      }
      const placeholder = PLACEHOLDERS.find((p) => v.includes(p));
      if (state.editing && placeholder) {
        result(false, 'deploy_info.' + k + ' still holds ' + placeholder + ', which stands for what the API does not show: type the password or the value in its place.');
        return;
      }
    }
    const submit = $('f-submit');
    submit.disabled = true; // one request per click, not two creates
    try {
      let r;
      if (state.editing) {
        r = await api('PUT', 'tenant/' + encodeURIComponent(id) + '/', { deploy_info: info, version: state.editing.version });
      } else {
        r = await api('POST', 'tenant/', { tenant_id: id, deploy_info: info });
      }
      if (r.status === 200 || r.status === 201) {
        const what = state.editing ? 'Updated ' : 'Created ';
        endEdit();
        result(true, what + id + ' (version ' + r.data.version + ').');
      } else {
        result(false, errorText(r.status, r.data));
      }
      await refreshTenants();
    } catch (e) {
      if (!(e instanceof APIError)) result(false, 'The API cannot be reached: ' + e.message);
    } finally {
      submit.disabled = false;
    }
  });

  open();
})();
