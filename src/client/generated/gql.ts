/* eslint-disable */
import * as types from './graphql.js';



/**
 * Map of all GraphQL operations in the project.
 *
 * This map has several performance disadvantages:
 * 1. It is not tree-shakeable, so it will include all operations in the project.
 * 2. It is not minifiable, so the string of a GraphQL query will be multiple times inside the bundle.
 * 3. It does not support dead code elimination, so it will add unused operations.
 *
 * Therefore it is highly recommended to use the babel or swc plugin for production.
 * Learn more about it here: https://the-guild.dev/graphql/codegen/plugins/presets/preset-client#reducing-bundle-size
 */
type Documents = {
    "\n  fragment ClientChangeFields on Change {\n    ccid\n    key\n    op\n    version\n    data\n    cursor\n  }\n": typeof types.ClientChangeFieldsFragmentDoc,
    "\n  mutation ClientSubmitChanges($bucket: String!, $clientId: String, $changes: [ChangeInput!]!) {\n    submitChanges(bucket: $bucket, clientId: $clientId, changes: $changes) {\n      ccid\n      duplicate\n      noop\n      error {\n        code\n        message\n      }\n      change {\n        ...ClientChangeFields\n      }\n      entity {\n        key\n        version\n        data\n        deleted\n      }\n    }\n  }\n": typeof types.ClientSubmitChangesDocument,
    "\n  query ClientChangesPage($bucket: String!, $since: Cursor, $limit: Int, $keyPrefix: String) {\n    changes(bucket: $bucket, since: $since, limit: $limit, keyPrefix: $keyPrefix) {\n      changes {\n        ...ClientChangeFields\n      }\n      cursor\n      hasMore\n    }\n  }\n": typeof types.ClientChangesPageDocument,
    "\n  subscription ClientOnChanges($bucket: String!, $since: Cursor, $keyPrefix: String) {\n    changes(bucket: $bucket, since: $since, keyPrefix: $keyPrefix) {\n      ...ClientChangeFields\n    }\n  }\n": typeof types.ClientOnChangesDocument,
    "\n  fragment ClientEventFields on Event {\n    uuid\n    timestamp\n    user\n    item\n    action\n    payload\n    cursor\n  }\n": typeof types.ClientEventFieldsFragmentDoc,
    "\n  mutation ClientPushEvents($bucket: String!, $events: [EventInput!]!, $since: Cursor) {\n    pushEvents(bucket: $bucket, events: $events, since: $since) {\n      rejected {\n        uuid\n        code\n        message\n      }\n      history {\n        ...ClientEventFields\n      }\n      cursor\n      hasMore\n    }\n  }\n": typeof types.ClientPushEventsDocument,
    "\n  query ClientEventsPage($bucket: String!, $since: Cursor, $limit: Int) {\n    events(bucket: $bucket, since: $since, limit: $limit) {\n      events {\n        ...ClientEventFields\n      }\n      cursor\n      hasMore\n    }\n  }\n": typeof types.ClientEventsPageDocument,
};
const documents: Documents = {
    "\n  fragment ClientChangeFields on Change {\n    ccid\n    key\n    op\n    version\n    data\n    cursor\n  }\n": types.ClientChangeFieldsFragmentDoc,
    "\n  mutation ClientSubmitChanges($bucket: String!, $clientId: String, $changes: [ChangeInput!]!) {\n    submitChanges(bucket: $bucket, clientId: $clientId, changes: $changes) {\n      ccid\n      duplicate\n      noop\n      error {\n        code\n        message\n      }\n      change {\n        ...ClientChangeFields\n      }\n      entity {\n        key\n        version\n        data\n        deleted\n      }\n    }\n  }\n": types.ClientSubmitChangesDocument,
    "\n  query ClientChangesPage($bucket: String!, $since: Cursor, $limit: Int, $keyPrefix: String) {\n    changes(bucket: $bucket, since: $since, limit: $limit, keyPrefix: $keyPrefix) {\n      changes {\n        ...ClientChangeFields\n      }\n      cursor\n      hasMore\n    }\n  }\n": types.ClientChangesPageDocument,
    "\n  subscription ClientOnChanges($bucket: String!, $since: Cursor, $keyPrefix: String) {\n    changes(bucket: $bucket, since: $since, keyPrefix: $keyPrefix) {\n      ...ClientChangeFields\n    }\n  }\n": types.ClientOnChangesDocument,
    "\n  fragment ClientEventFields on Event {\n    uuid\n    timestamp\n    user\n    item\n    action\n    payload\n    cursor\n  }\n": types.ClientEventFieldsFragmentDoc,
    "\n  mutation ClientPushEvents($bucket: String!, $events: [EventInput!]!, $since: Cursor) {\n    pushEvents(bucket: $bucket, events: $events, since: $since) {\n      rejected {\n        uuid\n        code\n        message\n      }\n      history {\n        ...ClientEventFields\n      }\n      cursor\n      hasMore\n    }\n  }\n": types.ClientPushEventsDocument,
    "\n  query ClientEventsPage($bucket: String!, $since: Cursor, $limit: Int) {\n    events(bucket: $bucket, since: $since, limit: $limit) {\n      events {\n        ...ClientEventFields\n      }\n      cursor\n      hasMore\n    }\n  }\n": types.ClientEventsPageDocument,
};

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment ClientChangeFields on Change {\n    ccid\n    key\n    op\n    version\n    data\n    cursor\n  }\n"): typeof import('./graphql.js').ClientChangeFieldsFragmentDoc;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation ClientSubmitChanges($bucket: String!, $clientId: String, $changes: [ChangeInput!]!) {\n    submitChanges(bucket: $bucket, clientId: $clientId, changes: $changes) {\n      ccid\n      duplicate\n      noop\n      error {\n        code\n        message\n      }\n      change {\n        ...ClientChangeFields\n      }\n      entity {\n        key\n        version\n        data\n        deleted\n      }\n    }\n  }\n"): typeof import('./graphql.js').ClientSubmitChangesDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query ClientChangesPage($bucket: String!, $since: Cursor, $limit: Int, $keyPrefix: String) {\n    changes(bucket: $bucket, since: $since, limit: $limit, keyPrefix: $keyPrefix) {\n      changes {\n        ...ClientChangeFields\n      }\n      cursor\n      hasMore\n    }\n  }\n"): typeof import('./graphql.js').ClientChangesPageDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription ClientOnChanges($bucket: String!, $since: Cursor, $keyPrefix: String) {\n    changes(bucket: $bucket, since: $since, keyPrefix: $keyPrefix) {\n      ...ClientChangeFields\n    }\n  }\n"): typeof import('./graphql.js').ClientOnChangesDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment ClientEventFields on Event {\n    uuid\n    timestamp\n    user\n    item\n    action\n    payload\n    cursor\n  }\n"): typeof import('./graphql.js').ClientEventFieldsFragmentDoc;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation ClientPushEvents($bucket: String!, $events: [EventInput!]!, $since: Cursor) {\n    pushEvents(bucket: $bucket, events: $events, since: $since) {\n      rejected {\n        uuid\n        code\n        message\n      }\n      history {\n        ...ClientEventFields\n      }\n      cursor\n      hasMore\n    }\n  }\n"): typeof import('./graphql.js').ClientPushEventsDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query ClientEventsPage($bucket: String!, $since: Cursor, $limit: Int) {\n    events(bucket: $bucket, since: $since, limit: $limit) {\n      events {\n        ...ClientEventFields\n      }\n      cursor\n      hasMore\n    }\n  }\n"): typeof import('./graphql.js').ClientEventsPageDocument;


export function graphql(source: string) {
  return (documents as any)[source] ?? {};
}
