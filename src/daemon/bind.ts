// Binding a listening socket, with the config field it comes from. A socket that cannot be bound (a port in use,
// a privileged port without the capability, an address not on this host, a control socket directory missing) is a
// configuration problem the operator fixes in skein.yaml or the datastore: skeind exits 2 naming the field, as for
// any other bad setting (docs/contract.md, "The three programs"), instead of 1 with a message that names none.

const BIND_ERRORS = new Set(['EADDRINUSE', 'EACCES', 'EADDRNOTAVAIL', 'EPERM', 'ENOENT', 'ENOTDIR', 'EEXIST', 'EINVAL']);

export class BindError extends Error {
  constructor(readonly field: string, readonly address: string, readonly code: string, options?: ErrorOptions) {
    super(`${field}: cannot listen on ${address}: ${code}${code === 'EADDRINUSE' ? ' (in use by another process)' : code === 'EACCES' ? ' (needs root or CAP_NET_BIND_SERVICE)' : ''}`, options);
    this.name = 'BindError';
  }
}

/** Run a listen; a bind failure becomes a BindError naming `field`. */
export async function bindAs<T>(field: string, address: string, listen: () => Promise<T>): Promise<T> {
  try {
    return await listen();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== undefined && BIND_ERRORS.has(code)) throw new BindError(field, address, code, { cause: e });
    throw e;
  }
}
