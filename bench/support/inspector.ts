/**
 * A server's V8 inspector, used for two things: a full garbage collection before a memory
 * reading (so that the reading measures what is live rather than what happens not to have been
 * collected yet), and evaluating a line of code in the server (gc-watch.ts). Servers are started
 * with `--inspect=127.0.0.1:0`; an inspector without a session costs nothing, and each session
 * here lasts one call.
 */
import WebSocket from 'ws';

/** The inspector's WebSocket URL, from the line Node prints on stderr at start-up. */
export function inspectorUrlIn(line: string): string | undefined {
  return /Debugger listening on (ws:\/\/\S+)/.exec(line)?.[1];
}

interface Reply {
  id?: number;
  error?: { message: string };
  result?: { result?: { value?: unknown }; exceptionDetails?: { text: string; exception?: { description?: string } } };
}

/** Sends `commands` one after the other over one session; resolves with their results. */
async function session(inspectorUrl: string, commands: ReadonlyArray<{ method: string; params?: object }>): Promise<Reply['result'][]> {
  const socket = new WebSocket(inspectorUrl);
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    const results: Reply['result'][] = [];
    for (const [index, command] of commands.entries()) {
      const id = index + 1;
      results.push(
        await new Promise<Reply['result']>((resolve, reject) => {
          const onMessage = (raw: WebSocket.RawData) => {
            const message = JSON.parse(String(raw)) as Reply;
            if (message.id !== id) return;
            socket.off('message', onMessage);
            if (message.error) reject(new Error(`inspector: ${message.error.message}`));
            else resolve(message.result);
          };
          socket.on('message', onMessage);
          socket.send(JSON.stringify({ id, ...command }));
        }),
      );
    }
    return results;
  } finally {
    socket.close();
  }
}

/** Runs HeapProfiler.collectGarbage (a full, compacting GC) `times` times in the server. */
export async function collectGarbage(inspectorUrl: string, times = 2): Promise<void> {
  await session(inspectorUrl, Array.from({ length: times }, () => ({ method: 'HeapProfiler.collectGarbage' })));
}

/** Evaluates `expression` in the server's main context; resolves with its value (awaited if a promise; JSON-like values only). */
export async function evaluate(inspectorUrl: string, expression: string): Promise<unknown> {
  const [result] = await session(inspectorUrl, [{ method: 'Runtime.evaluate', params: { expression, returnByValue: true, awaitPromise: true } }]);
  const failure = result?.exceptionDetails;
  if (failure) throw new Error(`inspector: ${failure.exception?.description ?? failure.text}`);
  return result?.result?.value;
}
