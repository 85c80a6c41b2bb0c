/** How long a dropped object may stay in use (a request that took it just before). */
const REPORT_AFTER_MS = 1000;
/**
 * What is reported at most: well over V8's 64 MiB soft limit on memory outside its heap, which
 * starts its incremental marking, and well under the hard one (half the old generation's
 * limit), which would stop the thread for a full collection.
 */
const MAX_REPORT_BYTES = 128 * 1024 * 1024;

/**
 * Tells V8 that `bytes` of shared or WebAssembly memory are no longer used, so that it collects
 * them soon. V8 starts a collection when memory outside its heap grows, but counts neither kind
 * (they may be another thread's too): a replaced version's item vectors, hundreds of MiB, came
 * back only with a full collection started for another reason, and a replica's memory grew by a
 * version at each swap. An unshared buffer of the size (at most MAX_REPORT_BYTES), allocated and
 * let go, is counted: its pages are never touched, so it costs no memory, and V8 starts the
 * incremental marking that collects it and the dropped memory together.
 */
export function reportDroppedMemory(bytes: number): void {
  if (!(bytes > 0)) return;
  const timer = setTimeout(() => {
    try {
      new ArrayBuffer(Math.min(bytes, MAX_REPORT_BYTES));
    } catch {
      // No address space for it: the memory comes back with the next full collection instead.
    }
  }, REPORT_AFTER_MS);
  timer.unref();
}
