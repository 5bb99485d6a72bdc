// Structured logging: one JSON object per line on stdout, which journald (or any collector) stores as is.
// Every line has `ts`, `level` and `msg`, then the fields bound to the logger (peer, prefix, component) and the
// fields of the call. Secrets never reach the output: fields whose name says "password", "secret", "token" or
// "key" are replaced, at any depth, and so is any value wrapped in `Secret`. A disabled level costs one compare.
import { inspect } from 'node:util';

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFields = Readonly<Record<string, unknown>>;

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const REDACTED = '[redacted]';

/**
 * A string or bytes that must never be logged or printed: a BGP MD5 password, an etcd TLS key. JSON
 * serialisation, `String()` and `util.inspect` all give "[redacted]"; `reveal()` returns the value to the one
 * place that needs it (the setsockopt, the TLS context).
 */
export class Secret {
  readonly #value: string | Buffer;
  constructor(value: string | Buffer) {
    this.#value = value;
  }
  reveal(): string | Buffer {
    return this.#value;
  }
  toJSON(): string {
    return REDACTED;
  }
  toString(): string {
    return REDACTED;
  }
  [inspect.custom](): string {
    return REDACTED;
  }
}

/**
 * Whether a field of this name holds a secret. The exact names, case-insensitive, and names ending in them in
 * camelCase or snake_case (`nodeMeshPassword`, `tls_key`, `privateKey`, `authToken`), so that a new credential
 * field is hidden by default. A field that merely contains the word elsewhere (`keepalive`, `keyCount`) is kept.
 */
export function isSecretFieldName(name: string): boolean {
  return secretName(name);
}
// camelCase: the capitalised word at the end ("nodeMeshPassword", "privateKey", "APIKEY").
const SECRET_CAMEL = /(?:Password|Passwd|Secret|Token|Key|PASSWORD|SECRET|TOKEN|KEY)$/;
// snake/kebab/dotted: the word after a separator ("tls_key", "etcd-token", "auth.secret").
const SECRET_SNAKE = /(?:^|[_.-])(?:password|passwd|secret|token|key|authorization)$/i;

// Field names repeat endlessly (peer, prefix, nextHop): remember each verdict. Bounded against a caller that
// logs objects with unbounded key sets.
const nameVerdicts = new Map<string, boolean>();

function secretName(name: string): boolean {
  let v = nameVerdicts.get(name);
  if (v === undefined) {
    const lower = name.toLowerCase();
    v = lower === 'password' || lower === 'passwd' || lower === 'secret' || lower === 'token' || lower === 'key' ||
      lower === 'authorization' || SECRET_CAMEL.test(name) || SECRET_SNAKE.test(name);
    if (nameVerdicts.size >= 10_000) nameVerdicts.clear();
    nameVerdicts.set(name, v);
  }
  return v;
}

/** Where lines go: stdout by default; tests pass a collector. */
export type LogSink = (line: string) => void;

/**
 * Maps a log level name to ours: our own names, and Calico's `logSeverityScreen` values (Trace, Debug, Info,
 * Warning, Error, Fatal, Panic; any case). Returns undefined for anything else, so the caller can say so.
 * Trace is debug (we have nothing finer); Fatal and Panic are error (we have nothing coarser).
 */
export function parseLogLevel(name: string): LogLevel | undefined {
  switch (name.trim().toLowerCase()) {
    case 'trace':
    case 'debug':
      return 'debug';
    case 'info':
      return 'info';
    case 'warn':
    case 'warning':
      return 'warn';
    case 'error':
    case 'fatal':
    case 'panic':
      return 'error';
    default:
      return undefined;
  }
}

interface Shared {
  rank: number;
  sink: LogSink;
  now: () => Date;
}

export interface LoggerOptions {
  level?: LogLevel;
  sink?: LogSink;
  /** the clock for `ts`; tests inject one */
  now?: () => Date;
  /** fields on every line of this logger and its children */
  fields?: LogFields;
}

/**
 * A logger. Children share the parent's level and sink (so `setLevel` on any of them changes all), and add their
 * bound fields. Field order on a line: ts, level, msg, bound fields, call fields; a call field with a reserved
 * name (ts, level, msg) is written as `_ts`, `_level`, `_msg` so it cannot forge a line's level or time.
 */
export class Logger {
  readonly #shared: Shared;
  // The bound fields, serialised once (already redacted) as `,"k":v,...` to splice into each line.
  readonly #bound: string;

