// The status page's script: polls the admin API once a second and redraws the tables.
const POLL_MS = 1000;
const $ = (id) => document.getElementById(id);
const short = (s) => (s.startsWith('sha256:') ? s.slice(7, 19) : s.length > 16 ? `${s.slice(0, 8)}…${s.slice(-6)}` : s);
const bytes = (n) => (n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(1)} GiB` : n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${(n / 1024).toFixed(0)} KiB`);

/** A table's rows from arrays of cells; a cell is text or {text, cls, data}. */
function fill(table, head, rows, empty) {
  const el = (tag, text, cls, data = {}) => {
    const e = document.createElement(tag);
    e.textContent = text;
    if (cls) e.className = cls;
    for (const [k, v] of Object.entries(data)) e.dataset[k] = v;
    return e;
  };
  const tr = document.createElement('tr');
  for (const h of head) tr.append(el('th', h));
  const body = rows.length ? rows : [[{ text: empty, cls: 'muted' }]];
  table.replaceChildren(tr, ...body.map((cells) => {
    const row = document.createElement('tr');
    for (const c of cells) row.append(typeof c === 'string' ? el('td', c) : el('td', c.text, c.cls, c.data));
    return row;
  }));
}

async function get(path) {
  const res = await fetch(path, { headers: { accept: 'application/json' } });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return res.json();
}

let lastSeq = 0;
const seen = new Map(); // "<node> <image>" -> {bytes, at}: for transfer rates

async function refresh() {
  const [status, peers, images, events, df] = await Promise.all([
    get('/_mesh/v1/status'), get('/_mesh/v1/peers'), get('/_mesh/v1/images?mesh=1'), get(`/_mesh/v1/events?since=${lastSeq}`),
    get('/_mesh/v1/df?totals').catch(() => undefined), // the store not answering now: the rest still shows
  ]);
  $('node').textContent = `${status.name} · ${short(status.id)}`;
  $('summary').textContent = `${status.store} store · ${status.peers} peers · ${status.announcedKeys} keys announced` +
    (status.swarmKey ? '' : ' · no swarm key: the mesh is open');

  peers.sort((a, b) => (a.info?.name ?? a.id).localeCompare(b.info?.name ?? b.id));
  const nodes = [{ id: status.id, name: status.name }, ...peers.map((p) => ({ id: p.id, name: p.info?.name ?? short(p.id) }))];
  fill($('matrix'), ['image', 'digest', ...nodes.map((n) => n.name)], images.map((row) => [
    row.name, { text: short(row.digest), cls: 'mono' },
    ...nodes.map((n) => {
      const data = { node: n.name, image: row.name };
      if (row.nodes.some((h) => h.id === n.id)) return { text: 'complete', cls: 'complete', data };
      const f = row.fetching.find((h) => h.id === n.id);
      if (f) return { text: `${f.total ? Math.floor((100 * f.bytes) / f.total) : 0}%`, cls: 'fetching', data };
      return { text: '–', cls: 'absent', data };
    }),
  ]), 'no images yet');

  const now = performance.now();
  const transfers = images.flatMap((row) => row.fetching.map((f) => {
    const key = `${f.id} ${row.name}`;
    const before = seen.get(key);
    seen.set(key, { bytes: f.bytes, at: now });
    const rate = before && now > before.at ? ((f.bytes - before.bytes) * 1000) / (now - before.at) : undefined;
    return [f.name, row.name, `${bytes(f.bytes)} of ${bytes(f.total)}`, rate === undefined ? '…' : `${bytes(rate)}/s`];
  }));
  fill($('transfers'), ['node', 'image', 'progress', 'rate'], transfers, 'none');

  const disks = [{ name: status.name, disk: df }, ...peers.map((p) => ({ name: p.info?.name ?? short(p.id), disk: p.disk }))];
  fill($('disk'), ['node', 'held', 'pinned', 'pushed', 'pulled', 'replicated', 'cache', 'filesystem free'], disks.map(({ name, disk }) =>
    disk ? [name, ...['total', 'pinned', 'pushed', 'pulled', 'replicated', 'cache'].map((k) => ({ text: bytes(disk[k]), data: { node: name, disk: k } })),
      disk.filesystem ? bytes(disk.filesystem.free) : '–']
      : [name, { text: 'not told', cls: 'muted' }]), 'no disk figures');

  fill($('peers'), ['name', 'peer id', 'round trip', 'keys', 'addresses'], peers.map((p) => [
    p.info?.name ?? '?', { text: short(p.id), cls: 'mono' },
    p.rttMs === undefined ? { text: 'unmeasured', cls: 'unmeasured' } : { text: `${p.rttMs.toFixed(1)} ms`, cls: 'ok' },
    p.keys === undefined ? '–' : String(p.keys), p.addrs.join(' '),
  ]), 'no peers connected');

  for (const e of events) {
    const li = document.createElement('li');
    li.innerHTML = '<span class="time"></span> <span class="kind"></span> <span class="what"></span>';
    li.querySelector('.time').textContent = new Date(e.time).toLocaleTimeString();
    li.querySelector('.kind').textContent = e.kind;
    li.querySelector('.what').textContent = `${e.image}${e.digest ? ` ${short(e.digest)}` : ''}${e.node ? ` on ${e.node}` : ''}${e.detail ? `: ${e.detail}` : ''}`;
    $('events').prepend(li);
    lastSeq = e.seq;
  }
  while ($('events').children.length > 50) $('events').lastChild.remove();
}

async function loop() {
  try {
    await refresh();
    $('problem').textContent = '';
  } catch (err) {
    $('problem').textContent = `cannot reach meshd: ${err.message}`;
  }
  setTimeout(loop, POLL_MS);
}
loop();
