/**
 * GET /admin: a small read-only status page for operators (nodes, ring, partitions, replica lag,
 * a live chart of change throughput), behind the node admin key. Browsers send it as HTTP Basic
 * credentials (any user name, the key as password), which they then repeat for the page's own
 * requests. The page is static: its script polls /admin/status.json; nothing is inlined, so the
 * page runs under a strict Content-Security-Policy.
 */
import { bearer } from '../auth/access.js';

export interface AdminStatus {
  nodeId: string;
  clusterNodeId: string | null;
  startedAt: string;
  uptimeSeconds: number;
  replicas: number;
  writeQuorum: number;
  members: Array<{ id: string; address: string; status: string; up: boolean; self: boolean }>;
  handoff: { pending: number; moved: number };
  /** Partitions this node holds: at most `shownMax`, with their replicas and each peer's lag. */
  partitions: { total: number; shown: Array<{ id: string; replicas: string[]; replica: boolean; lag: Record<string, number> }> };
  /** Counters since the start: the page charts their rate. */
  totals: { changesApplied: number; subscriptionsLive: number };
}

/** Is `authorization` the admin key, as a bearer token or as the password of Basic credentials? */
export function adminCredential(authorization: string | undefined, isAdminKey: (secret: string) => boolean): boolean {
  if (authorization === undefined) return false;
  const token = bearer(authorization);
  if (token !== undefined) return isAdminKey(token);
  const basic = /^Basic +([A-Za-z0-9+/=]+)\s*$/i.exec(authorization)?.[1];
  if (basic === undefined) return false;
  const decoded = Buffer.from(basic, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon >= 0 && isAdminKey(decoded.slice(colon + 1));
}

export const ADMIN_HEADERS = {
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

export const ADMIN_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>syncgraph admin</title>
<link rel="stylesheet" href="/admin/admin.css">
</head>
<body>
<header><h1>syncgraph</h1><span id="node" data-testid="node"></span><span id="uptime"></span></header>
<main>
<section><h2>Change throughput</h2><canvas id="chart" data-testid="chart" width="720" height="160"></canvas>
<p id="rate" data-testid="rate">…</p></section>
<section><h2>Nodes</h2><p id="ring"></p><table data-testid="members"><thead><tr><th>Node</th><th>Address</th><th>Status</th><th>Reachable</th></tr></thead><tbody id="members"></tbody></table></section>
<section><h2>Partitions held here</h2><p id="partitions-summary"></p><table data-testid="partitions"><thead><tr><th>Partition</th><th>Replicas</th><th>Here as</th><th>Lag (records a peer lacks)</th></tr></thead><tbody id="partitions"></tbody></table></section>
</main>
<script src="/admin/admin.js"></script>
</body>
</html>
`;

export const ADMIN_CSS = `body { font-family: system-ui, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
header { display: flex; gap: 1rem; align-items: baseline; padding: .7rem 1rem; background: #fff; border-bottom: 1px solid #dde1e8; }
h1 { font-size: 1.1rem; margin: 0; } h2 { font-size: 1rem; margin: 0 0 .5rem; }
main { padding: 1rem; display: grid; gap: 1rem; max-width: 60rem; }
section { background: #fff; border: 1px solid #dde1e8; border-radius: .4rem; padding: .8rem 1rem; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid #eef0f3; }
.down { color: #9b1c1c; font-weight: 600; } .up { color: #1e6b34; }
canvas { width: 100%; max-width: 720px; height: 160px; border: 1px solid #eef0f3; }
`;

/** The page's script: polls the status every second and redraws; the chart keeps 2 minutes. */
export const ADMIN_JS = `'use strict';
const samples = [];
const text = (id, value) => { document.getElementById(id).textContent = value; };
function cell(row, value, className) { const td = row.insertCell(); td.textContent = value; if (className) td.className = className; }
function render(status) {
  text('node', 'node ' + status.nodeId + (status.clusterNodeId ? ' (cluster member ' + status.clusterNodeId + ')' : ''));
  text('uptime', 'up ' + Math.round(status.uptimeSeconds) + ' s');
  text('ring', status.members.length + ' member(s), N=' + status.replicas + ', W=' + status.writeQuorum + ', handoff pending ' + status.handoff.pending + ', moved ' + status.handoff.moved);
  const members = document.getElementById('members');
  members.replaceChildren();
  for (const m of status.members) {
    const row = members.insertRow();
    cell(row, m.id + (m.self ? ' (this node)' : ''));
    cell(row, m.address);
    cell(row, m.status);
    cell(row, m.up ? 'up' : 'DOWN', m.up ? 'up' : 'down');
  }
  text('partitions-summary', status.partitions.total + ' partition(s)' + (status.partitions.total > status.partitions.shown.length ? ', first ' + status.partitions.shown.length + ' shown' : ''));
  const partitions = document.getElementById('partitions');
  partitions.replaceChildren();
  for (const p of status.partitions.shown) {
    const row = partitions.insertRow();
    cell(row, p.id);
    cell(row, p.replicas.join(', '));
    cell(row, p.replica ? 'replica' : 'copy held for readers or handoff');
    const lag = Object.entries(p.lag).map(([peer, n]) => peer + ': ' + n).join(', ');
    cell(row, lag === '' ? '—' : lag);
  }
}
function chart() {
  const canvas = document.getElementById('chart');
  const g = canvas.getContext('2d');
  g.clearRect(0, 0, canvas.width, canvas.height);
  const rates = [];
  for (let i = 1; i < samples.length; i++) {
    const dt = (samples[i].at - samples[i - 1].at) / 1000;
    rates.push(dt > 0 ? Math.max(0, samples[i].changes - samples[i - 1].changes) / dt : 0);
  }
  const max = Math.max(1, ...rates);
  g.strokeStyle = '#dde1e8';
  g.beginPath(); g.moveTo(0, canvas.height - 0.5); g.lineTo(canvas.width, canvas.height - 0.5); g.stroke();
  g.strokeStyle = '#2f6fdb'; g.lineWidth = 2; g.beginPath();
  rates.forEach((r, i) => {
    const x = canvas.width - (rates.length - 1 - i) * (canvas.width / 120);
    const y = canvas.height - 4 - (r / max) * (canvas.height - 12);
    if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
  });
  g.stroke();
  g.fillStyle = '#4a5161'; g.font = '12px system-ui'; g.fillText('max ' + max.toFixed(1) + ' changes/s', 6, 14);
  const last = rates.length > 0 ? rates[rates.length - 1] : 0;
  text('rate', last.toFixed(1) + ' changes/s applied through this node, ' + samples[samples.length - 1].changes + ' since it started; ' + samples[samples.length - 1].live + ' live subscriptions');
}
async function poll() {
  try {
    const response = await fetch('/admin/status.json', { cache: 'no-store' });
    if (response.ok) {
      const status = await response.json();
      samples.push({ at: Date.now(), changes: status.totals.changesApplied, live: status.totals.subscriptionsLive });
      if (samples.length > 121) samples.shift();
      render(status);
      chart();
      document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
    }
  } finally {
    setTimeout(poll, 1000);
  }
}
poll();
`;
