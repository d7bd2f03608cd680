/** A problem with the spec or its inputs that retrying cannot fix (exit BadConfiguration). */
export class BadConfigurationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BadConfigurationError';
  }
}
