// How `meshctl mirror` fails: every failure is thrown as a MirrorConfigError, whose message is written for the
// user and names what to change (meshctl prints it and exits with status 2). Nothing here logs and carries on,
// and no other error escapes. The containerd config check is not a failure: it reports what it found (a config
// that is missing, unreadable or invalid included) in its result, and configure goes on with it.

export class MirrorConfigError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MirrorConfigError';
  }
}

/** An option that cannot be used: a registry host, the mirror URL, options that exclude each other. */
export class MirrorUsageError extends MirrorConfigError {
  constructor(message: string) {
    super(message);
    this.name = 'MirrorUsageError';
  }
}

/** A file or directory that cannot be read or written; the message names the path and why. */
export class MirrorFsError extends MirrorConfigError {
  /** The errno code (EACCES, ENOTDIR, …), when the system gave one. */
  readonly code?: string;

  constructor(readonly action: string, readonly path: string, cause: unknown) {
    const code = (cause as NodeJS.ErrnoException).code;
    const why = code === 'EACCES' || code === 'EPERM' ? 'permission denied (run as root, or choose another --dir)'
      : code === 'EROFS' ? 'read-only file system'
      : code === 'ENOTDIR' ? 'a component of the path is not a directory'
      : code === 'EEXIST' ? 'it already exists'
      : (cause as Error).message;
    super(`cannot ${action} ${path}: ${why}`, { cause });
    this.name = 'MirrorFsError';
    this.code = code;
  }
}

/** configure found files it must not touch: it wrote nothing. */
export class MirrorConflictError extends MirrorConfigError {
  constructor(readonly problems: string[]) {
    super(`nothing written:\n  ${problems.join('\n  ')}`);
    this.name = 'MirrorConflictError';
  }
}
