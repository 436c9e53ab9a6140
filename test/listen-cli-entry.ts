// The CLI from source, for tests that spawn it (bin/ runs dist/, which may be stale).
import { main } from '../src/cli.js';

process.exitCode = await main(process.argv);
