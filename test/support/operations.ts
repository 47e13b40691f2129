/**
 * The GraphQL operations the black-box tests send, typed by the client preset of codegen.
 */
import { graphql } from '../generated/gql.js';

export const ChangeFields = graphql(`
  fragment ChangeFields on Change {
    id
    ccid
    clientId
    bucket
    key
    op
    sourceVersion
    version
    diff
    data
    cursor
  }
`);

export const SubmitChanges = graphql(`
  mutation SubmitChanges($bucket: String!, $clientId: String, $changes: [ChangeInput!]!) {
    submitChanges(bucket: $bucket, clientId: $clientId, changes: $changes) {
      ccid
      duplicate
      noop
      error {
        code
        message
      }
      change {
        ...ChangeFields
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

export const GetEntity = graphql(`
  query GetEntity($bucket: String!, $key: ID!, $version: Int) {
    entity(bucket: $bucket, key: $key, version: $version) {
      bucket
      key
      version
      data
      deleted
    }
  }
`);

export const ListEntities = graphql(`
  query ListEntities($bucket: String!, $first: Int, $after: String, $includeDeleted: Boolean, $keyPrefix: String) {
    entities(bucket: $bucket, first: $first, after: $after, includeDeleted: $includeDeleted, keyPrefix: $keyPrefix) {
      key
      version
      data
      deleted
    }
  }
`);

export const ListVersions = graphql(`
  query ListVersions($bucket: String!, $key: ID!) {
    versions(bucket: $bucket, key: $key) {
      key
      version
      data
      deleted
    }
  }
`);

export const ChangesPage = graphql(`
  query ChangesPage($bucket: String!, $since: Cursor, $limit: Int, $keyPrefix: String) {
    changes(bucket: $bucket, since: $since, limit: $limit, keyPrefix: $keyPrefix) {
      changes {
        ...ChangeFields
      }
      cursor
      hasMore
    }
  }
`);

export const BucketInfo = graphql(`
  query BucketInfo($name: String!) {
    bucket(name: $name) {
      name
      changesCursor
      eventsCursor
      config {
        conflictMode
        versionMax
        version10Max
      }
    }
  }
`);

export const ConfigureBucket = graphql(`
  mutation ConfigureBucket($name: String!, $config: BucketConfigInput!) {
    configureBucket(name: $name, config: $config) {
      name
      config {
        conflictMode
        versionMax
        version10Max
      }
    }
  }
`);

export const EventFields = graphql(`
  fragment EventFields on Event {
    uuid
    timestamp
    user
    item
    action
    payload
    cursor
  }
`);

export const PushEvents = graphql(`
  mutation PushEvents($bucket: String!, $events: [EventInput!]!, $since: Cursor) {
    pushEvents(bucket: $bucket, events: $events, since: $since) {
      accepted {
        ...EventFields
      }
      rejected {
        uuid
        code
        message
      }
      history {
        ...EventFields
      }
      cursor
      hasMore
    }
  }
`);

export const EventsPage = graphql(`
  query EventsPage($bucket: String!, $since: Cursor, $limit: Int) {
    events(bucket: $bucket, since: $since, limit: $limit) {
      events {
        ...EventFields
      }
      cursor
      hasMore
    }
  }
`);

export const ChangesSubscription = graphql(`
  subscription OnChanges($bucket: String!, $since: Cursor, $keyPrefix: String) {
    changes(bucket: $bucket, since: $since, keyPrefix: $keyPrefix) {
      ...ChangeFields
    }
  }
`);

export const EventsSubscription = graphql(`
  subscription OnEvents($bucket: String!, $since: Cursor) {
    events(bucket: $bucket, since: $since) {
      ...EventFields
    }
  }
`);

export const CreateApp = graphql(`
  mutation CreateApp($id: ID!) {
    createApp(id: $id) {
      app {
        id
      }
      adminKey
      defaultKey
      readonlyKey
    }
  }
`);

export const CreateUser = graphql(`
  mutation CreateUser($username: String!, $password: String!) {
    createUser(username: $username, password: $password) {
      username
    }
  }
`);

export const Authorize = graphql(`
  mutation Authorize($username: String!, $password: String!) {
    authorize(username: $username, password: $password) {
      token
      id
      username
      level
      expiresAt
    }
  }
`);

export const Viewer = graphql(`
  query Viewer {
    viewer {
      app
      level
      user
      operator
    }
  }
`);

export const ApiKeys = graphql(`
  query ApiKeys {
    apiKeys {
      id
      level
      revokedAt
    }
  }
`);

export const CreateApiKey = graphql(`
  mutation CreateApiKey($level: KeyLevel!) {
    createApiKey(level: $level) {
      key
      info {
        id
        level
      }
    }
  }
`);

export const RevokeApiKey = graphql(`
  mutation RevokeApiKey($id: ID!) {
    revokeApiKey(id: $id) {
      id
      revokedAt
    }
  }
`);

export const ResetUser = graphql(`
  mutation ResetUser($username: String!) {
    resetUser(username: $username)
  }
`);

export const DeleteUser = graphql(`
  mutation DeleteUser($username: String!) {
    deleteUser(username: $username)
  }
`);

export const ChangePassword = graphql(`
  mutation ChangePassword($username: String!, $password: String!) {
    changePassword(username: $username, password: $password)
  }
`);

export const ShareBucket = graphql(`
  mutation ShareBucket($name: String!, $shared: Boolean!) {
    shareBucket(name: $name, shared: $shared)
  }
`);

export const GrantAcl = graphql(`
  mutation GrantAcl($rule: AclRuleInput!) {
    grantAcl(rule: $rule) {
      user
      item
      action
      type
    }
  }
`);
