/**
 * A mistake the user can fix in the workflow file or in Azure: a bad input, a missing
 * permission, a blob that does not exist. The message names the input or resource, quotes
 * the bad value and says what was expected, so it reads well as the step's only error line.
 */
export class ConfigurationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigurationError';
  }
}

/** Quotes a user-supplied value for an error message, shortening very long ones. */
export function quote(value: string): string {
  const shown = value.length > 120 ? `${value.slice(0, 117)}...` : value;
  return `'${shown}'`;
}

/** The message of anything thrown, for logs and step failures. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
