// The C allocator's free memory back to the kernel (bgp/native/skein_native.c MallocTrim).
import { native } from './native.js';

/** glibc's malloc_trim(0); false when nothing was released, there is no glibc, or the addon is not built. */
export function mallocTrim(): boolean {
  try {
    return native().mallocTrim();
  } catch {
    return false;
  }
}
