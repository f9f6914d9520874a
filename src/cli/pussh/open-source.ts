// `--from`: which source to read the image from; `auto` tries the local daemons in turn.
import { resolveDockerEndpoint } from './docker-endpoint.js';
import type { DockerGlobals } from './docker-globals.js';
import { PusshError } from './errors.js';
import type { ImageRef } from './refs.js';
import { openDockerArchive } from './source-archive.js';
import { openContainerd } from './source-containerd.js';
import { openDockerDaemon } from './source-docker.js';
import { openOciDir } from './source-oci.js';
import type { ImageSource } from './source.js';

export interface SourceOptions {
  from: string;
  ref: ImageRef;
  containerdSocket: string;
  namespace: string;
  /** Run as `docker pussh`: Docker is asked first in auto mode. */
  dockerFirst?: boolean;
  /** Docker's global options given to `docker` (plugin mode); the daemon is chosen as docker would. */
  dockerGlobals?: DockerGlobals;
  env?: NodeJS.ProcessEnv;
}

/** Splits `oci:DIR[:TAG]` / `docker-archive:FILE[:REF]` at the first colon after the transport, as skopeo does. */
function pathAndRef(value: string): { path: string; ref?: string } {
  const colon = value.indexOf(':');
  return colon < 0 ? { path: value } : { path: value.slice(0, colon), ref: value.slice(colon + 1) || undefined };
}

export async function openSource(opts: SourceOptions): Promise<ImageSource> {
  const source = await openFrom(opts);
  const { digest } = opts.ref;
  // An image pushed by digest is that manifest byte for byte: a source that rebuilds the manifest (a docker
  // save archive, the Docker daemon) or holds another image under the name cannot give it.
  if (digest && source.root.digest !== digest) {
    await source.close();
    throw new PusshError('image-not-found', `${source.description} holds ${opts.ref.repo} as ${source.root.digest}, not ${digest}; push it by tag, or from where that manifest is (containerd, an OCI layout)`);
  }
  return source;
}

async function openFrom(opts: SourceOptions): Promise<ImageSource> {
  const { from, ref } = opts;
  if (from.startsWith('oci:')) {
    const { path, ref: tag } = pathAndRef(from.slice('oci:'.length));
    if (!path) throw new PusshError('usage', '--from oci:DIR[:TAG] needs a directory');
    return openOciDir(path, { tag, ref });
  }
  if (from.startsWith('docker-archive:')) {
    const { path, ref: archiveRef } = pathAndRef(from.slice('docker-archive:'.length));
    if (!path) throw new PusshError('usage', '--from docker-archive:FILE[:REF] needs a file');
    return openDockerArchive(path, { ref: archiveRef, image: ref });
  }
  const containerd = () => openContainerd(opts.containerdSocket, opts.namespace, ref);
  const docker = () => openDockerDaemon(resolveDockerEndpoint(opts.dockerGlobals ?? { hosts: [] }, opts.env ?? process.env), ref);
  if (from === 'containerd') return containerd();
  if (from === 'docker') return docker();
  if (from !== 'auto') throw new PusshError('usage', `--from ${from}: expected auto, containerd, docker, oci:DIR[:TAG] or docker-archive:FILE[:REF]`);
  const order = opts.dockerFirst ? [docker, containerd] : [containerd, docker];
  const looked: string[] = [];
  for (const open of order) {
    try {
      return await open();
    } catch (err) {
      // Not there, or the image is not in it: look in the next one, and say where we looked.
      if (!(err instanceof PusshError) || err.kind !== 'image-not-found') throw err;
      looked.push(err.message);
    }
  }
  throw new PusshError('image-not-found', `image ${ref.given} not found locally:\n  ${looked.join('\n  ')}\n(use --from to read an OCI layout or a docker save archive)`);
}
