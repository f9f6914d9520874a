// vitest globalSetup: one private containerd for the whole run. Tests isolate through their own
// containerd namespace and read the socket with inject('containerdSocket').
import type {} from 'vitest';
import type { TestProject } from 'vitest/node';
import { ensurePackages } from './helpers/apt.js';
import { startContainerd } from './helpers/containerd.js';
import { removeLeftoverRuns } from './fleet/cleanup.js';

declare module 'vitest' {
  export interface ProvidedContext {
    containerdSocket: string;
    /** containerd's root dir (content lives in <root>/io.containerd.content.v1.content). */
    containerdRoot: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  await ensurePackages({ containerd: 'containerd', ctr: 'containerd', skopeo: 'skopeo', runc: 'runc' });
  const containerd = await startContainerd();
  project.provide('containerdSocket', containerd.socket);
  project.provide('containerdRoot', containerd.root);
  return async () => {
    // A fleet whose test file timed out while it came up goes on coming up in the background (a hook that times
    // out is not stopped): once the workers are gone, whatever fleet they left is removed.
    try {
      const removed = await removeLeftoverRuns();
      if (removed.length) console.error(`removed fleets left running by test files: ${removed.join(', ')}`);
    } finally {
      await containerd.stop();
    }
  };
}
