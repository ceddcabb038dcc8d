// Tern's operator console. Plain browser JavaScript, served by the core node; every figure comes from
// the node's admin endpoints, with the admin token this tab keeps in sessionStorage.
'use strict';

const TOKEN_KEY = 'tern-admin-token';
const REFRESH_MS = 2000;
const HISTORY = 30;
const DEVICE = { 0: 'app', 1: 'web', 2: 'desktop' };

const $ = (id) => document.getElementById(id);
const state = { view: 'core', timer: null, history: {}, last: null, overview: null };

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function table(target, head, rows) {
  target.replaceChildren(
    el('thead', {}, el('tr', {}, head.map((h) => el('th', h.narrow ? { class: 'hide-narrow' } : {}, h.text ?? h)))),
    el('tbody', {}, rows.length ? rows : [el('tr', {}, el('td', { colspan: head.length, class: 'muted' }, 'none'))]),
  );
}

function dot(kind) { return el('span', { class: `dot ${kind}` }); }

class Unauthorized extends Error {}

async function api(path, body) {
  const token = sessionStorage.getItem(TOKEN_KEY) || '';
  const init = { headers: { token }, cache: 'no-store' };
  if (body !== undefined) {
    init.method = 'POST';
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = text; }
  if (r.status === 401) throw new Unauthorized((json && json.msg) || 'unauthorized');
  if (!r.ok) throw new Error((json && json.msg) || `${r.status}`);
  return json;
}

function log(text, failed = false) {
  document.querySelector('.log-title').hidden = false;
  const stamp = new Date().toLocaleTimeString();
  $('log').prepend(el('li', failed ? { class: 'failed' } : {}, `${stamp} ${text}`));
}

/// An action the operator confirmed, carried out and logged (here and in the node's log).
async function act(question, what, run) {
  if (!window.confirm(question)) return;
  try {
    await run();
    log(`${what}: done`);
  } catch (e) {
    log(`${what}: ${e.message}`, true);
  }
  refresh();
}

// ---- sign in ----

async function signIn(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  try {
    await api('/console/api/overview');
  } catch (e) {
    sessionStorage.removeItem(TOKEN_KEY);
    throw e;
  }
  $('login').hidden = true;
  $('tabs').hidden = false;
  $('logout').hidden = false;
  show(state.view);
}

function signOut(message = '') {
  sessionStorage.removeItem(TOKEN_KEY);
  clearInterval(state.timer);
  state.timer = null;
  for (const v of document.querySelectorAll('.view')) v.hidden = true;
  $('tabs').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('node').textContent = '';
  $('login-error').textContent = message;
}

function show(view) {
  state.view = view;
  for (const b of document.querySelectorAll('nav button')) b.classList.toggle('active', b.dataset.view === view);
  for (const v of document.querySelectorAll('.view')) v.hidden = v.id !== `view-${view}`;
  clearInterval(state.timer);
  state.timer = setInterval(refresh, REFRESH_MS);
  refresh();
}

async function refresh() {
  try {
    const o = await api('/console/api/overview');
    state.overview = o;
    $('node').textContent = `node ${o.cluster.node_id} · ${o.cluster.nodes.length} nodes · ${o.cluster.slots} slots`;
    rates(o);
    edgeRates(o);
    if (state.view === 'core') core(o);
    if (state.view === 'deployment') deployment(o);
  } catch (e) {
    if (e instanceof Unauthorized) signOut(e.message);
  }
}

// ---- core ----

function rates(o) {
  const c = { ...o.counters, at: o.at_ms };
  const prev = state.last;
  state.last = c;
  if (!prev || c.at <= prev.at) return;
  const secs = (c.at - prev.at) / 1000;
  for (const k of ['messages_stored', 'deliveries', 'raft_commits', 'wal_syncs']) {
    const h = (state.history[k] ||= []);
    h.push(Math.max(0, (c[k] - prev[k]) / secs));
    if (h.length > HISTORY) h.shift();
  }
  const h = (state.history.online_sessions ||= []);
  h.push(c.online_sessions);
  if (h.length > HISTORY) h.shift();
}

