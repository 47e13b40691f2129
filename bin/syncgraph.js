#!/usr/bin/env node
// No Node.js flags: `syncgraph start` tunes V8's heap itself (src/server/heap-tuning.ts), so that
// a node started as `node bin/syncgraph.js` or by a process manager runs the same.
// The CLI is compiled TypeScript: `npm run build` (run by `npm start` and `npm test`) makes dist/.
import { cli } from '../dist/src/cli.js';

cli(process.argv);
