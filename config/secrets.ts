// BGP passwords. Calico points at a Kubernetes Secret ({secretKeyRef: {name,
// key}}); without Kubernetes (etcd / OpenStack, or the file datastore) skein
// reads the same reference from a file: <secretsDir>/<name>/<key> — the layout
// a Kubernetes secret volume mount has, so a mounted Secret works unchanged.
// The value is wrapped so that logging, JSON or util.inspect never shows it.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inspect } from 'node:util';

const REDACTED = '[redacted]';

/** A secret string that does not print itself. Use reveal() where the bytes are needed (TCP-MD5 key). */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  /** equal content, without exposing it */
  equals(other: Secret | undefined): boolean {
    return other !== undefined && other.#value === this.#value;
  }
  toJSON(): string {
    return REDACTED;
  }
  toString(): string {
    return REDACTED;
  }
  [inspect.custom](): string {
    return `Secret(${REDACTED})`;
  }
}

/** Calico's BGPPassword: a reference to a secret, never the secret itself. */
export interface SecretKeyRef {
  name: string;
  key: string;
}

export interface BGPPassword {
  secretKeyRef: SecretKeyRef;
}

// A name or key must be one path component: no "..", no "/" (keeps reads inside secretsDir).
const COMPONENT = /^[A-Za-z0-9]([-._A-Za-z0-9]*[A-Za-z0-9])?$/;

export function isSafeSecretComponent(s: string): boolean {
  return COMPONENT.test(s) && !s.includes('..') && s.length <= 253;
}

export class SecretError extends Error {
  override name = 'SecretError';
  readonly code = 'SECRET_UNAVAILABLE';
}

/** The file a secretKeyRef resolves to. */
export function secretPath(secretsDir: string, ref: SecretKeyRef): string {
  if (!isSafeSecretComponent(ref.name) || !isSafeSecretComponent(ref.key)) {
    throw new SecretError(`secretKeyRef ${JSON.stringify(ref)}: name and key must be plain names (letters, digits, "-", "_", ".")`);
  }
  return join(secretsDir, ref.name, ref.key);
}

/**
 * Read the password a BGPPassword refers to. One trailing newline is dropped
 * (files written with echo have it; mounted Kubernetes secrets do not).
 */
export async function resolvePassword(password: BGPPassword, secretsDir: string): Promise<Secret> {
  const file = secretPath(secretsDir, password.secretKeyRef);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new SecretError(`cannot read BGP password ${password.secretKeyRef.name}/${password.secretKeyRef.key} from ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
  const value = text.endsWith('\r\n') ? text.slice(0, -2) : text.endsWith('\n') ? text.slice(0, -1) : text;
  // RFC 2385 keys are at most 80 bytes (TCP_MD5SIG_MAXKEYLEN in Linux).
  if (Buffer.byteLength(value) === 0 || Buffer.byteLength(value) > 80) {
    throw new SecretError(`BGP password in ${file} must be 1-80 bytes (TCP-MD5, RFC 2385), it has ${Buffer.byteLength(value)}`);
  }
  return new Secret(value);
}
