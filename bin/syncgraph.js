#!/usr/bin/env node
// The CLI is compiled TypeScript: `npm run build` (run by `npm start` and `npm test`) makes dist/.
import { cli } from '../dist/src/cli.js';

cli(process.argv);
