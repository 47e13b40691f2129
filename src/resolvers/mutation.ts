import type { MutationResolvers } from '../generated/graphql.js';

export const Mutation: MutationResolvers = {
  submitChanges: async (_, { bucket, clientId, changes }, { engine, app, caller }) =>
    (await engine.partition(app, bucket)).submitChanges(changes, clientId ?? null, caller),
  pushEvents: async (_, { bucket, events, since }, { engine, app }) =>
    (await engine.partition(app, bucket)).pushEvents(events, since ?? null),
  configureBucket: async (_, { name, config }, { engine, app, caller }) => {
    const partition = await engine.partition(app, name);
    const patch = Object.fromEntries(Object.entries(config).filter(([, v]) => v !== null && v !== undefined));
    await partition.configure(patch, caller);
    return { partition };
  },
};
