// The admin API's disk routes, beside the registry: df, prune, and rm (this node, or every node with mesh=1).
// Writes on this listener (POST, DELETE) need the write privilege; the registry's access check sees to that.
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Router } from '../dht/router.js';
import type { DiskSummary, DiskUsage, EvictionReport } from '../api/admin-types.js';
import { digestImageName, parseImageName, repositoryKey, tagImageName } from '../oci/names.js';
import { asRegistryError, digestInvalid, RegistryError } from '../registry/errors.js';
import { isDigest } from '../oci/digest.js';
import { StoreUnavailableError } from '../store/store.js';
import { EvictionSetupError, type Evictor } from './evictor.js';
import type { TotalsCache } from './disk-totals.js';

export interface DiskApiDeps {
  evictor: Evictor;
  totals: TotalsCache;
  router: Pick<Router, 'id' | 'publish'>;
  log: Logger;
  /** rm --mesh here: a copy of the image under way on this node, or its next try, would bring it back. */
  forget(image: string): void;
}

/** The store's name for what a user typed: `app:1` → `docker.io/library/app:1`; no tag means `latest`. */
export function storeImageName(reference: string): string {
  const { repo, tag, digest } = parseImageName(reference);
  // rm --mesh publishes it, and the mesh's checks refuse a malformed digest: said here, as a 400.
  if (digest !== undefined && !isDigest(digest)) throw digestInvalid('invalid digest', { digest });
  const key = repositoryKey(repo);
  return digest ? digestImageName(key, digest) : tagImageName(key, tag ?? 'latest');
}

export function registerDiskApi(app: FastifyInstance, { evictor, totals, router, log, forget }: DiskApiDeps): void {
  app.get('/_mesh/v1/df', async (req, reply): Promise<DiskUsage | DiskSummary> => {
    if ((req.query as { totals?: string }).totals === undefined) return evictor.usage();
    const summary = await totals.summary();
    if (summary) return summary;
    // The survey logged why; a page polling this every second must not add a line each time.
    const unavailable = asRegistryError(new StoreUnavailableError('surveying it for its disk totals'))!;
    return reply.code(unavailable.status).headers(unavailable.headers).send(unavailable.body());
  });

  app.post('/_mesh/v1/prune', async (): Promise<EvictionReport> => {
    try {
      return await evictor.prune();
    } catch (err) {
      // Anything else (the store failing) is the server's: a 5xx whose details go to the log only.
      if (err instanceof EvictionSetupError) throw new RegistryError(400, 'UNSUPPORTED', err.message);
      throw err;
    }
  });

  app.delete('/_mesh/v1/images', async (req): Promise<EvictionReport> => {
    const query = req.query as { name?: string; mesh?: string };
    if (!query.name) throw new RegistryError(400, 'NAME_INVALID', 'rm needs ?name=IMAGE');
    const name = storeImageName(query.name); // a NameInvalidError is answered 400 by the registry's error handler
    if (query.mesh !== undefined) forget(name);
    const report = await evictor.remove(name, query.mesh === undefined ? 'rm' : 'rm --mesh');
    // Not yet here (a copy under way shares its blobs): nothing is asked of the others either, rm --mesh is run again.
    if (query.mesh === undefined || report.untilCopied) return report;
    await router.publish({ type: 'image-removed', image: name, node: router.id });
    log.info({ image: name }, 'asked every node to remove the image');
    return { ...report, published: true };
  });
}