// Client connections per second at each edge, from the totals the edges report.
function edgeRates(o) {
  const edges = state.edgeConnects || {};
  state.edgeConnects = {};
  for (const e of o.edges) {
    if (e.connects == null) continue;
    const was = edges[e.id];
    const secs = was ? (o.at_ms - was.at) / 1000 : 0;
    const rate = secs > 0 && e.connects >= was.connects ? (e.connects - was.connects) / secs : null;
    state.edgeConnects[e.id] = { connects: e.connects, at: o.at_ms, rate };
  }
}

function spark(points) {
  const max = Math.max(1, ...points);
  const step = 100 / Math.max(1, HISTORY - 1);
  const coords = points.map((p, i) => `${(i * step).toFixed(1)},${(36 - (p / max) * 34).toFixed(1)}`).join(' ');
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 100 36');
  svg.setAttribute('preserveAspectRatio', 'none');
  const line = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
  line.setAttribute('points', coords);
  svg.append(line);
  return svg;
}

function core(o) {
  const cards = [
    ['messages_stored', 'messages stored /s'],
    ['deliveries', 'deliveries /s'],
    ['raft_commits', 'raft entries committed here /s'],
    ['wal_syncs', 'fsyncs /s'],
    ['online_sessions', 'sessions online'],
  ].map(([k, label]) => {
    const h = state.history[k] || [];
    const now = h.length ? h[h.length - 1] : 0;
    return el('div', { class: 'card', 'data-rate': k }, el('div', { class: 'label' }, label),
      el('div', { class: 'value' }, Math.round(now).toLocaleString()), spark(h));
  });
  $('rates').replaceChildren(...cards);

  const cl = o.cluster;
  const voters = cl.nodes.filter((n) => n.voter).map((n) => n.id);
  table($('nodes'), ['', 'node', { text: 'raft address', narrow: true }, 'role', 'slots led', ''], cl.nodes.map((n) => {
    const led = cl.leaders[String(n.id)] || 0;
    const remove = el('button', {
      type: 'button', class: 'danger',
      onclick: () => act(`Remove node ${n.id} from every raft group? Its data stays on its disk.`, `node ${n.id} removed`,
        () => api('/cluster/nodes/remove', { id: n.id })),
    }, 'Remove');
    const reached = n.id === cl.node_id || o.reachable[String(n.id)] !== false;
    return el('tr', { 'data-node': n.id, title: reached ? '' : 'did not answer this node\'s last probe' },
      el('td', {}, dot(!reached ? 'bad' : n.voter ? 'ok' : 'warn')),
      el('td', {}, `node ${n.id} `, n.id === cl.node_id ? el('span', { class: 'badge me' }, 'this node') : ''),
      el('td', { class: 'hide-narrow' }, n.raft_addr),
      el('td', {}, `${n.voter ? 'voter' : 'learner'}${reached ? '' : ', unreachable'}`,
        n.raft_version ? el('span', { class: 'muted hide-narrow' }, ` · raft v${n.raft_version}`) : ''),
      el('td', {}, String(led)),
      el('td', {}, n.id === cl.node_id ? '' : remove));
  }));

  table($('slots'), ['slot', 'leader', 'term', { text: 'log / applied', narrow: true }, { text: 'follower lag', narrow: true }, 'move leader'],
    cl.groups.map((g) => {
      const lag = g.replication
        ? Object.entries(g.replication).filter(([id]) => Number(id) !== g.leader).map(([id, r]) => `n${id}: ${r.lag}`).join(', ')
        : '—';
      const target = el('select', { 'aria-label': `new leader of slot ${g.slot}` },
        voters.filter((v) => v !== g.leader).map((v) => el('option', { value: v }, `node ${v}`)));
      const move = el('button', {
        type: 'button',
        onclick: () => act(`Move the leadership of slot ${g.slot} to node ${target.value}?`,
          `slot ${g.slot} leader → node ${target.value}`,
          () => api('/cluster/leader/transfer', { node_id: Number(target.value), slot: g.slot })),
      }, 'Move');
      return el('tr', { 'data-slot': g.slot },
        el('td', {}, String(g.slot)),
        el('td', { class: 'leader' }, g.leader ? [dot('ok'), `node ${g.leader}`] : [dot('bad'), 'none']),
        el('td', {}, String(g.term)),
        el('td', { class: 'hide-narrow' }, `${g.last_log} / ${g.last_applied ?? 0}`),
        el('td', { class: 'hide-narrow' }, lag),
        el('td', {}, target, ' ', move));
    }));
}

