/**
 * A server's V8 inspector, used for one thing: a full garbage collection before a memory
 * reading, so that the reading measures what is live rather than what happens not to have been
 * collected yet. Servers are started with `--inspect=127.0.0.1:0`; an inspector without a session
 * costs nothing, and the session here lasts one command.
 */
import WebSocket from 'ws';

/** The inspector's WebSocket URL, from the line Node prints on stderr at start-up. */
export function inspectorUrlIn(line: string): string | undefined {
  return /Debugger listening on (ws:\/\/\S+)/.exec(line)?.[1];
}

/** Runs HeapProfiler.collectGarbage (a full, compacting GC) `times` times in the server. */
export async function collectGarbage(inspectorUrl: string, times = 2): Promise<void> {
  const socket = new WebSocket(inspectorUrl);
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    for (let id = 1; id <= times; id++) {
      await new Promise<void>((resolve, reject) => {
        const onMessage = (raw: WebSocket.RawData) => {
          const message = JSON.parse(String(raw)) as { id?: number; error?: { message: string } };
          if (message.id !== id) return;
          socket.off('message', onMessage);
          if (message.error) reject(new Error(`inspector: ${message.error.message}`));
          else resolve();
        };
        socket.on('message', onMessage);
        socket.send(JSON.stringify({ id, method: 'HeapProfiler.collectGarbage' }));
      });
    }
  } finally {
    socket.close();
  }
}
