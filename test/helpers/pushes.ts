// A push to this node in unit tests, as the registry's push listener makes it known once its record is stored.
import type { KnownPush, NewestPushes } from '../../src/node/newest-pushes.js';

export function localPush(pushes: NewestPushes, name: string, digest: string): KnownPush {
  const push = pushes.next(name, digest);
  pushes.observe(name, push);
  return push;
}
