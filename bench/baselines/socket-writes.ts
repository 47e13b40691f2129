/**
 * Reference for W2: what writing to many TCP sockets on this machine costs, with no server around
 * it. A child process opens `sockets` connections to a server in this process and reads them;
 * every `intervalMs` this process writes one message of `messageBytes` to each socket, in one
 * synchronous loop, through the raw net.Socket API. The figure is the time of a loop divided by
 * the sockets: the floor of one socket write here (the kernel's loopback TCP work, and waking the
 * reader, are most of it). A fanout that writes each subscriber's socket once per pass spends at
 * least that per subscriber and pass, whatever it does to produce the messages.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { sleep } from '../stats.js';

export interface SocketWritesResult {
  sockets: number;
  messageBytes: number;
  rounds: number;
  /** Microseconds per socket write, median and least over the rounds. */
  microsPerWrite: number;
  microsPerWriteMin: number;
}

/** The reader's code, run as a child process: connects `n` sockets and reads them. */
const READER = `
const net = require('node:net');
const [port, n] = process.argv.slice(1).map(Number);
let open = 0;
for (let i = 0; i < n; i++) {
  const socket = net.connect(port, '127.0.0.1', () => { if (++open === n) process.send('open'); });
  socket.on('data', () => {});
  socket.on('error', () => {});
}
process.on('message', () => process.exit(0));
`;

export async function runSocketWrites(options: { sockets: number; messageBytes: number; rounds: number; intervalMs: number }): Promise<SocketWritesResult> {
  const accepted: Socket[] = [];
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    accepted.push(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const reader = spawn(process.execPath, ['-e', READER, String(port), String(options.sockets)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  try {
    await Promise.race([
      once(reader, 'message'),
      once(reader, 'exit').then(() => {
        throw new Error('the socket reader exited early');
      }),
    ]);
    while (accepted.length < options.sockets) await sleep(10);
    const message = Buffer.alloc(options.messageBytes, 0x61);
    const times: number[] = [];
    for (let round = 0; round < options.rounds; round++) {
      const started = performance.now();
      for (const socket of accepted) socket.write(message);
      times.push(((performance.now() - started) * 1000) / accepted.length);
      await sleep(options.intervalMs);
    }
    times.sort((a, b) => a - b);
    return {
      sockets: accepted.length,
      messageBytes: options.messageBytes,
      rounds: options.rounds,
      microsPerWrite: times[Math.floor(times.length / 2)]!,
      microsPerWriteMin: times[0]!,
    };
  } finally {
    reader.kill();
    for (const socket of accepted) socket.destroy();
    server.close();
  }
}
