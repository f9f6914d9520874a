// What can go wrong, each with its own exit status, so that scripts can tell an unreachable host from a
// refused push without reading the message.
export type FailureKind =
  | 'usage'
  | 'image-not-found'
  | 'ssh-unreachable'
  | 'ssh-auth'
  | 'no-meshd'
  | 'push-rejected'
  | 'failed';

export const EXIT_CODES: Record<FailureKind, number> = {
  failed: 1,
  usage: 2,
  'image-not-found': 3,
  'ssh-unreachable': 4,
  'ssh-auth': 5,
  'no-meshd': 6,
  'push-rejected': 7,
};

export class PusshError extends Error {
  constructor(readonly kind: FailureKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PusshError';
  }

  get exitCode(): number {
    return EXIT_CODES[this.kind];
  }
}

/**
 * The registry answered with an error: its status and the OCI error body's first code and message, and when it
 * asked to be tried again (Retry-After, in seconds), if it did.
 */
export class RegistryRejectedError extends PusshError {
  constructor(readonly status: number, readonly code: string, readonly detail: string, what: string, readonly retryAfterSeconds?: number) {
    super('push-rejected', `${what}: the registry answered ${status} ${code}: ${detail}`);
    this.name = 'RegistryRejectedError';
  }
}

export function failureOf(err: unknown): { kind: FailureKind; message: string } {
  if (err instanceof PusshError) return { kind: err.kind, message: err.message };
  return { kind: 'failed', message: (err as Error)?.message ?? String(err) };
}