// ---- deployment ----

function deployment(o) {
  const regions = {};
  for (const e of o.edges) (regions[e.region || '(no region)'] ||= []).push(e);
  const cards = Object.entries(regions).sort().map(([region, edges]) => el('div', { class: 'card', 'data-region': region },
    el('div', { class: 'label' }, 'region'),
    el('div', { class: 'value' }, region),
    el('ul', {}, edges.map(edgeLine))));
  $('regions').replaceChildren(...(cards.length ? cards : [el('p', { class: 'muted' }, 'no edge is linked to this node')]));
  const cl = o.cluster;
  $('voters').replaceChildren(...cl.nodes.map((n) => el('div', { class: 'card', 'data-node': n.id },
    el('div', { class: 'label' }, dot(n.id === cl.node_id || o.reachable[String(n.id)] !== false ? 'ok' : 'bad'),
      n.voter ? 'voter' : 'learner'),
    el('div', { class: 'value' }, `node ${n.id}`),
    el('div', { class: 'muted' }, `${cl.leaders[String(n.id)] || 0} slots led · ${n.raft_addr}`))));
}

// An edge: sessions, connections per second, and its link round trip to each core node (edges of
// link version 7 report them).
function edgeLine(e) {
  const rate = state.edgeConnects?.[e.id]?.rate;
  const rtts = Object.entries(e.rtt_ms_by_node || {}).map(([node, ms]) =>
    el('span', { class: 'rtt', 'data-rtt-node': node }, `n${node} ${ms.toFixed(1)} ms`));
  return el('li', { 'data-edge': e.id }, dot('ok'),
    `${e.id}: ${e.sessions.toLocaleString()} session${e.sessions === 1 ? '' : 's'}`,
    rate == null ? '' : el('span', { class: 'muted', 'data-connects': e.id }, ` · ${rate.toFixed(1)} connects/s`),
    rtts.length ? el('div', { class: 'muted' }, 'link round trip: ', ...rtts.flatMap((r, i) => (i ? [' · ', r] : [r]))) : '');
}

// ---- users ----

async function lookUpUser(uid) {
  const out = $('user');
  out.replaceChildren(el('p', { class: 'muted' }, 'looking up…'));
  try {
    const [u, conversations] = await Promise.all([
      api(`/console/api/user?uid=${encodeURIComponent(uid)}`),
      api('/conversation/sync', { uid, version: 0, msg_count: 0 }),
    ]);
    const sessions = el('table', { id: 'user-sessions' });
    table(sessions, ['', 'device', 'edge', 'session', ''], u.sessions.map((s) => el('tr', { 'data-edge': s.edge_id },
      el('td', {}, dot('ok')),
      el('td', {}, DEVICE[s.device_flag] || `flag ${s.device_flag}`),
      el('td', { class: 'edge' }, s.edge_id),
      el('td', {}, String(s.session)),
      el('td', {}, el('button', {
        type: 'button', class: 'danger',
        onclick: () => act(`Sign ${uid} out on every ${DEVICE[s.device_flag] || 'such'} device (the token is revoked)?`,
          `${uid}: devices with flag ${s.device_flag} signed out`,
          () => api('/user/device_quit', { uid, device_flag: s.device_flag }).then(() => lookUpUser(uid))),
      }, 'Kick device')))));
    const convs = el('table');
    table(convs, ['channel', 'type', 'unread', 'last seq'], conversations.map((c) => el('tr', {},
      el('td', {}, c.channel_id), el('td', {}, c.channel_type === 1 ? 'person' : c.channel_type === 2 ? 'group' : String(c.channel_type)),
      el('td', {}, c.unread > 0 ? el('span', { class: 'badge' }, String(c.unread)) : '0'),
      el('td', {}, String(c.last_msg_seq)))));
    const ban = el('button', {
      type: 'button', class: u.banned ? '' : 'danger',
      onclick: () => act(`${u.banned ? 'Lift the ban on' : 'Ban'} ${uid}?`, `${uid} ${u.banned ? 'unbanned' : 'banned'}`,
        () => api('/channel/info', { channel_id: uid, channel_type: 1, ban: u.banned ? 0 : 1 }).then(() => lookUpUser(uid))),
    }, u.banned ? 'Lift ban' : 'Ban user');
    out.replaceChildren(
      el('div', { class: 'bar' }, el('h2', {}, dot(u.sessions.length ? 'ok' : 'bad'), `${uid}: ${u.sessions.length ? 'online' : 'offline'}${u.banned ? ' · banned' : ''}`), ban),
      sessions, el('h2', {}, 'Conversations'), convs);
  } catch (e) {
    if (e instanceof Unauthorized) return signOut(e.message);
    out.replaceChildren(el('p', { class: 'error' }, e.message));
  }
}

