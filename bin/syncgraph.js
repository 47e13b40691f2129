#!/usr/bin/env -S node --max-semi-space-size=32
// The flag: a node allocates mostly short-lived objects per request (parsed input, records,
// answers); a 32 MiB young generation lets most die before a scavenge must copy them (a third less
// time in GC under a write load, measured with --cpu-prof). `npm start` passes it too; a node
// started as `node bin/syncgraph.js` runs without it, correctly, just spending more in GC.
// The CLI is compiled TypeScript: `npm run build` (run by `npm start` and `npm test`) makes dist/.
import { cli } from '../dist/src/cli.js';

cli(process.argv);
