/**
 * The collaborative notes demo: a list of notes, an editor, an online/offline switch and the sync
 * status, on the public SDK only (`syncgraph/client`). Each user's local copy and pending edits
 * live in IndexedDB (browser-level, through `level`): edits made offline survive a reload and are sent, merged,
 * once the page is online again.
 */
import { Level } from 'level';
import { createClient, type Bucket, type JsonObject, type SyncClient, type SyncStatus } from 'syncgraph/client';

interface DemoConfig {
  app: string;
  appKey: string;
  bucket: string;
  users: Array<{ username: string; password: string }>;
}
declare const __SYNCGRAPH_DEMO__: DemoConfig;
const config = __SYNCGRAPH_DEMO__;

interface Note {
  title: string;
  body: string;
}

const element = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  who: element<HTMLSpanElement>('who'),
  online: element<HTMLInputElement>('online'),
  status: element<HTMLSpanElement>('status'),
  notes: element<HTMLUListElement>('notes'),
  newNote: element<HTMLButtonElement>('new-note'),
  editor: element<HTMLElement>('editor'),
  empty: element<HTMLParagraphElement>('empty'),
  title: element<HTMLInputElement>('title'),
  body: element<HTMLTextAreaElement>('body'),
  deleteNote: element<HTMLButtonElement>('delete-note'),
};

const username = new URLSearchParams(location.search).get('user') ?? config.users[0]!.username;
const user = config.users.find((u) => u.username === username);
if (user === undefined) throw new Error(`no demo user ${username}`);
ui.who.textContent = `signed in as ${user.username}`;

/** The node's GraphQL endpoint, through the demo server's proxy (same origin). */
const url = new URL('/graphql', location.href).toString();

/**
 * The user's access token: signed in with the app's public key, and signed in again shortly before
 * it expires. The SDK asks at every request and reconnect, so a refreshed token is picked up.
 */
