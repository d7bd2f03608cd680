/**
 * A problem with the user's inputs (a file, a flag, a manifest). The CLI prints its message
 * alone — no stack trace — so every message names the thing at fault and how to fix it.
 */
export class DataInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataInputError';
  }
}
