// Errors in the OCI Distribution format: {"errors":[{code,message,detail}]} with the spec's status codes.
import { RangeNotSatisfiableError } from '../http/range.js';
import { TooLargeError } from '../oci/limits.js';
import { NameInvalidError } from '../oci/names.js';
import { StoreBusyError, StoreFullError, StoreUnavailableError, UploadClosedError } from '../store/store.js';

export type ErrorCode =
  | 'BLOB_UNKNOWN'
  | 'BLOB_UPLOAD_INVALID'
  | 'BLOB_UPLOAD_UNKNOWN'
  | 'DIGEST_INVALID'
  | 'MANIFEST_BLOB_UNKNOWN'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_UNKNOWN'
  | 'NAME_INVALID'
  | 'NAME_UNKNOWN'
  | 'SIZE_INVALID'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'UNSUPPORTED'
  | 'TOOMANYREQUESTS'
  | 'UNAVAILABLE'
  | 'RANGE_INVALID'
  | 'UNKNOWN';

export class RegistryError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly detail?: unknown,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'RegistryError';
  }

  body(): { errors: { code: ErrorCode; message: string; detail?: unknown }[] } {
    return { errors: [{ code: this.code, message: this.message, ...(this.detail === undefined ? {} : { detail: this.detail }) }] };
  }
}

export const blobUnknown = (digest: string) => new RegistryError(404, 'BLOB_UNKNOWN', 'blob unknown to registry', { digest });
export const manifestUnknown = (reference: string) =>
  new RegistryError(404, 'MANIFEST_UNKNOWN', 'manifest unknown', { reference });
export const uploadUnknown = (id: string) =>
  new RegistryError(404, 'BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry', { uuid: id });
export const digestInvalid = (message: string, detail?: unknown) => new RegistryError(400, 'DIGEST_INVALID', message, detail);
export const nameInvalid = (name: string) =>
  new RegistryError(400, 'NAME_INVALID', 'invalid repository name', { name });
export const unsupported = (message: string) => new RegistryError(405, 'UNSUPPORTED', message);
const storeUnavailable = (err: StoreUnavailableError) =>
  new RegistryError(503, 'UNAVAILABLE', err.message, undefined, { 'retry-after': String(err.retryAfterSeconds) });

/** The HTTP face of an error: registry errors as they are, the store's domain errors mapped; undefined for the rest. */
export function asRegistryError(err: unknown): RegistryError | undefined {
  if (err instanceof RegistryError) return err;
  if (err instanceof RangeNotSatisfiableError) {
    return new RegistryError(416, 'RANGE_INVALID', err.message, undefined, { 'content-range': `bytes */${err.size}` });
  }
  if (err instanceof TooLargeError) return new RegistryError(413, 'SIZE_INVALID', `body exceeds ${err.limit} bytes`, { limit: err.limit });
  if (err instanceof NameInvalidError) {
    return err.kind === 'tag' ? new RegistryError(400, 'MANIFEST_INVALID', 'invalid tag', { tag: err.value }) : nameInvalid(err.value);
  }
  if (err instanceof StoreFullError) return new RegistryError(507, 'UNKNOWN', err.message);
  if (err instanceof StoreUnavailableError) return storeUnavailable(err);
  if (err instanceof StoreBusyError) return new RegistryError(429, 'TOOMANYREQUESTS', err.message, undefined, { 'retry-after': String(err.retryAfterSeconds) });
  if (err instanceof UploadClosedError) return uploadUnknown(err.id);
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new RegistryError(507, 'UNKNOWN', "no space left on the registry's disk");
  return undefined;
}
