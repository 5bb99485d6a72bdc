// Resolves the group that may use the control socket. `getent group` asks NSS (so LDAP/sssd groups work);
// where getent is missing, /etc/group is read directly. A number is taken as a gid as is.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';

/** The gid of `group` (a name or a numeric gid). Throws an Error naming the group when it does not exist. */
export async function resolveGroup(group: string | number, groupFile = '/etc/group'): Promise<number> {
  if (typeof group === 'number') return checkGid(group, String(group));
  if (/^\d+$/.test(group)) return checkGid(Number(group), group);
  const fromNss = await getent(group);
  if (fromNss !== undefined) return fromNss;
  let text: string;
  try {
    text = await readFile(groupFile, 'utf8');
  } catch (e) {
    throw new Error(`cannot resolve group "${group}": getent is unavailable and ${groupFile} is unreadable (${(e as Error).message})`, { cause: e });
  }
  const gid = parseGroupFile(text, group);
  if (gid === undefined) throw new Error(`no group named "${group}" (looked in NSS and ${groupFile})`);
  return gid;
}

/** The gid of `name` in /etc/group-formatted text ("name:password:gid:members" per line). */
export function parseGroupFile(text: string, name: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const f = line.split(':');
    if (f.length >= 3 && f[0] === name && /^\d+$/.test(f[2] ?? '')) return Number(f[2]);
  }
  return undefined;
}

function checkGid(gid: number, spelled: string): number {
  if (!Number.isSafeInteger(gid) || gid < 0 || gid > 0xfffffffe) throw new Error(`"${spelled}" is not a valid gid`);
  return gid;
}

// undefined when getent is missing or does not know the group (exit 2): the caller falls back to the file.
function getent(name: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    execFile('getent', ['group', name], { timeout: 5000 }, (err, stdout) => {
      if (err) return resolve(undefined);
      resolve(parseGroupFile(stdout, name));
    });
  });
}
