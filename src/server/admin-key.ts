/**
 * The admin key: given by the operator, or generated on the first start and kept in the data
 * directory (mode 0600) so that restarts keep it. Compared in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface AdminKeySource {
  key: string;
  /** True when this start generated it (the CLI prints it, once). */
  generated: boolean;
}

export function resolveAdminKey(dataDir: string, given: string | undefined): AdminKeySource {
  if (given !== undefined && given !== '') return { key: given, generated: false };
  const file = join(dataDir, 'admin-key');
  if (existsSync(file)) return { key: readFileSync(file, 'utf8').trim(), generated: false };
  const key = randomBytes(32).toString('base64url');
  writeFileSync(file, key + '\n', { mode: 0o600, flag: 'wx' });
  return { key, generated: true };
}

/** Constant-time comparison (hashing first makes the lengths equal). */
export function keyMatches(candidate: string, key: string): boolean {
  const a = createHash('sha256').update(candidate).digest();
  const b = createHash('sha256').update(key).digest();
  return timingSafeEqual(a, b);
}