// ---- channels ----

async function lookUpChannel(id, type) {
  const out = $('channel');
  out.replaceChildren(el('p', { class: 'muted' }, 'looking up…'));
  try {
    const c = await api(`/console/api/channel?channel_id=${encodeURIComponent(id)}&channel_type=${type}`);
    const parts = [el('h2', {}, dot(c.exists || type === 1 ? 'ok' : 'bad'),
      `${c.channel_id}: ${c.members_total.toLocaleString()} members, last seq ${c.last_seq}${c.ban ? ' · banned' : ''}`)];
    const list = (title, uids) => [el('h2', {}, `${title} (${uids.length})`), el('p', {}, uids.length ? uids.join(', ') : el('span', { class: 'muted' }, 'empty'))];
    if (type !== 1) parts.push(...list(`Members${c.members_total > c.members.length ? ', first ' + c.members.length : ''}`, c.members));
    parts.push(...list('Deny list', c.deny), ...list('Allow list', c.allow));
    if (type !== 1 && c.last_seq > 0) {
      const page = await api('/channel/messagesync', { channel_id: id, channel_type: type, start_message_seq: 0, end_message_seq: 0, limit: 10, pull_mode: 0 });
      const msgs = el('table');
      table(msgs, ['seq', 'from', 'time', { text: 'payload', narrow: true }], page.messages.slice().reverse().map((m) => {
        let text = '';
        try { text = atob(m.payload).slice(0, 80); } catch { text = '(binary)'; }
        return el('tr', {}, el('td', {}, String(m.message_seq)), el('td', {}, m.from_uid),
          el('td', {}, new Date(m.timestamp * 1000).toLocaleString()), el('td', { class: 'hide-narrow' }, text));
      }));
      parts.push(el('h2', {}, 'Last messages'), msgs);
    }
    out.replaceChildren(...parts);
  } catch (e) {
    if (e instanceof Unauthorized) return signOut(e.message);
    out.replaceChildren(el('p', { class: 'error' }, e.message));
  }
}

// ---- wiring ----

document.addEventListener('DOMContentLoaded', () => {
  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('login-error').textContent = '';
    try {
      await signIn($('token').value);
    } catch (e) {
      $('login-error').textContent = e instanceof Unauthorized ? 'That token is not this cluster\'s admin token.' : e.message;
    }
  });
  $('logout').addEventListener('click', () => signOut());
  for (const b of document.querySelectorAll('nav button')) b.addEventListener('click', () => show(b.dataset.view));
  $('add-node').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const id = Number($('add-id').value);
    const raftAddr = $('add-addr').value.trim();
    act(`Add node ${id} at ${raftAddr}? It must be running with join = true; it becomes a voter once caught up.`,
      `node ${id} added`, () => api('/cluster/nodes/add', { id, raft_addr: raftAddr }));
  });
  $('balance').addEventListener('click', () => act('Spread slot leadership evenly over the voters?', 'leadership rebalanced',
    () => api('/cluster/leader/balance', {})));
  $('user-form').addEventListener('submit', (ev) => { ev.preventDefault(); lookUpUser($('uid').value.trim()); });
  $('channel-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    lookUpChannel($('channel-id').value.trim(), Number($('channel-type').value));
  });
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) signIn(token).catch(() => signOut());
});
