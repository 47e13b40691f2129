/** Builds the executable schema from the SDL files in `schema/` (the source of truth). */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createSchema } from 'graphql-yoga';
import { resolvers } from '../resolvers/index.js';
import type { ResolverContext } from '../resolvers/context.js';

/** The `schema/` directory of the package, found upwards from this file (src/ or dist/src/). */
export function schemaDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'schema');
    if (existsSync(join(candidate, 'changes.graphql'))) return candidate;
    dir = dirname(dir);
  }
  throw new Error('cannot find the schema/ directory of syncgraph');
}

export function loadTypeDefs(): string[] {
  const dir = schemaDir();
  return readdirSync(dir)
    .filter((f) => f.endsWith('.graphql'))
    .sort()
    .map((f) => readFileSync(join(dir, f), 'utf8'));
}

export function buildSchema() {
  return createSchema<ResolverContext>({ typeDefs: loadTypeDefs(), resolvers: [resolvers] as never });
}
