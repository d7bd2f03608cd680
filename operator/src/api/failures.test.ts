import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import {
  BadConfigurationError,
  classifyFailure,
  DataInputError,
  DiskFullError,
  diskFull,
  ExitCode,
  exitDisposition,
  jsonProblem,
  PermanentError,
  parseJsonText,
} from './failures.js';

function parseError(text: string): unknown {
  try {
    JSON.parse(text);
  } catch (error) {
    return error;
  }
  throw new Error('parsed');
}

describe('failures', () => {
  it('permanent kinds exit BadConfiguration with their message; anything else is transient', () => {
    for (const error of [
      new BadConfigurationError('missing task'),
      new DataInputError('bad file'),
      new PermanentError('damaged'),
    ]) {
      assert.deepEqual(classifyFailure(error), {
        permanent: true,
        code: ExitCode.BadConfiguration,
        reason: error.message,
      });
    }
    const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    assert.deepEqual(classifyFailure(reset), {
      permanent: false,
      code: ExitCode.Transient,
      reason: 'ECONNRESET: socket hang up',
    });
  });

  it('a full disk is permanent anywhere in the cause chain, and says where to free space', async () => {
    // A real ENOSPC from the kernel: /dev/full always answers it.
    let error: unknown;
    try {
      await writeFile('/dev/full', 'x');
    } catch (e) {
      error = e;
    }
    const wrapped = new Error('upload failed', { cause: error });
    const verdict = classifyFailure(wrapped);
    assert.equal(verdict.permanent, true);
    assert.equal(verdict.code, ExitCode.BadConfiguration);
    assert.match(verdict.reason, /^no space left \(ENOSPC\): free space on the disk being written/);
    assert.match(
      diskFull(wrapped, 'writing the state file /x')?.message ?? '',
      /^no space left writing the state file \/x \(ENOSPC\)/,
    );
    assert.ok(diskFull(wrapped) instanceof DiskFullError);
    const store = Object.assign(new Error('Storage backend has reached its minimum free drive threshold'), {
      name: 'XMinioStorageFull',
    });
    assert.match(classifyFailure(store).reason, /no space left \(XMinioStorageFull at the object store\)/);
  });

  it('a JSON syntax error is described by position, never by the text it failed on', () => {
    for (const text of ['SECRET-TOKEN-123', '{"key": SECRET-TOKEN-123}', '{"a": "SECRET-TOKEN-123"', '']) {
      const problem = jsonProblem(parseError(text));
      assert.match(problem, /^not valid JSON/);
      assert.doesNotMatch(problem, /SECRET/);
      assert.throws(
        () => parseJsonText(text, 'tokenizer t.json', 'pass a tokenizer.json'),
        (e: Error) =>
          e instanceof DataInputError &&
          /^tokenizer t\.json is not valid JSON.*; pass a tokenizer\.json$/.test(e.message) &&
          !e.message.includes('SECRET'),
      );
    }
    assert.equal(classifyFailure(parseError('SECRET')).reason.includes('SECRET'), false);
  });

  it('exit codes map to one disposition each', () => {
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 137, null].map((c) => exitDisposition(c)),
      ['finished', 'transient', 'permanent', 'stopped', 'preempted', 'lossGuard', 'transient', 'transient'],
    );
  });
});
