// The netlink package's binding aborts the whole process when a netlink socket
// overruns (ENOBUFS): libuv reports the socket error as UV_EBADF, the binding
// builds an exception from a NULL syscall name, and the C++ exception escapes.
// This patch turns that case into an 'error' event on the socket (the FIB layer
// answers it with a resync dump) and rebuilds the binding from source.
// fib/README.md explains the overrun handling on the FIB side. Idempotent.
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
let dir;
try {
  dir = dirname(require.resolve('netlink/package.json'));
} catch {
  process.exit(0); // netlink not installed (e.g. --omit), nothing to patch
}
const file = join(dir, 'src', 'binding.cc');
const src = readFileSync(file, 'utf8');
const MARK = '/* skein-enobufs-patch */';
if (!src.includes(MARK)) {
  const old = 'auto error = ErrnoException(obj->Env(), -status, NULL, "error when polling socket");';
  if (!src.includes(old)) throw new Error('netlink binding.cc changed; review scripts/patch-netlink.mjs');
  writeFileSync(file, src.replace(old, `${MARK}
            int soerr = 0; socklen_t soerrlen = sizeof(soerr);
            if (status == UV_EBADF && obj->open &&
                getsockopt(obj->fd, SOL_SOCKET, SO_ERROR, &soerr, &soerrlen) == 0 && soerr != 0) {
                obj->watcher->start(obj->Env(), obj->write_queue.empty() ? UV_READABLE : (UV_READABLE | UV_WRITABLE), PollHandler);
                auto sockerr = ErrnoException(obj->Env(), soerr, "recvmsg", "Error when receiving Netlink message");
                obj->error_callback.MakeCallback(obj->Value(), { sockerr.Value() }, *obj->async_res);
                return;
            }
            auto error = ErrnoException(obj->Env(), -status, "uv_poll", "error when polling socket");`));
}
if (!existsSync(join(dir, 'build', 'Release')) || !src.includes(MARK)) {
  // node-gyp-build prefers build/Release over the bundled prebuilds, so the patched build wins.
  execFileSync('npm', ['rebuild', 'netlink', '--build-from-source'], {
    stdio: 'inherit',
    cwd: process.env.INIT_CWD ?? process.cwd(),
  });
}
