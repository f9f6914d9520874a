// How long a step that failed for a passing reason (containerd not answering, a busy member) waits before
// each of its next tries: a failed copy, catch-up or rm --mesh. Their gossip does not come again.
export const RETRY_AFTER_MS = [30_000, 120_000, 600_000];
