/**
 * The key levels (Simperium's admin, default and read-only) and the matrix in docs/SECURITY.md,
 * which must say exactly what the code does.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { can, Capability, capabilities, Level, levels } from '../../src/model/permissions.js';

describe('levels', () => {
  it('gives admin keys everything', () => {
    for (const capability of capabilities) expect(can(Level.ADMIN, capability)).toBe(true);
  });

  it("denies default keys exactly Simperium's exceptions, and app management", () => {
    const denied = capabilities.filter((c) => !can(Level.DEFAULT, c));
    expect(denied.sort()).toEqual(
      [
        Capability.DELETE_USER,
        Capability.RESET_USER,
        Capability.LIST_BUCKETS,
        Capability.LIST_CHANGES_ACROSS_USERS,
        Capability.DROP_BUCKET,
        Capability.CONFIGURE_BUCKET,
        Capability.ACT_AS_USER,
        Capability.MANAGE_APP,
      ].sort(),
    );
  });

  it('lets read-only keys read and sign users up and in, nothing that writes data', () => {
    expect(can(Level.READONLY, Capability.READ)).toBe(true);
    expect(can(Level.READONLY, Capability.CREATE_USER)).toBe(true);
    expect(can(Level.READONLY, Capability.WRITE)).toBe(false);
    expect(can(Level.READONLY, Capability.DROP_BUCKET)).toBe(false);
  });

  it('orders the levels: whatever a level may do, every level above it may too', () => {
    for (const capability of capabilities) {
      if (can(Level.READONLY, capability)) expect(can(Level.DEFAULT, capability)).toBe(true);
      if (can(Level.DEFAULT, capability)) expect(can(Level.ADMIN, capability)).toBe(true);
    }
  });
});

describe('docs/SECURITY.md', () => {
  it('shows the matrix the code enforces, row for row', () => {
    const doc = readFileSync(new URL('../../docs/SECURITY.md', import.meta.url), 'utf8');
    const table = /<!-- permission-matrix:start -->\n([\s\S]*?)<!-- permission-matrix:end -->/.exec(doc)?.[1];
    expect(table).toBeDefined();
    const rows = table!
      .trim()
      .split('\n')
      .map((line) => line.split('|').slice(1, -1).map((cell) => cell.trim()));
    expect(rows[0]).toEqual(['Capability', ...levels]);
    const body = rows.slice(2);
    expect(body.map((row) => row[0])).toEqual([...capabilities]);
    for (const row of body) {
      const capability = row[0] as Capability;
      expect(row.slice(1), capability).toEqual(levels.map((level) => (can(level, capability) ? 'yes' : 'no')));
    }
  });
});
