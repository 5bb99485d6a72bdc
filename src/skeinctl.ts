#!/usr/bin/env node
// skeinctl: the operator's command line (docs/contract.md, "The three programs"). Commands are
// a table: each names its options and its handler, so commands that talk to
// the daemon (status, peers, routes, fib, reload) slot in beside `decode`,
// which needs no daemon. Exit codes: 0 ok, 1 error (for decode: a malformed
// message), 2 usage, 3 daemon not reachable. User errors never print a stack.
import { readFileSync } from 'node:fs';
import {
  BgpError,
  DEFAULT_CONTEXT,
  IPV4_UNICAST,
  IPV6_UNICAST,
  MESSAGE_TYPE_NAMES,
  decodeMessage,
  errorToJson,
  jsonToText,
  messageToJson,
  type CodecContext,
} from '../bgp/index.js';
import { USAGE, ctlCommandOf, isCtlCommand, runCtlCommand } from './ctl/index.js';

const EXIT_OK = 0;
const EXIT_ERROR = 1;
const EXIT_USAGE = 2;

class UsageError extends Error {}

interface Parsed {
  readonly flags: ReadonlySet<string>;
  readonly values: ReadonlyMap<string, string>;
  readonly args: readonly string[];
}

interface Command {
  readonly summary: string;
  readonly usage: string;
  /** boolean options this command accepts, without the leading dashes */
  readonly flags: readonly string[];
  /** number of positional arguments: [min, max] */
  readonly args: readonly [number, number];
  run(p: Parsed, out: Output): number | Promise<number>;
}

interface Output {
  readonly json: boolean;
  readonly socket: string | undefined;
  print(text: string): void;
}

/** Options every command takes, before or after the command name. */
const GLOBAL_FLAGS = ['json', 'help'];
const GLOBAL_VALUES = ['socket'];

const COMMANDS: Readonly<Record<string, Command>> = {
  decode: {
    summary: 'decode one BGP message given in hex (no daemon needed)',
    usage: 'skeinctl decode HEX|- [--as2] [--add-path] [--json]',
    flags: ['as2', 'add-path'],
    args: [1, 1],
    run: runDecode,
  },
};

function usageText(): string {
  // One usage text for every command: the daemon commands' text already lists decode.
  return USAGE.trimEnd();
}

/** Split argv into the command, its flags, its valued options and positionals. */
export function parseArgs(argv: readonly string[]): { command: string | undefined; parsed: Parsed } {
  const flags = new Set<string>();
  const values = new Map<string, string>();
  const positional: string[] = [];
  let command: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = a.slice(2, eq < 0 ? undefined : eq);
      if (GLOBAL_VALUES.includes(name)) {
        const v = eq >= 0 ? a.slice(eq + 1) : argv[++i];
        if (v === undefined) throw new UsageError(`--${name} needs a value`);
        values.set(name, v);
      } else {
        if (eq >= 0) throw new UsageError(`--${name} takes no value`);
        flags.add(name);
      }
    } else if (a === '-h') flags.add('help');
    else if (command === undefined && a !== '-') command = a;
    else positional.push(a);
  }
  return { command, parsed: { flags, values, args: positional } };
}

async function main(argv: readonly string[]): Promise<number> {
  // Commands that talk to the daemon over its control socket (src/ctl).
  if (isCtlCommand(ctlCommandOf(argv)) || (ctlCommandOf(argv) === undefined && (argv.includes('--version') || argv.includes('-V')))) return runCtlCommand(argv);
  let command: string | undefined;
  let parsed: Parsed;
  try {
    ({ command, parsed } = parseArgs(argv));
  } catch (e) {
    if (e instanceof UsageError) return usage(e.message);
    throw e;
  }
  if (command === undefined) {
    if (parsed.flags.has('help')) {
      process.stdout.write(`${usageText()}\n`);
      return EXIT_OK;
    }
    return usage('no command given');
  }
  const cmd = COMMANDS[command];
  if (!cmd) return usage(`unknown command '${command}'`);
  if (parsed.flags.has('help')) {
    process.stdout.write(`usage: ${cmd.usage}\n`);
    return EXIT_OK;
  }
  for (const f of parsed.flags) if (!GLOBAL_FLAGS.includes(f) && !cmd.flags.includes(f)) return usage(`${command}: unknown option --${f}`);
  const [min, max] = cmd.args;
  if (parsed.args.length < min || parsed.args.length > max) return usage(`usage: ${cmd.usage}`);
  const out: Output = {
    json: parsed.flags.has('json'),
    socket: parsed.values.get('socket'),
    print: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  };
  try {
    return await cmd.run(parsed, out);
  } catch (e) {
    if (e instanceof UsageError) return usage(e.message);
    throw e;
  }
}

function usage(why: string): number {
  process.stderr.write(`skeinctl: ${why}\n${usageText()}\n`);
  return EXIT_USAGE;
}

/** Hex text to bytes: spaces, colons, newlines and a leading 0x are allowed between digits. */
export function parseHex(text: string): Buffer {
  const clean = text.trim().replace(/^0x/i, '').replace(/[\s:.-]+/g, '');
  if (clean.length === 0) throw new UsageError('no hex digits given');
  const badChar = /[^0-9a-fA-F]/.exec(clean);
  if (badChar) throw new UsageError(`not a hex digit: '${badChar[0]}'`);
  if (clean.length % 2 !== 0) throw new UsageError(`odd number of hex digits (${clean.length})`);
  return Buffer.from(clean, 'hex');
}

function runDecode(p: Parsed, out: Output): number {
  const arg = p.args[0] as string;
  let text: string;
  if (arg === '-' || p.args.length === 0) {
    try {
      text = readFileSync(0, 'utf8');
    } catch (e) {
      throw new UsageError(`cannot read standard input: ${(e as Error).message}`);
    }
  } else text = arg;
  const buf = parseHex(text);
  const ctx: CodecContext = {
    ...DEFAULT_CONTEXT,
    // RFC 6793: without the capability on both sides, AS numbers in AS_PATH/AGGREGATOR are 2 octets.
    as4: !p.flags.has('as2'),
    // A lone message has no session limit: accept up to RFC 8654's 65535 (OPEN/KEEPALIVE stay at 4096).
    extendedMessage: true,
    // RFC 7911: path identifiers on IPv4 and IPv6 unicast NLRI.
    addPathRx: p.flags.has('add-path') ? new Set([IPV4_UNICAST, IPV6_UNICAST]) : new Set<number>(),
  };
  let result: Record<string, unknown>;
  let status = EXIT_OK;
  try {
    const msg = decodeMessage(buf, ctx);
    result = messageToJson(msg, buf.length);
    if ('error' in result) status = EXIT_ERROR; // an UPDATE with RFC 7606 errors
  } catch (e) {
    if (!(e instanceof BgpError)) throw e;
    const header: { type?: string; length?: number } = {};
    if (buf.length >= 19) {
      const t = MESSAGE_TYPE_NAMES[buf[18] as number];
      if (t !== undefined) header.type = t;
      header.length = buf.readUInt16BE(16);
    }
    result = errorToJson(e, header);
    status = EXIT_ERROR;
  }
  out.print(out.json ? JSON.stringify(result, null, 2) : jsonToText(result as Parameters<typeof jsonToText>[0]));
  return status;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    // Not a user error: a bug. One line, no stack, and a non-zero status.
    process.stderr.write(`skeinctl: internal error: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = EXIT_ERROR;
  },
);
