/**
 * Failures, classified once for every part that runs work: the worker, `smolstage export`, the
 * data commands and both drivers. A failure is *permanent* (retrying the same attempt cannot
 * help: the spec or an input is wrong, a disk is full, a file is damaged — exit
 * BadConfiguration, never retried automatically) or *transient* (the store was unreachable,
 * a process crashed — exit Transient, retried with backoff). Permanent messages say what to fix
 * or free, and never quote the contents of a file that failed to parse.
 */

/**
 * Worker exit codes. The operator maps them onto a Job podFailurePolicy (reconcile/render-job.ts)
 * and the local driver onto its jobs (drivers/local/processes.ts), both through `exitDisposition`.
 */
export const ExitCode = {
  /** The stage's token budget was reached and the final checkpoint committed. */
  Finished: 0,
  /** Transient failure (storage unreachable past retries, crash): retry. */
  Transient: 1,
  /** Permanent: the spec or its inputs are wrong, a disk is full, an input is damaged. */
  BadConfiguration: 2,
  /** The operator asked to stop at a step; the checkpoint at that step is committed. */
  StoppedOnRequest: 3,
  /** SIGTERM: a checkpoint was committed inside the grace period. */
  Preempted: 4,
  /** The loss guard rewound too many times; the reason is in the last metrics record. */
  LossGuardFailed: 5,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/**
 * What an ended worker (or export) process means: `finished` and `stopped` end the attempt
 * well, `preempted` replaces the process in the same attempt, `transient` fails the attempt and
 * may be retried, `permanent` (bad configuration, full disk, damaged input) and `lossGuard` fail
 * the stage without retrying — a human fixes the cause and retries the run.
 */
export type ExitDisposition = 'finished' | 'stopped' | 'preempted' | 'transient' | 'permanent' | 'lossGuard';

/** Pure: the disposition of an exit code; a missing code (killed by a signal) is transient. */
export function exitDisposition(code: number | null | undefined): ExitDisposition {
  switch (code) {
    case ExitCode.Finished:
      return 'finished';
    case ExitCode.StoppedOnRequest:
      return 'stopped';
    case ExitCode.Preempted:
      return 'preempted';
    case ExitCode.BadConfiguration:
      return 'permanent';
    case ExitCode.LossGuardFailed:
      return 'lossGuard';
    default:
      return 'transient';
  }
}

/** A failure retrying cannot fix. Its message names the thing at fault and what to do. */
export class PermanentError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PermanentError';
  }
}

/** The spec or one of its inputs is wrong (a missing task, a file that is not what it claims). */
export class BadConfigurationError extends PermanentError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BadConfigurationError';
  }
}

/**
 * A problem with the user's inputs (a file, a flag, a manifest). The CLI prints its message
 * alone — no stack trace — so every message names the thing at fault and how to fix it.
 */
export class DataInputError extends PermanentError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DataInputError';
  }
}

/** A disk (or the object store) is full: the message says where space must be freed. */
export class DiskFullError extends PermanentError {
  constructor(
    /** The path (or store) being written, when known. */
    readonly where: string | undefined,
    readonly errno: string,
    doing?: string,
  ) {
    const at = where === undefined ? '' : ` at ${where}`;
    const free = where === undefined ? 'on the disk being written' : `on the filesystem holding ${where}`;
    super(
      `no space left${doing === undefined ? '' : ` ${doing}`} (${errno}${at}): free space ${free} (or raise the quota), then run again — training resumes from the last committed checkpoint`,
    );
    this.name = 'DiskFullError';
  }
}

const DISK_FULL_CODES = new Set(['ENOSPC', 'EDQUOT', 'EFBIG']);
/** S3 error codes of a full store (MinIO's, and the 507 status). */
const STORE_FULL_CODES = new Set(['XMinioStorageFull', 'InsufficientStorage', 'StorageFull']);

function errnoOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** The error, its causes (`cause`, nested), outermost first. */
function chain(error: unknown): unknown[] {
  const found: unknown[] = [];
  let current: unknown = error;
  while (current !== undefined && current !== null && found.length < 8 && !found.includes(current)) {
    found.push(current);
    current = (current as { cause?: unknown }).cause;
  }
  return found;
}

/** A DiskFullError for a full-disk error anywhere in `error`'s cause chain, else null. */
export function diskFull(error: unknown, doing?: string): DiskFullError | null {
  for (const e of chain(error)) {
    if (e instanceof DiskFullError) return e;
    const code = errnoOf(e);
    if (code !== undefined && DISK_FULL_CODES.has(code)) {
      const path = (e as { path?: unknown; dest?: unknown }).dest ?? (e as { path?: unknown }).path;
      return new DiskFullError(typeof path === 'string' ? path : undefined, code, doing);
    }
    const name = (e as { name?: unknown; Code?: unknown } | null)?.name;
    const status = (e as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
    if ((typeof name === 'string' && STORE_FULL_CODES.has(name)) || status === 507) {
      return new DiskFullError('the object store', typeof name === 'string' ? name : '507', doing);
    }
  }
  return null;
}

export interface ClassifiedFailure {
  permanent: boolean;
  code: ExitCode;
  /** One line: what failed and, when permanent, what to fix or free. */
  reason: string;
}

/** A one-line description of anything thrown (the errno code first when the message lacks it). */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = errnoOf(error);
    const message = error instanceof SyntaxError ? jsonProblem(error) : error.message;
    return code !== undefined && code.length > 0 && !message.includes(code) ? `${code}: ${message}` : message;
  }
  return String(error);
}

/**
 * THE classification: permanent errors (PermanentError and its kinds — including the storage
 * layer's configuration and damaged-checkpoint errors, which extend it — and full disks) exit
 * BadConfiguration; everything else is transient.
 */
export function classifyFailure(error: unknown): ClassifiedFailure {
  const full = diskFull(error);
  if (full !== null) return { permanent: true, code: ExitCode.BadConfiguration, reason: full.message };
  if (error instanceof PermanentError)
    return { permanent: true, code: ExitCode.BadConfiguration, reason: firstLine(error.message) };
  return { permanent: false, code: ExitCode.Transient, reason: firstLine(describeError(error)) };
}

function firstLine(text: string): string {
  return text.split('\n')[0] ?? text;
}

/**
 * Why JSON.parse failed, without the text it failed on: V8's messages quote the input
 * (`Unexpected token 'h', "hello" is not valid JSON`), which may be a secret or a huge line.
 */
export function jsonProblem(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const at = /\(line (\d+) column (\d+)\)/.exec(message);
  if (at !== null) return `not valid JSON at line ${at[1]} column ${at[2]}`;
  const position = /at position (\d+)/.exec(message);
  if (position !== null) return `not valid JSON at offset ${position[1]}`;
  if (/Unexpected end of JSON input/.test(message)) return 'not valid JSON (it ends too early)';
  return 'not valid JSON';
}

/**
 * JSON.parse for the contents of a file or object: a syntax error becomes a DataInputError
 * naming `where` and the position, never the contents.
 */
export function parseJsonText(text: string, where: string, hint = ''): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new DataInputError(`${where} is ${jsonProblem(error)}${hint === '' ? '' : `; ${hint}`}`);
  }
}
