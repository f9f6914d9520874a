// The local containerd: images and blobs through the same Store meshd uses (blob files read directly
// when this process may read them, gRPC otherwise).
import { existsSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { ContainerdStore } from '../../store/containerd/store.js';
import { NotFoundError } from '../../store/store.js';
import { type Descriptor } from '../../oci/digest.js';
import { mediaTypeOf } from '../../oci/manifest.js';
import { MAX_MANIFEST_BYTES, readBounded } from '../../oci/limits.js';
import { PusshError } from './errors.js';
import { localName, type ImageRef } from './refs.js';
import { SourceUnavailableError } from './source-docker.js';
import { missingBlob, type ImageSource } from './source.js';

export const DEFAULT_CONTAINERD_SOCKET = '/run/containerd/containerd.sock';

/** The store's warnings (e.g. "reading blobs over gRPC") as plain lines on stderr, not JSON. */
function cliLogger(): Logger {
  return pino({ level: 'warn', base: undefined, timestamp: false }, {
    write(line: string) {
      try {
        process.stderr.write(`pussh: warning: ${(JSON.parse(line) as { msg?: string }).msg}\n`);
      } catch {
        process.stderr.write(line);
      }
    },
  });
}

export async function openContainerd(socket: string, namespace: string, ref: ImageRef): Promise<ImageSource> {
  const description = `containerd (${socket}, namespace ${namespace})`;
  if (!existsSync(socket)) throw new SourceUnavailableError(`no containerd socket at ${socket}`);
  let store: ContainerdStore;
  try {
    store = await ContainerdStore.connect({ socket, namespace, logger: cliLogger() });
  } catch (err) {
    throw new SourceUnavailableError(`containerd at ${socket} cannot be used: ${(err as Error).message}`);
  }
  try {
    const root = await findRoot(store, ref);
    if (!root) throw new PusshError('image-not-found', `${description}: no image ${localName(ref)}`);
    return {
      description,
      root,
      has: async (digest) => (await store.stat(digest)) !== undefined,
      open: async (digest): Promise<Readable> => {
        try {
          return (await store.open(digest)).stream;
        } catch (err) {
          if (err instanceof NotFoundError) throw missingBlob({ description }, digest);
          throw err;
        }
      },
      close: () => store.close(),
    };
  } catch (err) {
    await store.close();
    throw err;
  }
}

/** The image record's target; for `name@digest` without such a record, the manifest with that digest. */
async function findRoot(store: ContainerdStore, ref: ImageRef): Promise<Descriptor | undefined> {
  const record = await store.images.get(localName(ref));
  if (record) return !ref.digest || record.target.digest === ref.digest ? record.target : undefined;
  if (!ref.digest) return undefined;
  const info = await store.stat(ref.digest);
  if (!info) return undefined;
  const body = await readBounded((await store.open(ref.digest)).stream, MAX_MANIFEST_BYTES);
  return { mediaType: mediaTypeOf(body), digest: ref.digest, size: info.size };
}
