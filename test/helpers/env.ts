// What a test needs from the machine, and what happens when it is missing:
// outside CI the test is skipped with the reason printed; with CI set, a
// missing prerequisite is a failure, so a broken install step never hides
// behind a green run of skipped tests.
import { execFileSync } from 'node:child_process';

export interface Needs {
  /** runs as root (network namespaces, netlink writes, port 179) */
  root?: boolean;
  /** programs that must be on PATH, e.g. ['bird', 'birdc'] */
  commands?: readonly string[];
}

/** The first unmet need, or undefined when everything is there. */
export function missing(needs: Needs): string | undefined {
  if (needs.root && process.getuid?.() !== 0) return 'needs root (network namespaces)';
  for (const cmd of needs.commands ?? []) {
    if (!onPath(cmd)) return `needs '${cmd}' on PATH (see .ci/run for the Debian package)`;
  }
  return undefined;
}

export function onPath(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v "$1"`, 'sh', cmd], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export const inCI = (): boolean => !!process.env.CI && process.env.CI !== 'false' && process.env.CI !== '0';

/** Minimal shape of a tap Test for the gate, so helpers don't depend on tap's types. */
interface Gate {
  // tap's skip/fail/comment are overloaded; accept any callable of that name.
  skip: (...args: never[]) => unknown;
  fail: (...args: never[]) => unknown;
  comment: (...args: never[]) => unknown;
}

/**
 * Returns true when the test may run. Otherwise it records a skip (a failure
 * in CI) with the reason and returns false; the caller returns early:
 *   if (!requires(t, { root: true, commands: ['bird'] })) return;
 */
export function requires(t: Gate, needs: Needs): boolean {
  const why = missing(needs);
  if (why === undefined) return true;
  const gate = t as unknown as { skip(m: string): void; fail(m: string): void; comment(m: string): void };
  if (inCI()) gate.fail(`CI is set but this test ${why}`);
  else {
    gate.comment(`skipping: ${why}`);
    gate.skip(why);
  }
  return false;
}
