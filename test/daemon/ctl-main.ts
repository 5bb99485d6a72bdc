// A skeinctl entry point for the daemon tests (src/skeinctl.ts belongs to another part of the tree): runs one
// command line against the socket in --socket / SKEIN_SOCKET and exits with its status.
import { runCtlCommand } from '../../src/ctl/index.js';

process.exitCode = await runCtlCommand(process.argv.slice(2));
