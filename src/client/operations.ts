/**
 * The GraphQL operations the client SDK sends, typed by the codegen client preset
 * (`src/client/generated/`, in string mode: the documents travel as plain strings, so the SDK
 * needs no GraphQL runtime in the browser). Field selections are the minimum the sync engine
 * reads.
 */
import { graphql } from './generated/gql.js';

export const ClientChangeFields = graphql(`
  fragment ClientChangeFields on Change {
    ccid
    key
    op
    version
    data
    cursor
  }
`);

export const ClientSubmitChanges = graphql(`
  mutation ClientSubmitChanges($bucket: String!, $clientId: String, $changes: [ChangeInput!]!) {
    submitChanges(bucket: $bucket, clientId: $clientId, changes: $changes) {
      ccid
      duplicate
      noop
      error {
        code
        message
      }
      change {
        ...ClientChangeFields
      }
      entity {
        key
        version
        data
        deleted
      }
    }
  }
`);

export const ClientChangesPage = graphql(`
  query ClientChangesPage($bucket: String!, $since: Cursor, $limit: Int, $keyPrefix: String) {
    changes(bucket: $bucket, since: $since, limit: $limit, keyPrefix: $keyPrefix) {
      changes {
        ...ClientChangeFields
      }
      cursor
      hasMore
    }
  }
`);

export const ClientOnChanges = graphql(`
  subscription ClientOnChanges($bucket: String!, $since: Cursor, $keyPrefix: String) {
    changes(bucket: $bucket, since: $since, keyPrefix: $keyPrefix) {
      ...ClientChangeFields
    }
  }
`);

export const ClientEventFields = graphql(`
  fragment ClientEventFields on Event {
    uuid
    timestamp
    user
    item
    action
    payload
    cursor
  }
`);

export const ClientPushEvents = graphql(`
  mutation ClientPushEvents($bucket: String!, $events: [EventInput!]!, $since: Cursor) {
    pushEvents(bucket: $bucket, events: $events, since: $since) {
      rejected {
        uuid
        code
        message
      }
      history {
        ...ClientEventFields
      }
      cursor
      hasMore
    }
  }
`);

export const ClientEventsPage = graphql(`
  query ClientEventsPage($bucket: String!, $since: Cursor, $limit: Int) {
    events(bucket: $bucket, since: $since, limit: $limit) {
      events {
        ...ClientEventFields
      }
      cursor
      hasMore
    }
  }
`);