let session: { token: string; expiresAt: number } | undefined;
async function token(): Promise<string> {
  if (session !== undefined && session.expiresAt - Date.now() > 60_000) return session.token;
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${config.appKey}` },
    body: JSON.stringify({
      query: 'mutation($u: String!, $p: String!) { authorize(username: $u, password: $p) { token expiresAt } }',
      variables: { u: user!.username, p: user!.password },
    }),
  });
  const body = (await response.json()) as { data?: { authorize: { token: string; expiresAt: string } }; errors?: Array<{ message: string }> };
  if (body.data === undefined) throw new Error(`sign-in failed: ${body.errors?.[0]?.message ?? response.status}`);
  session = { token: body.data.authorize.token, expiresAt: Date.parse(body.data.authorize.expiresAt) };
  return session.token;
}

// Each tab has its own local copy (two SDK clients must not share one store), kept across reloads
// of the tab; the tabs of one user share one live connection to the node.
let tabId = sessionStorage.getItem('syncgraph-demo-tab');
if (tabId === null) sessionStorage.setItem('syncgraph-demo-tab', (tabId = crypto.randomUUID()));
const store = new Level<string, unknown>(`syncgraph-demo-${config.app}-${user.username}-${tabId}`);
const shareConnection = { name: `syncgraph-demo:${config.app}:${user.username}` };
let client!: SyncClient;
let notes!: Bucket;
/** Online: a client that syncs by itself. Offline: one that only keeps edits in the store. */
let live = false;
let stopListening: Array<() => void> = [];
let selected: string | null = null;
const shown = new Map<string, Note>();

function open(online: boolean): void {
  live = online;
  client = createClient({ url, token, store, live, ...(live ? { shareConnection } : {}) });
  notes = client.bucket(config.bucket);
  stopListening = [
    client.on('status', renderStatus),
    notes.subscribe((change) => {
      if (change.data === null) shown.delete(change.key);
      else shown.set(change.key, asNote(change.data));
      renderList();
      if (change.key === selected) renderEditor();
    }),
  ];
  renderStatus(client.status);
}

/** The switch, and the browser's own idea of the network, take the page offline and back. */
let switching = Promise.resolve();
function setOnline(online: boolean): Promise<void> {
  ui.online.checked = online;
  switching = switching.then(async () => {
    if (online === live) return;
    for (const stop of stopListening.splice(0)) stop();
    await client.close();
    open(online);
  });
  return switching;
}

function asNote(data: JsonObject): Note {
  return { title: typeof data['title'] === 'string' ? data['title'] : '', body: typeof data['body'] === 'string' ? data['body'] : '' };
}

function renderStatus(status: SyncStatus): void {
  const pending = status.pending;
  const changes = `${pending} change${pending === 1 ? '' : 's'}`;
  let state: 'saved' | 'pending' | 'offline' | 'error';
  let text: string;
  if (!live || !status.online) {
    state = 'offline';
    text = pending > 0 ? `Offline · ${changes} pending` : 'Offline';
  } else if (pending > 0) {
    state = 'pending';
    text = `Saving ${changes} (pending)…`;
  } else if (status.lastSyncedAt === null) {
    state = 'pending';
    text = 'Syncing…';
  } else {
    state = 'saved';
    text = 'All changes saved';
  }
  ui.status.dataset['state'] = state;
  ui.status.textContent = text;
}

function renderList(): void {
  const entries = [...shown].sort(([ak, a], [bk, b]) => a.title.localeCompare(b.title) || (ak < bk ? -1 : 1));
  ui.notes.replaceChildren(
    ...entries.map(([key, note]) => {
      const item = document.createElement('li');
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = note.title === '' ? 'Untitled' : note.title;
      button.setAttribute('aria-current', String(key === selected));
      button.addEventListener('click', () => select(key));
      item.append(button);
      return item;
    }),
  );
}

function renderEditor(): void {
  const note = selected === null ? undefined : shown.get(selected);
  ui.editor.hidden = note === undefined;
  ui.empty.hidden = note !== undefined;
  if (note === undefined) return;
  setKeepingCaret(ui.title, note.title);
  setKeepingCaret(ui.body, note.body);
}

/** A remote edit replaces the field's text; the caret stays where it was, as far as it can. */
function setKeepingCaret(field: HTMLInputElement | HTMLTextAreaElement, value: string): void {
  if (field.value === value) return;
  const focused = document.activeElement === field;
  const { selectionStart, selectionEnd } = field;
  field.value = value;
  if (focused && selectionStart !== null && selectionEnd !== null) {
    field.setSelectionRange(Math.min(selectionStart, value.length), Math.min(selectionEnd, value.length));
  }
}

function select(key: string | null): void {
  selected = key;
  renderList();
  renderEditor();
}

/** Every keystroke is a local write, shown at once; the SDK folds unsent ones into one change. */
function save(): void {
  if (selected === null) return;
  const note: Note = { title: ui.title.value, body: ui.body.value };
  shown.set(selected, note);
  renderList();
  const key = selected;
  void switching.then(() => notes.set(key, { ...note }));
}

ui.title.addEventListener('input', save);
ui.body.addEventListener('input', save);
ui.newNote.addEventListener('click', () => {
  select(`note-${crypto.randomUUID()}`);
  shown.set(selected!, { title: '', body: '' });
  save();
  ui.title.focus();
});
ui.deleteNote.addEventListener('click', () => {
  if (selected === null) return;
  const key = selected;
  shown.delete(key);
  select(null);
  void switching.then(() => notes.delete(key));
});
ui.online.addEventListener('change', () => void setOnline(ui.online.checked));
window.addEventListener('offline', () => void setOnline(false));
window.addEventListener('online', () => void setOnline(true));

// The local copy first (shown at once, offline too), then live sync when the network is there.
open(false);
for (const { key, data } of await notes.list()) shown.set(key, asNote(data));
renderList();
renderEditor();
if (navigator.onLine) await setOnline(true);
else ui.online.checked = false;
