// The C allocator's free memory back to the kernel (bgp/native/skein_native.c MallocTrim), and V8's incremental
// marking started on request (StartIncrementalGc).
import { getHeapStatistics } from 'node:v8';
import { native } from './native.js';

/** glibc's malloc_trim(0); false when nothing was released, there is no glibc, or the addon is not built. */
export function mallocTrim(): boolean {
  try {
    return native().mallocTrim();
  } catch {
    return false;
  }
}

/**
 * Start an incremental full collection of V8's heap (never an atomic one; src/control/idle-gc.ts says why). What is
 * reported for a moment must pass V8's external-memory soft limit, 64 MiB above the external memory counted at the
 * last mark-compact (V8's kExternalAllocationSoftLimit): that count is not known here, but the external memory
 * counted now plus 65 MiB is past it unless some of it went since (Buffers dying in scavenges), so the report takes
 * the count to twice what it is now plus 65 MiB (past the limit unless more than half went). False when it cannot be done: the addon is not built, or the report would
 * come near V8's hard limit (half the old generation's maximum above that baseline), where V8 collects atomically
 * instead.
 */
export function startIncrementalGc(): boolean {
  const h = getHeapStatistics();
  const bytes = h.external_memory + 65 * 2 ** 20;
  if (2 * bytes > h.heap_size_limit / 4) return false;
  try {
    native().startIncrementalGc(bytes);
    return true;
  } catch {
    return false;
  }
}
