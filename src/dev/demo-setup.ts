/**
 * What the demo app needs on a node: an app, two users, and a `notes` bucket they share (Simple
 * Sync's ACL: both may read and write every note). Made with the node admin key through the
 * public GraphQL API, as an operator would.
 */

/** What a demo page needs to sign in: the app's public (default-level) key and the users. */
export interface DemoConfig {
  app: string;
  /** The app's default-level key: what an app ships to its clients (it can sign users in). */
  appKey: string;
  bucket: string;
  users: Array<{ username: string; password: string }>;
}

export const DEMO_BUCKET = 'notes';
const DEMO_PASSWORD = 'demo-password';

async function call<T>(graphqlUrl: string, key: string, query: string, variables: Record<string, unknown>): Promise<T> {
  const response = await fetch(graphqlUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: T; errors?: Array<{ message: string }> };
  if (body.errors !== undefined && body.errors.length > 0) throw new Error(`demo setup: ${body.errors.map((e) => e.message).join('; ')}`);
  return body.data as T;
}

/** Creates the demo app `app` on the node at `graphqlUrl` (whose admin key is `adminKey`). */
export async function setUpDemo(graphqlUrl: string, adminKey: string, app = 'demo'): Promise<DemoConfig> {
  const { createApp } = await call<{ createApp: { adminKey: string; defaultKey: string } }>(
    graphqlUrl,
    adminKey,
    'mutation($id: ID!) { createApp(id: $id) { adminKey defaultKey } }',
    { id: app },
  );
  const users = ['alice', 'bob'].map((username) => ({ username, password: DEMO_PASSWORD }));
  for (const user of users) {
    await call(graphqlUrl, createApp.adminKey, 'mutation($u: String!, $p: String!) { createUser(username: $u, password: $p) { username } }', {
      u: user.username,
      p: user.password,
    });
  }
  await call(graphqlUrl, createApp.adminKey, 'mutation($b: String!) { shareBucket(name: $b, shared: true) }', { b: DEMO_BUCKET });
  await call(graphqlUrl, createApp.adminKey, 'mutation($r: AclRuleInput!) { grantAcl(rule: $r) { item } }', {
    r: { user: '*', item: `${DEMO_BUCKET}*`, action: '*', type: 'ALLOW' },
  });
  return { app, appKey: createApp.defaultKey, bucket: DEMO_BUCKET, users };
}
