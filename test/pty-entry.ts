// Runs the CLI from source (tsx), as the pty tests spawn it.
import { main } from '../src/cli.js';

process.exitCode = await main(process.argv);
