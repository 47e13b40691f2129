/**
 * The backup format (storage/backup.ts): a store's entries round-trip through backup lines into
 * another store exactly; a cut, altered or foreign backup is refused; lines are split across any
 * chunking, and a line without end is not buffered for ever.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BackupError, backupLines, restoreLines, splitLines } from '../../src/storage/backup.js';
import { MemoryStore } from './memory-store.js';

async function* chunked(text: string, sizes: number[]): AsyncGenerator<string> {
  let pos = 0;
  for (const size of sizes) {
    if (pos >= text.length) break;
    yield text.slice(pos, pos + size);
    pos += size;
  }
  if (pos < text.length) yield text.slice(pos);
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

async function backupText(store: MemoryStore): Promise<string> {
  return (await collect(backupLines(store, { nodeId: 'n1', createdAt: '2026-11-23T00:00:00.000Z' }))).join('');
}

describe('backup lines', () => {
  it('restore into another store exactly, whatever the chunking (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.dictionary(fc.string({ minLength: 1, maxLength: 12 }), fc.string({ maxLength: 40 }), { maxKeys: 30 }),
        fc.array(fc.integer({ min: 1, max: 50 }), { maxLength: 20 }),
        async (entries, sizes) => {
          const source = new MemoryStore();
          await source.write(Object.entries(entries).map(([key, value]) => ({ type: 'put' as const, key, value })), { sync: true });
          const text = await backupText(source);
          const target = new MemoryStore();
          const restored = await restoreLines(splitLines(chunked(text, sizes)), target);
          expect(restored.entries).toBe(Object.keys(entries).length);
          expect(await collect(target.entries({}))).toEqual(await collect(source.entries({})));
        },
      ),
      { numRuns: 100 },
    );
  });

  it('are refused when cut, altered, or not a backup', async () => {
    const source = new MemoryStore();
    await source.write([{ type: 'put', key: 'a', value: '"1"' }, { type: 'put', key: 'b', value: '"2"' }], { sync: true });
    const lines = (await backupText(source)).trimEnd().split('\n');
    const refused = async (text: string[]) => {
      const error = await restoreLines(splitLines(chunked(text.join('\n'), [])), new MemoryStore()).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BackupError);
      return (error as Error).message;
    };
    expect(await refused(lines.slice(0, -1))).toMatch(/incomplete/);
    expect(await refused([lines[0]!, lines[1]!.replace('"a"', '"z"'), ...lines.slice(2)])).toMatch(/damaged/);
    expect(await refused(['{"format":"something-else"}'])).toMatch(/not a syncgraph backup/);
    expect(await refused([lines[0]!, 'not json', ...lines.slice(2)])).toMatch(/line 2: not JSON/);
  });

  it('will not buffer a line without end', async () => {
    const error = await collect(splitLines(chunked('x'.repeat(100), [10, 10, 10, 10, 10, 50]), 30)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackupError);
    expect(await collect(splitLines(chunked('ab\ncd\n\nef', [1, 2, 1])))).toEqual(['ab', 'cd', '', 'ef']);
  });
});
