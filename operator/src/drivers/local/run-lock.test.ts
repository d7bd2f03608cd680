/**
 * The run lock with real processes and files: concurrent starts with the lock write delayed,
 * a stale lock of a dead process, a lock whose pid now belongs to another program.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { acquireRunLock, LOCK_DELAY_ENV, LOCK_FILE, processStartTime, RunLockedError } from './run-lock.js';

const HERE = dirname(fileURLToPath(import.meta.url));

/** This environment without the test runner's marker (a child would report to it instead of printing). */
function childEnv(): NodeJS.ProcessEnv {
  const { NODE_TEST_CONTEXT: _, ...env } = process.env;
  return env;
}

/** A child process that takes the lock, reports, and holds it until its stdin closes. */
function contender(
  dir: string,
  delayMs: number,
): { child: ChildProcess; verdict: Promise<string>; closed: Promise<unknown> } {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(HERE, 'testdata', 'lock-contender.ts'), dir],
    {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...childEnv(), [LOCK_DELAY_ENV]: String(delayMs) },
    },
  );
  const closed = new Promise((r) => child.once('close', r));
  let errors = '';
  child.stderr?.on('data', (b) => {
    errors += b;
  });
  const verdict = new Promise<string>((done) => {
    void closed.then(() => done(`exited before a verdict: ${errors}`));
    let out = '';
    child.stdout?.on('data', (b) => {
      out += b;
      if (out.includes('\n')) done(out.trim());
    });
  });
  return { child, verdict, closed };
}

const root = mkdtempSync(join(tmpdir(), 'smolstage-lock-'));
after(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('run lock', () => {
  it('of concurrent starts with the lock write delayed, exactly one runs (5 rounds of 4)', async () => {
    for (let round = 0; round < 5; round++) {
      const dir = join(root, `concurrent-${round}`);
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir, { recursive: true });
      const contenders = Array.from({ length: 4 }, () => contender(dir, 300));
      const verdicts = await Promise.all(contenders.map((c) => c.verdict));
      assert.deepEqual(
        [...verdicts].sort(),
        ['acquired', 'locked', 'locked', 'locked'],
        `round ${round}: ${verdicts.join(', ')}`,
      );
      for (const c of contenders) c.child.stdin?.end();
      await Promise.all(contenders.map((c) => c.closed));
      assert.equal(existsSync(join(dir, LOCK_FILE)), false, 'released');
      assert.deepEqual(readdirSync(dir), [], 'no temporary files left');
    }
  });

  it('takes over a lock of a dead process, and one whose pid now belongs to another program', async () => {
    const dir = join(root, 'stale');
    await mkdir(dir, { recursive: true });
    // A pid that is certainly gone: a child that has exited.
    const gone = spawn(process.execPath, ['-e', '0']);
    await new Promise((r) => gone.once('close', r));
    await writeFile(join(dir, LOCK_FILE), `${gone.pid}\n`);
    let release = await acquireRunLock(dir);
    assert.equal(JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8')).pid, process.pid);
    await release();

    // A live process that is not a smolstage run holds the pid: the old format (bare pid)...
    const sleeper = spawn('sleep', ['30']);
    try {
      await writeFile(join(dir, LOCK_FILE), `${sleeper.pid}\n`);
      release = await acquireRunLock(dir);
      await release();
      // ...and the new one, whose recorded start time is not the live process's.
      const startTime = processStartTime(sleeper.pid as number);
      assert.ok(startTime !== null && startTime !== '');
      await writeFile(
        join(dir, LOCK_FILE),
        JSON.stringify({
          format: 'smolstage.dev/run-lock/v1',
          pid: sleeper.pid,
          startTime: '1',
          command: 'x',
        }),
      );
      release = await acquireRunLock(dir);
      await release();
      // The same pid with its real start time is a live holder: refused, and the lock is left alone.
      const held = JSON.stringify({
        format: 'smolstage.dev/run-lock/v1',
        pid: sleeper.pid,
        startTime,
        command: 'x',
      });
      await writeFile(join(dir, LOCK_FILE), held);
      await assert.rejects(acquireRunLock(dir), RunLockedError);
      assert.equal(await readFile(join(dir, LOCK_FILE), 'utf8'), held);
    } finally {
      sleeper.kill();
    }
    assert.deepEqual(readdirSync(dir), [LOCK_FILE], 'no temporary or stale files left');
  });
});
