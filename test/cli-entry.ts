// The CLI straight from the sources, for spawned tests: no stale dist/ is ever run.
import { main } from '../src/cli.js';

process.exitCode = await main(process.argv);
