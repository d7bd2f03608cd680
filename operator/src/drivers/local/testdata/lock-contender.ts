/** Test helper: takes the run lock of argv[2], prints `acquired` or `locked`, holds it until stdin closes. */
import { acquireRunLock } from '../run-lock.js';

const dir = process.argv[2] as string;
try {
  const release = await acquireRunLock(dir);
  process.stdout.write('acquired\n');
  process.stdin.resume();
  process.stdin.on('end', () => {
    void release().then(() => process.exit(0));
  });
} catch (error) {
  process.stdout.write(
    `${(error as Error).name === 'RunLockedError' ? 'locked' : `error ${(error as Error).message}`}\n`,
  );
  process.exit(0);
}
