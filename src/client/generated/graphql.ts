/* eslint-disable */
/** Internal type. DO NOT USE DIRECTLY. */
type Exact<T extends { [key: string]: unknown }> = { [K in keyof T]: T[K] };
/** Internal type. DO NOT USE DIRECTLY. */
export type Incremental<T> = T | { [P in keyof T]?: P extends ' $fragmentName' | '__typename' ? T[P] : never };
import type { DocumentTypeDecoration } from '@graphql-typed-document-node/core';
/**
 * One change to submit. `ccid` identifies it within the bucket: a ccid already applied returns the
 * original change with `duplicate: true` and applies nothing.
 */
export type ChangeInput = {
  /** The version this change was made on: 0 or null to create; for DELETE null means the current one. */
  baseVersion?: number | null | undefined;
  ccid: string | number;
  /** MODIFY only: the whole new object. */
  data?: unknown;
  /** MODIFY only: a jsondiff against `baseVersion`. */
  diff?: unknown;
  /** Required for MODIFY and DELETE. */
  key?: string | number | null | undefined;
  op: ChangeOp;
};

/** The kind of a change, as in Simperium: modify an entity, delete it, empty or drop the bucket. */
export type ChangeOp =
  | 'DELETE'
  | 'DROP'
  | 'EMPTY'
  | 'MODIFY';

export type EventInput = {
  action: string;
  item: string;
  payload: string;
  timestamp: string;
  user: string;
  uuid: string | number;
};

/** Why one change of a batch was not applied. The other changes of the batch are unaffected. */
export type SyncErrorCode =
  /** `baseVersion` is newer than the entity (or, in an optimistic bucket, older than it). */
  | 'BAD_VERSION'
  /** A field of the change is malformed or over a limit; the message names the field. */
  | 'INVALID_INPUT'
  /** The caller may not perform this change. */
  | 'INVALID_PERMISSION'
  /** The entity does not exist or is deleted. */
  | 'MISSING_ENTITY';

export type ClientChangeFieldsFragment = { ccid: string, key: string | null, op: ChangeOp, version: number | null, data: unknown, cursor: string };

export type ClientSubmitChangesMutationVariables = Exact<{
  bucket: string;
  clientId?: string | null | undefined;
  changes: Array<ChangeInput> | ChangeInput;
}>;


export type ClientSubmitChangesMutation = { submitChanges: Array<{ ccid: string, duplicate: boolean, noop: boolean, error: { code: SyncErrorCode, message: string } | null, change: { ccid: string, key: string | null, op: ChangeOp, version: number | null, data: unknown, cursor: string } | null, entity: { key: string, version: number, data: unknown, deleted: boolean } | null }> };

export type ClientChangesPageQueryVariables = Exact<{
  bucket: string;
  since?: string | null | undefined;
  limit?: number | null | undefined;
  keyPrefix?: string | null | undefined;
}>;


export type ClientChangesPageQuery = { changes: { cursor: string, hasMore: boolean, changes: Array<{ ccid: string, key: string | null, op: ChangeOp, version: number | null, data: unknown, cursor: string }> } };

export type ClientOnChangesSubscriptionVariables = Exact<{
  bucket: string;
  since?: string | null | undefined;
  keyPrefix?: string | null | undefined;
}>;


export type ClientOnChangesSubscription = { changes: { ccid: string, key: string | null, op: ChangeOp, version: number | null, data: unknown, cursor: string } };

export type ClientEventFieldsFragment = { uuid: string, timestamp: string, user: string, item: string, action: string, payload: string, cursor: string };

export type ClientPushEventsMutationVariables = Exact<{
  bucket: string;
  events: Array<EventInput> | EventInput;
  since?: string | null | undefined;
}>;


export type ClientPushEventsMutation = { pushEvents: { cursor: string, hasMore: boolean, rejected: Array<{ uuid: string, code: SyncErrorCode, message: string }>, history: Array<{ uuid: string, timestamp: string, user: string, item: string, action: string, payload: string, cursor: string }> } };

