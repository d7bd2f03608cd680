/**
 * `smolstage operator` from the TypeScript sources (never a stale dist/), as a child process
 * the tests can SIGKILL. Usage: node --import tsx operator-process.ts [operator flags]
 */
import { run } from '../../../src/cli/operator.js';

process.exitCode = await run(process.argv.slice(2));
