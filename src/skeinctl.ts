#!/usr/bin/env node
// skeinctl: the operator's command line (docs/contract.md, "The three programs"). src/ctl parses every command line
// (src/ctl/args.ts, the one parser) and runs the commands that talk to the daemon; `decode`, which needs no
// daemon but needs bgp/ (which src/ctl does not import), runs here. Exit codes: 0 ok, 1 error (for decode: a
// malformed message), 2 usage, 3 daemon not reachable. User errors never print a stack.
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
import { UsageError, processIo, runCtlCommand, type CtlIo, type ParsedCtlArgs } from './ctl/index.js';

const EXIT_OK = 0;
const EXIT_ERROR = 1;

/** Hex text to bytes: spaces, colons, newlines and a leading 0x are allowed between digits. */
export function parseHex(text: string): Buffer {
  const clean = text.trim().replace(/^0x/i, '').replace(/[\s:.-]+/g, '');
  if (clean.length === 0) throw new UsageError('no hex digits given');
  const badChar = /[^0-9a-fA-F]/.exec(clean);
  if (badChar) throw new UsageError(`not a hex digit: '${badChar[0]}'`);
  if (clean.length % 2 !== 0) throw new UsageError(`odd number of hex digits (${clean.length})`);
  return Buffer.from(clean, 'hex');
}

export function runDecode(p: ParsedCtlArgs, io: CtlIo): number {
  const arg = p.args[0] as string;
  let text: string;
  if (arg === '-') {
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
    as4: p.decode.as2 !== true,
    // A lone message has no session limit: accept up to RFC 8654's 65535 (OPEN/KEEPALIVE stay at 4096).
    extendedMessage: true,
    // RFC 7911: path identifiers on IPv4 and IPv6 unicast NLRI.
    addPathRx: p.decode.addPath === true ? new Set([IPV4_UNICAST, IPV6_UNICAST]) : new Set<number>(),
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
  const shown = p.json ? JSON.stringify(result, null, 2) : jsonToText(result as Parameters<typeof jsonToText>[0]);
  io.stdout(shown.endsWith('\n') ? shown : `${shown}\n`);
  return status;
}

runCtlCommand(process.argv.slice(2), processIo(), runDecode).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    // Not a user error: a bug. One line, no stack, and a non-zero status.
    process.stderr.write(`skeinctl: internal error: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = EXIT_ERROR;
  },
);