export type ClientEventsPageQueryVariables = Exact<{
  bucket: string;
  since?: string | null | undefined;
  limit?: number | null | undefined;
}>;


export type ClientEventsPageQuery = { events: { cursor: string, hasMore: boolean, events: Array<{ uuid: string, timestamp: string, user: string, item: string, action: string, payload: string, cursor: string }> } };

export class TypedDocumentString<TResult, TVariables>
  extends String
  implements DocumentTypeDecoration<TResult, TVariables>
{
  __apiType?: NonNullable<DocumentTypeDecoration<TResult, TVariables>['__apiType']>;
  private value: string;
  public __meta__?: Record<string, any> | undefined;

  constructor(value: string, __meta__?: Record<string, any> | undefined) {
    super(value);
    this.value = value;
    this.__meta__ = __meta__;
  }

  override toString(): string & DocumentTypeDecoration<TResult, TVariables> {
    return this.value;
  }
}
export const ClientChangeFieldsFragmentDoc = new TypedDocumentString(`
    fragment ClientChangeFields on Change {
  ccid
  key
  op
  version
  data
  cursor
}
    `, {"fragmentName":"ClientChangeFields"}) as unknown as TypedDocumentString<ClientChangeFieldsFragment, unknown>;
export const ClientEventFieldsFragmentDoc = new TypedDocumentString(`
    fragment ClientEventFields on Event {
  uuid
  timestamp
  user
  item
  action
  payload
  cursor
}
    `, {"fragmentName":"ClientEventFields"}) as unknown as TypedDocumentString<ClientEventFieldsFragment, unknown>;
export const ClientSubmitChangesDocument = new TypedDocumentString(`
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
    fragment ClientChangeFields on Change {
  ccid
  key
  op
  version
  data
  cursor
}`) as unknown as TypedDocumentString<ClientSubmitChangesMutation, ClientSubmitChangesMutationVariables>;
export const ClientChangesPageDocument = new TypedDocumentString(`
    query ClientChangesPage($bucket: String!, $since: Cursor, $limit: Int, $keyPrefix: String) {
  changes(bucket: $bucket, since: $since, limit: $limit, keyPrefix: $keyPrefix) {
    changes {
      ...ClientChangeFields
    }
    cursor
    hasMore
  }
}
    fragment ClientChangeFields on Change {
  ccid
  key
  op
  version
  data
  cursor
}`) as unknown as TypedDocumentString<ClientChangesPageQuery, ClientChangesPageQueryVariables>;
export const ClientOnChangesDocument = new TypedDocumentString(`
    subscription ClientOnChanges($bucket: String!, $since: Cursor, $keyPrefix: String) {
  changes(bucket: $bucket, since: $since, keyPrefix: $keyPrefix) {
    ...ClientChangeFields
  }
}
    fragment ClientChangeFields on Change {
  ccid
  key
  op
  version
  data
  cursor
}`) as unknown as TypedDocumentString<ClientOnChangesSubscription, ClientOnChangesSubscriptionVariables>;
export const ClientPushEventsDocument = new TypedDocumentString(`
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
    fragment ClientEventFields on Event {
  uuid
  timestamp
  user
  item
  action
  payload
  cursor
}`) as unknown as TypedDocumentString<ClientPushEventsMutation, ClientPushEventsMutationVariables>;
export const ClientEventsPageDocument = new TypedDocumentString(`
    query ClientEventsPage($bucket: String!, $since: Cursor, $limit: Int) {
  events(bucket: $bucket, since: $since, limit: $limit) {
    events {
      ...ClientEventFields
    }
    cursor
    hasMore
  }
}
    fragment ClientEventFields on Event {
  uuid
  timestamp
  user
  item
  action
  payload
  cursor
}`) as unknown as TypedDocumentString<ClientEventsPageQuery, ClientEventsPageQueryVariables>;