  constructor(options: LoggerOptions = {}, shared?: Shared, bound = '') {
    this.#shared = shared ?? {
      rank: RANK[options.level ?? 'info'],
      sink: options.sink ?? stdoutSink(),
      now: options.now ?? (() => new Date()),
    };
    this.#bound = bound + (options.fields ? serialiseFields(options.fields, this.#shared.rank) : '');
  }

  /** A logger whose lines all carry `fields` in addition to this one's. */
  child(fields: LogFields): Logger {
    return new Logger({ fields }, this.#shared, this.#bound);
  }

  get level(): LogLevel {
    return LOG_LEVELS.find((l) => RANK[l] === this.#shared.rank) ?? 'info';
  }

  /** Changes the level of this logger, its parent and every child (they share it). */
  setLevel(level: LogLevel): void {
    this.#shared.rank = RANK[level];
  }

  isEnabled(level: LogLevel): boolean {
    return RANK[level] >= this.#shared.rank;
  }

  debug(msg: string, fields?: LogFields): void {
    if (RANK.debug >= this.#shared.rank) this.#write('debug', msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    if (RANK.info >= this.#shared.rank) this.#write('info', msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    if (RANK.warn >= this.#shared.rank) this.#write('warn', msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    if (RANK.error >= this.#shared.rank) this.#write('error', msg, fields);
  }

  #write(level: LogLevel, msg: string, fields: LogFields | undefined): void {
    const head = `{"ts":${JSON.stringify(this.#shared.now().toISOString())},"level":"${level}","msg":${JSON.stringify(String(msg))}`;
    const rest = fields ? serialiseFields(fields, this.#shared.rank) : '';
    this.#shared.sink(`${head}${this.#bound}${rest}}\n`);
  }
}

let stdoutGuarded = false;
/**
 * Writes to stdout. A write error there (EPIPE when the reader went away) would otherwise be an uncaught
 * 'error' event and kill the daemon over a log line: it is swallowed instead — the routes matter more.
 */
function stdoutSink(): LogSink {
  if (!stdoutGuarded) {
    stdoutGuarded = true;
    process.stdout.on('error', () => undefined);
  }
  return (line) => {
    process.stdout.write(line);
  };
}

export function createLogger(options: LoggerOptions = {}): Logger {
  return new Logger(options);
}

const RESERVED = new Set(['ts', 'level', 'msg']);

/** `,"k":v` for each field, redacted; never throws (an unserialisable value is described instead). */
function serialiseFields(fields: LogFields, rank: number): string {
  const replacer = rank <= RANK.debug ? REPLACE_DEBUG : REPLACE;
  let obj: object = fields;
  if ('ts' in fields || 'level' in fields || 'msg' in fields) {
    const renamed: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(fields)) renamed[RESERVED.has(k) ? `_${k}` : k] = v;
    obj = renamed;
  }
  let json: string;
  try {
    json = JSON.stringify(obj, replacer);
  } catch {
    // A cycle or a throwing getter somewhere: serialise field by field so only the bad one is lost.
    json = '{' + Object.entries(obj).filter(([, v]) => v !== undefined).map(([k, v]) => `${JSON.stringify(k)}:${serialiseValue(k, v, replacer)}`).join(',') + '}';
  }
  return json.length <= 2 ? '' : `,${json.slice(1, -1)}`;
}

function serialiseValue(name: string, value: unknown, replacer: Replacer): string {
  if (secretName(name)) return `"${REDACTED}"`;
  try {
    // undefined for undefined, a function or a symbol, though typed string
    const json = JSON.stringify(value, replacer) as string | undefined;
    return json === undefined ? 'null' : json;
  } catch (e) {
    return JSON.stringify(`[unserialisable: ${(e as Error).message}]`);
  }
}

type Replacer = (this: unknown, key: string, value: unknown) => unknown;

/**
 * The JSON replacer doing the redaction at every depth. It reads the raw value from the holder (`this[key]`),
 * because JSON.stringify has already applied `toJSON` (a Buffer would arrive as `{type, data}`).
 */
function makeReplacer(rank: number): Replacer {
  return function (this: unknown, key: string, value: unknown): unknown {
    if (key !== '' && secretName(key)) return REDACTED;
    if (typeof value !== 'object' && typeof value !== 'bigint') return value;
    const raw = (this as Record<string, unknown>)[key];
    if (raw instanceof Secret) return REDACTED;
    if (typeof raw === 'bigint') return raw.toString();
    if (raw instanceof Uint8Array) return bytesToHex(raw);
    if (raw instanceof Error) return errorFields(raw, rank);
    if (raw instanceof Map) return Object.fromEntries(raw);
    if (raw instanceof Set) return [...raw];
    return value;
  };
}
const REPLACE = makeReplacer(RANK.info);
const REPLACE_DEBUG = makeReplacer(RANK.debug);

function bytesToHex(b: Uint8Array): string {
  const max = 256;
  const hex = Buffer.from(b.buffer, b.byteOffset, Math.min(b.length, max)).toString('hex');
  return b.length > max ? `${hex}…(${b.length} bytes)` : hex;
}

/** An Error as fields: name, message, code, cause; the stack only when debug logging is on. */
function errorFields(e: Error, rank: number): Record<string, unknown> {
  const out: Record<string, unknown> = { name: e.name, message: e.message };
  const code = (e as { code?: unknown }).code;
  if (code !== undefined) out.code = code;
  for (const [k, v] of Object.entries(e)) if (!(k in out) && k !== 'stack') out[k] = v;
  if (e.cause !== undefined) out.cause = e.cause;
  if (rank <= RANK.debug && e.stack) out.stack = e.stack;
  return out;
}
