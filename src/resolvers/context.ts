/** What every resolver receives. Resolvers are thin: arguments in, engine calls, views out. */
import type { Engine } from '../engine/engine.js';
import type { Caller } from '../engine/partition.js';
import type { Limits } from '../options.js';

export interface ResolverContext {
  engine: Engine;
  /** The app every request is bound to. Until apps exist (next issue) there is one: `default`. */
  app: string;
  caller: Caller;
  limits: Limits;
}
