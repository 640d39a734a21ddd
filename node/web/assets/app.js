// sagachain web UI.
//
// One page with hash routing (#/, #/?status=S, #/op/<id>, #/chain) over the
// node's JSON-RPC API: calls are HTTP POSTs to "/", live views are the
// newBlocks and operationEvents subscriptions over a WebSocket on "/".
//
// Every text that comes from the node is put into the page with textContent
// or setAttribute, never as markup: operation outputs and failure reasons
// are written by users. Event handlers are functions attached with
// addEventListener, never strings.
'use strict';

(() => {
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const FINAL = new Set(['completed', 'rolled_back', 'rollback_failed']);
  const HASH_RE = /^0x[0-9a-fA-F]{64}$/;
  const CODE_NOT_FOUND = -32010;
  const OPS_LIMIT = 50;
  const CHAIN_BLOCKS = 20;
  const GRAPH_ROWS_CARD = 8;
  const GRAPH_ROWS_PAGE = 40;

  // The status filters of the operations list; key is sc_operations' status.
  const FILTERS = [
    { key: '', label: 'All' },
    { key: 'running', label: 'Running' },
    { key: 'completed', label: 'Completed' },
    { key: 'rolled_back', label: 'Rolled back' },
    { key: 'rollback_failed', label: 'Rollback failed' },
    { key: 'rolling_back', label: 'Retrying', title: 'rolling_back: rollbacks running, or retried after a rollback failed' },
  ];

  // A mark drawn in a task box next to its id, so that status does not
  // depend on colour alone.
  const TASK_MARK = {
    pending: '', running: '…', succeeded: '✓', failed: '✗', timed_out: '◷',
    rolled_back: '↺', rollback_failed: '!',
  };
  const STATUS_LEGEND = ['pending', 'running', 'succeeded', 'failed', 'timed_out', 'rolled_back', 'rollback_failed'];

  // ---- DOM building: text is always text ----

  function setAttrs(node, attrs) {
    if (!attrs) return;
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') {
        node.textContent = String(v);
      } else if (k.startsWith('on')) {
        if (typeof v !== 'function') throw new TypeError(`handler ${k} is not a function`);
        node.addEventListener(k.slice(2), v);
      } else {
        node.setAttribute(k, v === true ? '' : String(v));
      }
    }
  }

  function appendAll(node, children) {
    for (const c of children) {
      if (c === undefined || c === null || c === false) continue;
      if (Array.isArray(c)) appendAll(node, c);
      else if (c instanceof Node) node.appendChild(c);
      else node.appendChild(document.createTextNode(String(c)));
    }
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    appendAll(node, children);
    return node;
  }

  function svgEl(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    appendAll(node, children);
    return node;
  }

  const isHash = (s) => typeof s === 'string' && HASH_RE.test(s);
  const short = (h) => (typeof h === 'string' && h.length > 14 ? `${h.slice(0, 8)}…${h.slice(-4)}` : String(h ?? ''));
  const opHref = (id) => `#/op/${id}`;
  const words = (s) => String(s ?? '').replace(/_/g, ' ');

  function hashCode(h, cls) {
    return el('code', { class: cls || 'hash', title: h }, short(h));
  }

  function badge(status, label) {
    return el('span', { class: `badge st-${status}`, 'data-status': status }, label ?? words(status));
  }

  function fmtTime(ms) {
    if (!ms) return '';
    const d = new Date(Number(ms));
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }

  // ---- JSON-RPC ----

  let callSeq = 0;

  class RPCError extends Error {
    constructor(method, error) {
      super(`${method}: ${error.message}`);
      this.code = error.code;
    }
  }

  async function call(method, ...params) {
    const res = await fetch('/', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: ++callSeq, method, params }),
    });
    if (!res.ok) throw new Error(`${method}: HTTP ${res.status}`);
    const msg = await res.json();
    if (msg.error) throw new RPCError(method, msg.error);
    return msg.result;
  }

  // Live is the WebSocket side: subscriptions that survive reconnects. A
  // subscription is opened again on every new connection; the node sends
  // an operation's current view at once on subscribing, and listeners of
  // onReconnect refresh what may have changed while the socket was down.
  class Live {
    constructor(url) {
      this.url = url;
      this.seq = 0;
      this.ws = null;
      this.open = false;
      this.everOpen = false;
      this.backoff = 500;
      this.pending = new Map(); // request id -> {resolve, reject}
      this.subs = new Set();
      this.byServerId = new Map();
      this.stateListeners = new Set();
      this.reconnectListeners = new Set();
      this.connect();
    }

    connect() {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      ws.addEventListener('open', () => {
        this.open = true;
        this.backoff = 500;
        this.stateListeners.forEach((f) => f(true));
        for (const sub of this.subs) this.start(sub);
        if (this.everOpen) this.reconnectListeners.forEach((f) => f());
        this.everOpen = true;
      });
      ws.addEventListener('message', (ev) => this.receive(ev.data));
      ws.addEventListener('close', () => {
        this.open = false;
        this.stateListeners.forEach((f) => f(false));
        for (const p of this.pending.values()) p.reject(new Error('connection closed'));
        this.pending.clear();
        this.byServerId.clear();
        for (const sub of this.subs) sub.serverId = null;
        setTimeout(() => this.connect(), this.backoff);
        this.backoff = Math.min(this.backoff * 2, 10000);
      });
    }

    request(method, params) {
      return new Promise((resolve, reject) => {
        if (!this.open) {
          reject(new Error('not connected'));
          return;
        }
        const id = ++this.seq;
        this.pending.set(id, { resolve, reject });
        this.ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
      });
    }

    receive(data) {
      let msg;
      try {
        msg = JSON.parse(data);
      } catch {
        return;
      }
      if (msg.method === 'sc_subscription' && msg.params) {
        const sub = this.byServerId.get(msg.params.subscription);
        if (sub && !sub.closed) sub.onData(msg.params.result);
        return;
      }
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.error) p.reject(new RPCError('sc_subscribe', msg.error));
      else p.resolve(msg.result);
    }

    // subscribe opens sc_subscribe(...params) now or once connected, and
    // calls onData with every notification until unsubscribe.
    subscribe(params, onData, onError) {
      const sub = { params, onData, onError, serverId: null, closed: false };
      this.subs.add(sub);
      if (this.open) this.start(sub);
      return sub;
    }

    start(sub) {
      this.request('sc_subscribe', sub.params).then((id) => {
        if (sub.closed) {
          this.request('sc_unsubscribe', [id]).catch(() => {});
          return;
        }
        sub.serverId = id;
        this.byServerId.set(id, sub);
      }, (err) => {
        if (!sub.closed && sub.onError && err instanceof RPCError) sub.onError(err);
      });
    }

    unsubscribe(sub) {
      if (!sub || sub.closed) return;
      sub.closed = true;
      this.subs.delete(sub);
      if (sub.serverId) {
        this.byServerId.delete(sub.serverId);
        this.request('sc_unsubscribe', [sub.serverId]).catch(() => {});
      }
    }

    onState(f) { this.stateListeners.add(f); f(this.open); }
    onReconnect(f) { this.reconnectListeners.add(f); return () => this.reconnectListeners.delete(f); }
  }

  const live = new Live(`${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/`);

  // One newBlocks subscription for the whole page; pages listen to it.
  const blockListeners = new Set();
  function onBlock(f) {
    blockListeners.add(f);
    return () => blockListeners.delete(f);
  }
  live.subscribe(['newBlocks'], (b) => {
    setHead(b.height);
    blockListeners.forEach((f) => f(b));
  });

  function setHead(height) {
    const node = document.getElementById('head');
    if (node && height !== undefined) node.textContent = `block ${height}`;
  }

  live.onState((up) => {
    const node = document.getElementById('conn');
    if (!node) return;
    node.dataset.state = up ? 'live' : 'connecting';
    node.textContent = up ? 'live' : 'reconnecting…';
  });

  function showError(err) {
    const box = document.getElementById('error');
    if (!err) {
      box.hidden = true;
      box.textContent = '';
      return;
    }
    box.textContent = err instanceof Error ? err.message : String(err);
    box.hidden = false;
  }

  // A Coalescer runs an async refresh, and when asked again while one runs,
  // runs it once more afterwards rather than once per request.
  function coalesce(ctx, fn) {
    let running = false;
    let again = false;
    return async function run() {
      if (running) {
        again = true;
        return;
      }
      running = true;
      try {
        do {
          again = false;
          await fn();
          showError(null);
        } while (again && ctx.alive);
      } catch (err) {
        if (ctx.alive) showError(err);
      } finally {
        running = false;
      }
    };
  }

  // ---- the stage graph ----

  let graphSeq = 0;

  // stageGraph draws an operation's stages as columns, left to right, with
  // a box per task coloured by its status and an arrow per dependency.
  function stageGraph(view, large) {
    const stages = Array.isArray(view.stages) ? view.stages : [];
    // An operation may have thousands of tasks: a stage draws at most
    // `cap` boxes, the last of them saying how many more it has.
    const cap = large ? GRAPH_ROWS_PAGE : GRAPH_ROWS_CARD;
    const columns = stages.map((s) => {
      const tasks = s.tasks || [];
      return tasks.length > cap ? { shown: tasks.slice(0, cap - 1), more: tasks.length - cap + 1 } : { shown: tasks, more: 0 };
    });
    const rows = Math.max(1, ...columns.map((c) => c.shown.length + (c.more ? 1 : 0)));
    // The page draws big boxes for a graph that fits a screen, and packs
    // taller ones tighter.
    let g = { w: 104, h: 28, gx: 34, gy: 8, pad: 6, head: 16, font: 11 };
    if (large && rows <= 10) g = { w: 150, h: 44, gx: 64, gy: 16, pad: 14, head: 26, font: 14 };
    else if (large) g = { w: 140, h: 30, gx: 56, gy: 6, pad: 14, head: 26, font: 13 };
    const width = g.pad * 2 + stages.length * g.w + Math.max(0, stages.length - 1) * g.gx;
    const height = g.pad * 2 + g.head + rows * g.h + (rows - 1) * g.gy;
    const markerId = `arrow-${++graphSeq}`;

    const root = svgEl('svg', {
      class: `stage-graph${large ? ' large' : ''}`, 'data-op': view.id,
      viewBox: `0 0 ${width} ${height}`, width, height, role: 'img',
      'aria-label': `stage graph of ${view.name}`,
    });
    if (!large) {
      // A card scales its graph down to fit, but not below where the
      // labels stay readable; wider graphs scroll instead.
      root.style.maxWidth = `${width}px`;
      root.style.minWidth = `${Math.round(width * 0.7)}px`;
    }
    root.appendChild(svgEl('defs', null,
      svgEl('marker', { id: markerId, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
        svgEl('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrowhead' }))));

    const pos = new Map();
    const rowY = (k, i) => {
      const n = columns[k].shown.length + (columns[k].more ? 1 : 0);
      return g.pad + g.head + ((rows - n) * (g.h + g.gy)) / 2 + i * (g.h + g.gy);
    };
    columns.forEach((c, k) => {
      const x = g.pad + k * (g.w + g.gx);
      c.shown.forEach((t, i) => pos.set(t.id, { x, y: rowY(k, i) }));
    });

    const edges = svgEl('g', { class: 'edges' });
    const nodes = svgEl('g', { class: 'nodes' });
    const headers = svgEl('g', { class: 'stage-heads' });
    root.append(headers, edges, nodes);

    const maxChars = Math.max(4, Math.floor((g.w - 24) / (g.font * 0.6)));
    stages.forEach((s, k) => {
      const x = g.pad + k * (g.w + g.gx);
      headers.appendChild(svgEl('text', { x: x + g.w / 2, y: g.pad + g.head - (large ? 9 : 5), class: `stage-head st-${s.status}`, 'text-anchor': 'middle' },
        `stage ${s.index ?? k}`));
      const { shown, more } = columns[k];
      if (more) {
        nodes.appendChild(svgEl('g', { class: 'more', transform: `translate(${x},${rowY(k, shown.length)})` },
          svgEl('rect', { width: g.w, height: g.h, rx: 6, ry: 6 }),
          svgEl('text', { x: g.w / 2, y: g.h / 2, 'dominant-baseline': 'central', 'text-anchor': 'middle', 'font-size': g.font }, `+${more} more`)));
      }
      for (const t of shown) {
        const p = pos.get(t.id);
        for (const d of t.deps || []) {
          const q = pos.get(d);
          if (!q) continue;
          const x1 = q.x + g.w;
          const y1 = q.y + g.h / 2;
          const x2 = p.x - 1;
          const y2 = p.y + g.h / 2;
          const dx = Math.max(12, (x2 - x1) / 2);
          edges.appendChild(svgEl('path', {
            class: 'edge', d: `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`,
            'marker-end': `url(#${markerId})`, 'data-from': d, 'data-to': t.id,
          }));
        }
        const status = String(t.status || 'pending');
        const label = t.id.length > maxChars ? `${t.id.slice(0, maxChars - 1)}…` : t.id;
        const mark = TASK_MARK[status] ?? '';
        let tip = `${t.id}: ${words(status)}`;
        if (t.outcome && t.outcome !== status) tip += ` (ran: ${words(t.outcome)})`;
        if (t.error) tip += `\n${t.error}`;
        if (t.rollback_error) tip += `\nundo: ${t.rollback_error}`;
        nodes.appendChild(svgEl('g', { class: `task st-${status}`, 'data-task': t.id, 'data-status': status, transform: `translate(${p.x},${p.y})`, tabindex: large ? 0 : null },
          svgEl('title', null, tip),
          svgEl('rect', { width: g.w, height: g.h, rx: large ? 8 : 6, ry: large ? 8 : 6 }),
          svgEl('text', { x: 9, y: g.h / 2, 'dominant-baseline': 'central', 'font-size': g.font, class: 'task-label' }, label),
          mark ? svgEl('text', { x: g.w - 8, y: g.h / 2, 'dominant-baseline': 'central', 'text-anchor': 'end', 'font-size': g.font, class: 'task-mark' }, mark) : null));
      }
    });
    return root;
  }

  function legend() {
    return el('ul', { class: 'legend' }, STATUS_LEGEND.map((s) => el('li', null,
      el('span', { class: `swatch st-${s}` }), ` ${TASK_MARK[s] ? `${TASK_MARK[s]} ` : ''}${words(s)}`)));
  }

  // ---- routing ----

  let current = null;

  function route() {
    if (current) {
      current.alive = false;
      current.cleanups.forEach((f) => f());
    }
    const ctx = { alive: true, cleanups: [] };
    current = ctx;
    showError(null);
    const main = document.getElementById('main');
    main.replaceChildren();
    const hash = location.hash || '#/';
    let m;
    let page = '';
    if ((m = /^#\/op\/([^/?#]+)$/.exec(hash))) {
      showOperation(ctx, main, decodeURIComponent(m[1]));
    } else if (hash === '#/chain') {
      page = 'chain';
      showChain(ctx, main);
    } else if (hash === '#/' || hash === '#' || hash.startsWith('#/?')) {
      page = 'home';
      showHome(ctx, main, new URLSearchParams(hash.slice(hash.indexOf('?') + 1 || hash.length)));
    } else {
      document.title = 'Not found · sagachain';
      main.append(el('section', { class: 'notice' }, el('h1', null, 'Not found'),
        el('p', null, 'No page here. ', el('a', { href: '#/' }, 'Back to the operations'), '.')));
    }
    for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('active', a.dataset.nav === page);
  }

  // ---- home: the latest operations ----

  function showHome(ctx, main, query) {
    let status = query.get('status') || '';
    if (!FILTERS.some((f) => f.key === status)) status = '';
    const filter = FILTERS.find((f) => f.key === status);
    document.title = 'Operations · sagachain';

    const note = el('p', { class: 'muted', id: 'ops-note' }, 'Loading…');
    const list = el('div', { id: 'op-list', class: 'op-list' });
    main.append(el('section', { class: 'home' },
      el('div', { class: 'title-row' },
        el('h1', null, 'Operations'),
        el('nav', { class: 'filters', 'aria-label': 'Filter by status' }, FILTERS.map((f) => el('a', {
          href: f.key ? `#/?status=${f.key}` : '#/', class: `filter${f.key === status ? ' active' : ''}`,
          'data-filter': f.key || 'all', title: f.title,
        }, f.label)))),
      note, list));

    // Cards by operation id; each live one follows its operationEvents.
    const cards = new Map();

    function update(c, v) {
      // Every change adds to an operation's history, so a view with no
      // more events than the one drawn is old or the same; redrawing it
      // would only replace nodes under the reader's pointer.
      if (c.view && (v.events || []).length <= (c.view.events || []).length) return;
      c.view = v;
      c.card.dataset.status = v.status;
      c.card.replaceChildren(
        el('div', { class: 'card-head' },
          el('a', { class: 'op-link', href: opHref(v.id) }, v.name),
          badge(v.status),
          el('span', { class: 'muted small', title: `submitted at block ${v.submitted_height ?? ''}` }, 'block ', String(v.submitted_height ?? '')),
          el('code', { class: 'hash small', title: v.id }, short(v.id))),
        el('a', { class: 'graph-link', href: opHref(v.id), 'aria-label': `open ${v.name}` }, stageGraph(v, false)));
      if (!FINAL.has(v.status) && !c.sub) {
        c.sub = live.subscribe(['operationEvents', v.id], (nv) => {
          const cc = cards.get(nv.id);
          if (ctx.alive && cc) update(cc, nv);
        });
      } else if (FINAL.has(v.status) && c.sub) {
        live.unsubscribe(c.sub);
        c.sub = null;
      }
    }

    const refresh = coalesce(ctx, async () => {
      const ops = await call('sc_operations', status ? { status, limit: OPS_LIMIT } : { limit: OPS_LIMIT });
      if (!ctx.alive) return;
      const seen = new Set();
      const shown = [];
      for (const v of ops || []) {
        if (!isHash(v.id)) continue;
        seen.add(v.id);
        let c = cards.get(v.id);
        if (!c) {
          c = { view: null, sub: null, card: el('article', { class: 'op-card', 'data-op-card': v.id }) };
          cards.set(v.id, c);
        }
        update(c, v);
        shown.push(c.card);
      }
      for (const [id, c] of cards) {
        if (seen.has(id)) continue;
        live.unsubscribe(c.sub);
        cards.delete(id);
      }
      list.replaceChildren(...shown);
      if (shown.length) note.textContent = '';
      else if (status) note.textContent = `No operation is ${filter.label.toLowerCase()}.`;
      else note.textContent = 'No operations yet. Submit one with: sagachain submit FILE';
    });

    // A block changes the list when it brings an operation not shown, or
    // one shown that no longer follows its own events (a retried one);
    // with a status filter, any change can move operations in or out.
    ctx.cleanups.push(onBlock((b) => {
      const ops = b.operations || [];
      if (ops.length === 0) return;
      if (status || ops.some((id) => !cards.get(id)?.sub)) refresh();
    }));
    ctx.cleanups.push(live.onReconnect(refresh));
    ctx.cleanups.push(() => {
      for (const c of cards.values()) live.unsubscribe(c.sub);
      cards.clear();
    });
    refresh();
  }

  // ---- one operation ----

  function showOperation(ctx, main, id) {
    document.title = 'Operation · sagachain';
    const root = el('section', { class: 'op-page' }, el('p', { class: 'muted' }, 'Loading…'));
    main.append(root);
    if (!isHash(id)) {
      root.replaceChildren(el('h1', null, 'Not an operation id'),
        el('p', null, 'An operation id is 0x followed by 64 hex digits; this page was given: ', el('code', null, id)));
      return;
    }
    const open = new Set(); // tasks whose output is expanded, kept across updates
    let shown = null;
    let sub = null;

    function render(v) {
      if (!ctx.alive) return;
      if (shown && (v.events || []).length <= (shown.events || []).length) return;
      shown = v;
      document.title = `${v.name} · sagachain`;
      root.replaceChildren(...operationPage(v, open));
      if (FINAL.has(v.status)) {
        live.unsubscribe(sub);
        sub = null;
      }
    }

    const load = coalesce(ctx, async () => {
      let v;
      try {
        v = await call('sc_operation', id);
      } catch (err) {
        if (err.code !== CODE_NOT_FOUND) throw err;
        if (ctx.alive && !shown) {
          root.replaceChildren(el('h1', null, 'Operation not found'),
            el('p', null, 'This node holds no operation ', el('code', null, id),
              '. A submission that is still waiting for its block shows up here once committed.'));
        }
        return;
      }
      render(v);
      if (ctx.alive && !FINAL.has(v.status) && !sub) {
        sub = live.subscribe(['operationEvents', id], render);
      }
    });

    ctx.cleanups.push(onBlock((b) => {
      // A block that touches the operation while it is not followed: it
      // was retried after a failed rollback, or it was not committed yet.
      if (!sub && (b.operations || []).includes(id)) load();
    }));
    ctx.cleanups.push(live.onReconnect(load));
    ctx.cleanups.push(() => live.unsubscribe(sub));
    load();
  }

  function operationPage(v, open) {
    const tasks = (v.stages || []).reduce((n, s) => n + (s.tasks || []).length, 0);
    const header = el('header', { class: 'op-header' },
      el('div', { class: 'title-row' }, el('h1', { id: 'op-name' }, v.name), badge(v.status)),
      el('dl', { class: 'facts' },
        el('dt', null, 'id'), el('dd', null, el('code', { id: 'op-id' }, v.id)),
        el('dt', null, 'status'), el('dd', { id: 'op-status', 'data-status': v.status }, words(v.status)),
        el('dt', null, 'submitter'), el('dd', null, el('code', null, v.submitter || '—')),
        el('dt', null, 'submitted'), el('dd', null, `block ${v.submitted_height ?? ''}`),
        el('dt', null, 'shape'), el('dd', null, `${tasks} task${tasks === 1 ? '' : 's'} in ${(v.stages || []).length} stage${(v.stages || []).length === 1 ? '' : 's'}`)));

    const graph = stageGraph(v, true);
    graph.addEventListener('click', (ev) => {
      const node = ev.target.closest('[data-task]');
      if (node) focusTaskRow(node.getAttribute('data-task'));
    });
    graph.addEventListener('keydown', (ev) => {
      const node = ev.target.closest('[data-task]');
      if (node && (ev.key === 'Enter' || ev.key === ' ')) {
        ev.preventDefault();
        focusTaskRow(node.getAttribute('data-task'));
      }
    });

    const undone = (v.events || []).filter((e) => e.type === 'task_rolled_back' || e.type === 'task_rollback_failed');
    const undo = el('ol', { id: 'undo-order', class: 'undo-order' }, undone.map((e) => el('li', {
      'data-task': e.task, 'data-stage': e.stage, 'data-height': e.height, 'data-type': e.type,
      class: e.type === 'task_rollback_failed' ? 'failed' : '',
    },
    el('span', { class: 'undo-mark' }, e.type === 'task_rollback_failed' ? '!' : '↺'),
    el('code', null, e.task),
    el('span', { class: 'muted' }, ` stage ${e.stage ?? '?'} · block ${e.height}`),
    e.type === 'task_rollback_failed' ? el('div', { class: 'reason' }, `rollback failed${e.reason ? `: ${e.reason}` : ''}`) : null)));
    const undoNote = undone.length ? null : el('p', { class: 'muted' },
      v.status === 'completed' || v.status === 'running' ? 'Nothing undone.' : 'No rollback recorded yet.');

    const panels = el('div', { class: 'graph-row' },
      el('div', { class: 'panel graph-panel' }, el('h2', null, 'Stages'), el('div', { class: 'graph-scroll' }, graph), legend()),
      el('div', { class: 'panel undo-panel' }, el('h2', null, 'Undo order'),
        el('p', { class: 'muted small' }, 'Rollbacks in ledger order: a stage is undone only after the stage after it.'),
        undo, undoNote));

    const stages = (v.stages || []).map((s) => stageTable(s, open));
    return [header, panels, el('h2', null, 'Tasks'), ...stages, el('h2', null, 'History'), timeline(v.events || [])];
  }

  function focusTaskRow(task) {
    const row = document.querySelector(`tr[data-task-row="${CSS.escape(task)}"]`);
    if (!row) return;
    row.scrollIntoView({ behavior: 'smooth', block: 'center' });
    row.classList.remove('flash');
    void row.offsetWidth; // restart the animation
    row.classList.add('flash');
  }

  function stageTable(s, open) {
    const rows = (s.tasks || []).map((t) => {
      let output = el('span', { class: 'muted' }, '—');
      if (t.output && Object.keys(t.output).length) {
        const det = el('details', { class: 'output', open: open.has(t.id) },
          el('summary', null, Object.keys(t.output).join(', ')),
          el('pre', null, JSON.stringify(t.output, null, 2)));
        det.addEventListener('toggle', () => (det.open ? open.add(t.id) : open.delete(t.id)));
        output = det;
      }
      const attempts = [String(t.attempts ?? 0)];
      if (t.rollback_attempts) attempts.push(el('span', { class: 'muted' }, ` · undo ${t.rollback_attempts}`));
      return el('tr', { 'data-task-row': t.id, 'data-status': t.status },
        el('td', null, el('code', { class: 'task-id' }, t.id)),
        el('td', null, el('code', null, t.run), el('div', { class: 'muted small' }, 'undo: ', t.rollback ? el('code', null, t.rollback) : 'none')),
        el('td', { class: 'executor-cell' }, executorCell(t)),
        el('td', { class: 'num' }, attempts),
        el('td', null, badge(t.status), t.outcome && t.outcome !== t.status ? el('div', { class: 'muted small' }, `ran: ${words(t.outcome)}`) : null),
        el('td', null, t.validation ? badge(t.validation === 'passed' ? 'succeeded' : 'failed', t.validation) : el('span', { class: 'muted' }, '—')),
        el('td', null, t.rule ? el('code', { class: 'rule' }, t.rule) : el('span', { class: 'muted' }, 'true')),
        el('td', { class: 'output-cell' }, output),
        el('td', { class: 'reason' }, t.error || '', t.rollback_error ? el('div', null, `undo: ${t.rollback_error}`) : null));
    });
    return el('section', { class: 'stage', 'data-stage': s.index },
      el('h3', null, `Stage ${s.index} `, badge(s.status),
        s.hash ? el('span', { class: 'muted small' }, ' record ', hashCode(s.hash), s.prev ? [' ← ', hashCode(s.prev)] : null) : null),
      el('div', { class: 'table-scroll' }, el('table', { class: 'tasks' },
        el('thead', null, el('tr', null, ['task', 'run / rollback', 'executor', 'attempts', 'status', 'validation', 'rule', 'output', 'error'].map((h) => el('th', null, h)))),
        el('tbody', null, rows))));
  }

  // executorCell shows where a task ran: its executor, or, when its work
  // moved from a silent executor, the path (0xab…→0xcd…) with each move's
  // block and reason; and the same for its rollback once released.
  function executorCell(t) {
    if (!t.executor) return el('span', { class: 'muted' }, '—');
    const path = (hist, current) => (Array.isArray(hist) && hist.length ? hist : [{ executor: current }]);
    return [
      executorPath('run', 'ran on', path(t.executors, t.executor)),
      t.rollback_executor ? executorPath('rollback', 'undo on', path(t.rollback_executors, t.rollback_executor)) : null,
    ];
  }

  function executorPath(kind, label, hist) {
    const moved = hist.length > 1;
    return el('div', { class: `executors${moved ? ' moved' : ''}`, 'data-kind': kind, 'data-executors': hist.map((a) => a.executor).join(' ') },
      moved || kind === 'rollback' ? el('span', { class: 'muted small' }, `${label} `) : null,
      hist.map((a, i) => [i ? '→' : '', hashCode(a.executor)]),
      hist.slice(1).map((a) => el('div', { class: 'move small', 'data-height': a.height },
        `(moved at ${a.height}${a.reason ? `: ${a.reason}` : ''})`)));
  }

  function timeline(events) {
    return el('div', { class: 'table-scroll' }, el('table', { id: 'timeline', class: 'timeline' },
      el('thead', null, el('tr', null, ['#', 'block', 'event', 'stage', 'task', 'detail'].map((h) => el('th', null, h)))),
      el('tbody', null, events.map((e) => {
        const detail = [];
        if (e.valid === true) detail.push('output passed its rule');
        if (e.valid === false) detail.push('output failed its rule');
        if (e.status) detail.push(words(e.status));
        if (e.from || e.to) detail.push(`${short(e.from)} → ${short(e.to)}`);
        return el('tr', { class: `ev-${e.type}`, 'data-type': e.type, 'data-event-task': e.task || null, 'data-from': e.from || null, 'data-to': e.to || null },
          el('td', { class: 'num' }, String(e.seq ?? '')),
          el('td', { class: 'num' }, String(e.height ?? '')),
          el('td', null, words(e.type)),
          el('td', { class: 'num' }, e.stage === undefined || e.stage === null ? '' : String(e.stage)),
          el('td', null, e.task ? el('code', null, e.task) : ''),
          el('td', { class: 'detail' }, detail.join(', '), e.reason ? el('div', { class: 'reason' }, e.reason) : null));
      }))));
  }

  // ---- the chain ----

  function showChain(ctx, main) {
    document.title = 'Chain · sagachain';
    const root = el('section', { class: 'chain' }, el('p', { class: 'muted' }, 'Loading…'));
    main.append(root);

    const load = coalesce(ctx, async () => {
      const [head, validators] = await Promise.all([call('sc_head'), call('sc_validators')]);
      const heights = [];
      for (let h = head.height; h >= 1 && heights.length < CHAIN_BLOCKS; h--) heights.push(h);
      const blocks = await Promise.all(heights.map((h) => call('sc_block', h)));
      if (!ctx.alive) return;
      setHead(head.height);
      const names = new Map((validators || []).map((v) => [String(v.address).toLowerCase(), v.name]));
      const who = (addr) => {
        const name = names.get(String(addr).toLowerCase());
        return el('code', { class: 'hash', title: addr }, name || short(addr));
      };
      root.replaceChildren(
        el('h1', null, 'Chain'),
        el('dl', { class: 'facts', id: 'chain-head' },
          el('dt', null, 'chain id'), el('dd', null, el('code', null, head.chain_id)),
          el('dt', null, 'height'), el('dd', { id: 'head-height' }, String(head.height)),
          el('dt', null, 'head hash'), el('dd', null, el('code', null, head.hash)),
          el('dt', null, 'time'), el('dd', null, fmtTime(head.time)),
          el('dt', null, 'validators'), el('dd', null, String(head.validators)),
          el('dt', null, 'mempool'), el('dd', null, `${head.mempool} entr${head.mempool === 1 ? 'y' : 'ies'}`)),
        el('h2', null, head.height > heights.length ? `Latest ${heights.length} blocks` : 'Blocks'),
        el('div', { class: 'table-scroll' }, el('table', { id: 'blocks', class: 'blocks' },
          el('thead', null, el('tr', null, ['height', 'hash', 'time', 'proposer', 'entries', 'certificate'].map((h) => el('th', null, h)))),
          el('tbody', null, blocks.map((b) => {
            const kinds = new Map();
            for (const e of b.entries || []) kinds.set(e.kind, (kinds.get(e.kind) || 0) + 1);
            const signers = (b.commit && b.commit.signers) || [];
            return el('tr', { 'data-height': b.height },
              el('td', { class: 'num' }, String(b.height)),
              el('td', null, hashCode(b.hash)),
              el('td', null, fmtTime(b.time)),
              el('td', null, who(b.proposer)),
              el('td', null, el('span', { class: 'num' }, String((b.entries || []).length)),
                el('div', { class: 'muted small' }, [...kinds].map(([k, n]) => `${words(k)}${n > 1 ? ` ×${n}` : ''}`).join(', '))),
              el('td', null, el('span', { class: 'muted small' }, `${signers.length}/${head.validators} `), signers.map((s, i) => [i ? ' ' : '', who(s)])));
          })))),
        el('h2', null, 'Validators'),
        el('div', { class: 'table-scroll' }, el('table', { id: 'validators', class: 'validators' },
          el('thead', null, el('tr', null, ['', 'name', 'address', ''].map((h) => el('th', null, h)))),
          el('tbody', null, (validators || []).map((v) => el('tr', { 'data-address': v.address, 'data-online': v.online ? 'true' : 'false', 'data-down': v.down ? 'true' : 'false' },
            el('td', null, el('span', { class: `dot ${v.online ? 'online' : 'offline'}`, title: v.online ? 'online' : 'offline' })),
            el('td', null, v.name || ''),
            el('td', null, el('code', null, v.address)),
            el('td', { class: 'muted small' }, [v.online ? 'online' : 'offline', v.self ? ' · this node' : ''].join(''),
              v.down ? el('span', { class: 'down', title: 'a lease of its work expired: the chain gives it no new work until it signs again' }, ` · down since block ${v.down_height ?? '?'}`) : null)))))));
    });

    ctx.cleanups.push(onBlock(() => load()));
    ctx.cleanups.push(live.onReconnect(load));
    load();
  }

  // ---- start ----

  window.addEventListener('hashchange', route);
  route();
  call('sc_head').then((h) => setHead(h.height), () => {});
})();
