// `skeinctl routes` on the daemon's side: parses the request's filters and answers with a stream of rows in the
// contract's route shape (docs/contract.md, "The `--json` shapes"), made a slice at a time (src/control/stream.ts)
// from a sorted walk of the Loc-RIB (./prefix-walk.ts).
//
// Params (all optional): prefix (an address or a prefix: its longest match in the Loc-RIB, unless `longer`),
// longer (with prefix: every route inside it), within (a prefix: every route inside it), family ("ipv4" | "ipv6"),
// peer (an address: routes with a path from it; with view "received" or "advertised": its Adj-RIB-In or -Out),
// view ("loc" default | "received" | "advertised" | "refused": the routes its import rules refused, kept up to
// bgp.keepRefused per peer; "received" lists them too, marked accepted false with the refusing rule), community ("A:B" or "A:B:C": a path carries it),
// count (no rows, only the number in the end line), limit and after (paging, in walk order).
import {
  communityText, ORIGIN_NAMES, parseIpv4, parseIpv6, PATH_EPOCH_MS, pathJson as speakerPathJson, prefix4, prefix4ToString,
  prefix6FromBytes, reasonText, unusableWhy, type Path, type PathJson as SpeakerPathJson, type Reason, type RibCore,
} from '../../bgp/index.js';
import { ControlError } from '../control/protocol.js';
import { ControlStream, scheduler as sharedScheduler, type TurnScheduler } from '../control/stream.js';
import type { PathJson, RouteJson } from '../control/types.js';
import { PrefixWalk, SharedRuns, pagedRows, type KeyRange, type Page, type PrefixKey } from './prefix-walk.js';

export type RouteView = 'loc' | 'received' | 'advertised' | 'refused';

export interface RouteQuery {
  /** longest-match lookup of this address or prefix (when `within` is not set from it) */
  lookup?: { key: KeyRange; text: string };
  within?: KeyRange;
  family?: 4 | 6;
  peer?: string;
  view: RouteView;
  community?: { std: number } | { large: string };
  count: boolean;
  limit?: number;
  after?: PrefixKey;
}

/** What the query reads: the speaker's RIB, and the daemon's answer to "is this route in the kernel". */
export interface RouteSource {
  rib: RibCore;
  /** by the RIB's key, not text: asked per row of a million-row dump (src/daemon/routes.ts RouteTable.installed) */
  installed(k: PrefixKey): boolean;
  /** the RIB's id of a configured peer (Adj-RIB-Out view); undefined when not configured */
  peerId?(address: string): number | undefined;
  /** the Adj-RIB-Out prefixes of a peer, for the advertised view */
  advertisedPrefixes?(id: number): Iterator<PrefixKey>;
  /** `routes PREFIX`: which routing-policy rule let the prefix in from, or out to, each peer (src/daemon/policy.ts) */
  policyTrace?(prefix: string): unknown;
}

/** A control request's parameters are wrong: the error names the field (the fib view shares these checks). */
export const bad = (m: string): ControlError => new ControlError(m, 'bad-request');

/** An address or prefix as a KeyRange (an address is a host prefix); throws a bad-request ControlError. */
export function parseRange(text: string, what: string): { range: KeyRange; key: PrefixKey; hadLength: boolean } {
  const t = text.trim();
  const slash = t.indexOf('/');
  const addr = slash < 0 ? t : t.slice(0, slash);
  const v6 = addr.includes(':');
  const max = v6 ? 128 : 32;
  let len = max;
  if (slash >= 0) {
    const l = t.slice(slash + 1);
    if (!/^\d{1,3}$/.test(l) || Number(l) > max) throw bad(`${what}: bad prefix length in "${text}" (0..${max})`);
    len = Number(l);
  }
  try {
    if (!v6) {
      const a = parseIpv4(addr) >>> 0;
      const key = prefix4(a, len);
      return { range: { family: 4, addr4: Math.floor(key / 64), addr6: new Uint8Array(16), len }, key, hadLength: slash >= 0 };
    }
    const b = parseIpv6(addr);
    const key = prefix6FromBytes(b, len); // clears the host bits of b
    return { range: { family: 6, addr4: 0, addr6: b, len }, key, hadLength: slash >= 0 };
  } catch {
    throw bad(`${what}: "${text}" is not an IP address or prefix`);
  }
}

/** An optional non-empty string parameter. */
export function str(p: Record<string, unknown>, name: string): string | undefined {
  const v = p[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v === '') throw bad(`"${name}" must be a non-empty string`);
  return v;
}

/** Checks and normalises a routes request. Throws a bad-request ControlError naming the field. */
export function parseRouteQuery(p: Record<string, unknown>): RouteQuery {
  const q: RouteQuery = { view: 'loc', count: p.count === true };
  const prefix = str(p, 'prefix');
  const within = str(p, 'within');
  if (p.longer === true) {
    if (prefix === undefined) throw bad('"longer" needs a "prefix"');
    if (within !== undefined) throw bad('give "longer" with a prefix, or "within", not both');
    q.within = parseRange(prefix, 'prefix').range;
  } else if (prefix !== undefined) {
    q.lookup = { key: parseRange(prefix, 'prefix').range, text: prefix };
  }
  if (within !== undefined) q.within = parseRange(within, 'within').range;
  const family = str(p, 'family');
  if (family !== undefined) {
    if (family !== 'ipv4' && family !== 'ipv6') throw bad('"family" must be "ipv4" or "ipv6"');
    q.family = family === 'ipv4' ? 4 : 6;
  }
  const peer = str(p, 'peer');
  if (peer !== undefined) {
    const r = parseRange(peer, 'peer');
    if (r.hadLength) throw bad(`peer: "${peer}" is a prefix, not an address`);
    // the speaker's spelling of addresses: dotted quad, canonical IPv6
    q.peer = r.range.family === 4 ? prefix4ToString(r.key as number).replace(/\/32$/, '') : (r.key as string).replace(/\/128$/, '');
  }
  const view = str(p, 'view');
  if (view !== undefined) {
    if (view !== 'loc' && view !== 'received' && view !== 'advertised' && view !== 'refused') throw bad('"view" must be "loc", "received", "advertised" or "refused"');
    if (view !== 'loc' && q.peer === undefined) throw bad(`the ${view} view needs a "peer"`);
    q.view = view;
  }
  const community = str(p, 'community');
  if (community !== undefined) {
    const parts = community.split(':');
    const nums = parts.map(Number);
    const ok = parts.every((x) => /^\d{1,10}$/.test(x));
    if (ok && parts.length === 2 && nums[0]! <= 0xffff && nums[1]! <= 0xffff) q.community = { std: nums[0]! * 65536 + nums[1]! };
    else if (ok && parts.length === 3 && nums.every((n) => n <= 0xffffffff)) q.community = { large: nums.join(':') };
    else throw bad(`community: "${community}" is neither A:B (RFC 1997) nor A:B:C (RFC 8092)`);
  }
  parsePaging(p, q);
  return q;
}

/** limit and after (paging in walk order), the same for every streamed view; set on q when given. */
export function parsePaging(p: Record<string, unknown>, q: { limit?: number; after?: PrefixKey }): void {
  if (p.limit !== undefined) {
    if (typeof p.limit !== 'number' || !Number.isSafeInteger(p.limit) || p.limit < 1) throw bad('"limit" must be a positive integer');
    q.limit = p.limit;
  }
  const after = str(p, 'after');
  if (after !== undefined) {
    const r = parseRange(after, 'after');
    if (!r.hadLength) throw bad(`after: "${after}" must be a prefix (the "next" of the previous page)`);
    q.after = r.key;
  }
}

/** The contract's PATH (docs/contract.md, "The `--json` shapes"): numbers for LOCAL_PREF and MED (an absent attribute shows its RFC 4271 §9.1.2.2 default). */
export function contractPath(p: SpeakerPathJson): PathJson {
  return {
    from: p.from,
    nextHops: p.nextHops,
    asPath: p.asPath.flat(),
    origin: p.origin === 'IGP' || p.origin === 'EGP' ? p.origin : 'INCOMPLETE',
    localPref: p.localPref ?? 100,
    med: p.med ?? 0,
    communities: p.communities,
    largeCommunities: p.largeCommunities,
    reason: p.reason,
    usable: p.usable,
    unusableReason: p.unusableReason,
    unusableCode: p.unusableCode,
  };
}

/** When a path was last announced (ISO 8601, to the second): `skeinctl routes` shows its age. */
function sinceOf(p: Path): string {
  return new Date(PATH_EPOCH_MS + p.born * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export const keyText = (k: PrefixKey): string => (typeof k === 'number' ? prefix4ToString(k) : k);

/** Makes the row of one prefix for a query, or null when it has none (gone, or filtered out). */
export class RowMaker {
  readonly #q: RouteQuery;
  readonly #src: RouteSource;
  readonly #peerId: number | undefined;

  constructor(q: RouteQuery, src: RouteSource) {
    this.#q = q;
    this.#src = src;
    if (q.view !== 'loc') {
      const id = src.peerId?.(q.peer!);
      if (id === undefined) throw new ControlError(`no configured peer ${q.peer}`, 'not-found');
      this.#peerId = id;
    }
  }

  #community(paths: readonly Path[]): boolean {
    const c = this.#q.community;
    if (c === undefined) return true;
    return paths.some((p) => {
      const a = p.attrs.attrs;
      if ('std' in c) return (a.communities ?? []).includes(c.std);
      return (a.largeCommunities ?? []).some((l) => l.join(':') === c.large);
    });
  }

  /**
   * The Adj-RIB-In of one peer for a prefix: what it sent and we accepted, each path with the import rule that
   * accepted it, then what its import rules refused (kept by the RIB up to bgp.keepRefused), marked accepted false
   * with the refusing rule. The refused view has only the latter. Routes refused before the rules ran (our AS in
   * the path, no next hop) are not kept: they show only in the difference of the peer's received and accepted counts.
   */
  #adjIn(k: PrefixKey, build: boolean): Record<string, unknown> | null | true {
    const q = this.#q;
    const rib = this.#src.rib;
    const ex = q.view === 'refused' ? [] : rib.explain(k).filter((e) => !e.path.source.local && e.path.source.address === q.peer);
    const refused = rib.refusedRoutes(this.#peerId!, k);
    if (ex.length === 0 && refused.length === 0) return null;
    const pseudo = refused.map((r) => ({ source: { local: false, address: q.peer! }, attrs: r.attrs, pathId: r.pathId }) as unknown as Path);
    if (!this.#community([...ex.map((e) => e.path), ...pseudo])) return null;
    if (!build) return true;
    const text = keyText(k);
    const locBest = rib.explain(k)[0];
    const installed = ex.length > 0 && locBest !== undefined && locBest.path.source.address === q.peer && this.#src.installed(k);
    const paths: Record<string, unknown>[] = ex.map((e) => ({
      ...contractPath(speakerPathJson(e.path, e.reason)), accepted: true, rule: rib.ruleName(e.path.rule), best: e.best, since: sinceOf(e.path),
    }));
    refused.forEach((r, i) => paths.push({ ...contractPath(speakerPathJson(pseudo[i]!, 'only-path')), reason: 'refused by import policy', accepted: false, rule: r.rule, best: false }));
    return { prefix: text, peer: q.peer, installed, paths };
  }

  readonly #pathText = new PathText();

  /**
   * The row as JSON text, or null: the same document as JSON.stringify(row(k)), made without the intermediate
   * objects (see attrsJsonText). Only the Loc-RIB view without filters takes this way; the others are rare.
   */
  rowText(k: PrefixKey): string | null {
    const q = this.#q;
    if (q.view !== 'loc' || q.peer !== undefined || q.community !== undefined) {
      const r = this.row(k);
      return r === null ? null : JSON.stringify(r);
    }
    const ex = this.#src.rib.explain(k);
    if (ex.length === 0) return null;
    const text = keyText(k);
    const paths = ex.map((e) => this.#pathText.text(e.path, e.reason));
    return `{"prefix":${JSON.stringify(text)},"installed":${this.#src.installed(k)},"best":${paths[0]!},"paths":[${paths.join(',')}]}`;
  }

  /** The row, or null; `build` false: only whether there is one (for count). */
  row(k: PrefixKey, build = true): RouteJson | Record<string, unknown> | null | true {
    const q = this.#q;
    const rib = this.#src.rib;
    if (q.view === 'advertised') {
      const adv = rib.advertisedPaths(this.#peerId!, k);
      if (adv.length === 0) return null;
      const pseudo = adv.map((a) => ({ source: { local: false, address: q.peer! }, attrs: a.attrs, pathId: a.pathId }) as unknown as Path);
      if (!this.#community(pseudo)) return null;
      if (!build) return true;
      return {
        prefix: keyText(k),
        peer: q.peer,
        paths: pseudo.map((p) => ({ ...contractPath(speakerPathJson(p, 'only-path')), from: 'local', reason: 'advertised', pathId: p.pathId })),
      };
    }
    if (q.view === 'received' || q.view === 'refused') return this.#adjIn(k, build);
    const ex = rib.explain(k);
    if (ex.length === 0) return null;
    let shown: { path: Path; best: boolean; reason: Reason }[] = ex;
    if (q.peer !== undefined) {
      shown = ex.filter((e) => !e.path.source.local && e.path.source.address === q.peer);
      if (shown.length === 0) return null;
    }
    if (!this.#community(shown.map((e) => e.path))) return null;
    if (!build) return true;
    const text = keyText(k);
    const installed = this.#src.installed(k);
    const paths = ex.map((e) => ({ ...contractPath(speakerPathJson(e.path, e.reason)), since: sinceOf(e.path) }));
    return { prefix: text, installed, best: paths[0]!, paths };
  }
}

/**
 * The JSON text of the attribute part of a path (nextHops .. largeCommunities), per interned attribute set. A table
 * dump makes a million rows out of a few hundred attribute sets: building each row as objects and stringifying it
 * made ~2 KB of garbage per row, and the collector's pauses were the largest part of the event-loop delay under
 * 200 concurrent dumps (issue 15). The sets are immutable apart from `unusable`, which is read per row.
 */
const attrText = new WeakMap<object, string>();

function attrsJsonText(p: Path): string {
  const set = p.attrs;
  let t = attrText.get(set);
  if (t !== undefined) return t;
  const a = set.attrs;
  const asPath: number[] = [];
  // contractPath's shape: the AS path flattened (a set's members in place)
  for (const seg of a.asPath ?? []) asPath.push(...seg.asns);
  t = `"nextHops":${JSON.stringify(set.nextHops)},"asPath":${JSON.stringify(asPath)},"origin":${JSON.stringify(
    a.origin === 0 || a.origin === 1 ? ORIGIN_NAMES[a.origin] : 'INCOMPLETE',
  )},"localPref":${a.localPref ?? 100},"med":${a.med ?? 0},"communities":${JSON.stringify((a.communities ?? []).map(communityText))},"largeCommunities":${JSON.stringify(
    (a.largeCommunities ?? []).map((l) => l.join(':')),
  )}`;
  attrText.set(set, t);
  return t;
}

/** One path of a Loc-RIB row as JSON text: the same document as JSON.stringify of contractPath(...) plus since. */
class PathText {
  #born = -1;
  #since = '';

  text(p: Path, reason: Reason): string {
    if (p.born !== this.#born) {
      this.#born = p.born;
      this.#since = sinceOf(p);
    }
    const why = unusableWhy(p);
    const u = why === null ? '"usable":true,"unusableReason":null,"unusableCode":null' : `"usable":false,"unusableReason":${JSON.stringify(why.text)},"unusableCode":${JSON.stringify(why.code)}`;
    return `{"from":${JSON.stringify(p.source.local ? 'local' : p.source.address)},${attrsJsonText(p)},"reason":${JSON.stringify(reasonText(reason))},${u},"since":"${this.#since}"}`;
  }
}

/** The longest Loc-RIB prefix holding `r` (an address is a host prefix), or undefined. */
export function longestMatch(rib: RibCore, r: KeyRange): PrefixKey | undefined {
  if (r.family === 4) {
    for (let len = r.len; len >= 0; len--) {
      const k = prefix4(r.addr4, len);
      if (rib.route(k) !== null) return k;
    }
    return undefined;
  }
  for (let len = r.len; len >= 0; len--) {
    const k = prefix6FromBytes(Uint8Array.from(r.addr6), len);
    if (rib.route(k) !== null) return k;
  }
  return undefined;
}

/** The Loc-RIB's prefixes, then those with only a refused route from the peer (each prefix once). */
const sharedRuns = new WeakMap<RibCore, SharedRuns>();
function sharedRunsOf(rib: RibCore): SharedRuns {
  let r = sharedRuns.get(rib);
  if (r === undefined) sharedRuns.set(rib, (r = new SharedRuns()));
  return r;
}

function* receivedPrefixes(rib: RibCore, id: number): Generator<PrefixKey> {
  yield* rib.prefixes();
  for (const k of rib.refusedPrefixes(id)) if (rib.route(k) === null) yield k;
}

/** rows per batch at most (one line on the socket): keeps a line's size bounded whatever the slice */
const MAX_BATCH = 512;
/**
 * bytes of row text per batch at most. A socket write of a few hundred kilobytes costs far more than making the
 * rows in it (glibc serves buffers above 128 KiB with a fresh mmap, whose pages are faulted in and zeroed on every
 * write): in a profile of 200 concurrent dumps the writes took six times the time of the rows (issue 15).
 */
const MAX_BATCH_BYTES = 32 * 1024;

/** The streaming answer of a routes request. */
export function routesStream(q: RouteQuery, src: RouteSource, sched: TurnScheduler = sharedScheduler): ControlStream {
  const maker = new RowMaker(q, src);
  let matched = 0;
  const page: Page = { matched: 0 };
  const header: Record<string, unknown> = { view: q.view, locRibSize: src.rib.locSize };
  if (q.peer !== undefined) header.peer = q.peer;
  if (q.lookup) {
    return new ControlStream({
      light: true,
      header: { ...header, lookup: q.lookup.text },
      async *rows() {
        await sched.slice();
        const k = longestMatch(src.rib, q.lookup!.key);
        const row = k === undefined ? null : maker.row(k, !q.count);
        if (row !== null) matched = 1;
        if (row !== null && !q.count) yield [row];
      },
      // A prefix (not an address) looked up: the trailer names the rule that decided it for each peer.
      trailer: () => {
        const t = q.lookup!.text;
        if (!t.includes('/') || src.policyTrace === undefined) return { matched };
        try {
          return { matched, policy: src.policyTrace(t) };
        } catch {
          return { matched };
        }
      },
    });
  }
  return new ControlStream({
    header,
    raw: true,
    async *rows(signal) {
      const id = q.view === 'loc' ? undefined : src.peerId!(q.peer!)!;
      const source = q.view === 'advertised'
        ? (): Iterator<PrefixKey> => src.advertisedPrefixes!(id!)
        : q.view === 'refused'
          ? (): Iterator<PrefixKey> => src.rib.refusedPrefixes(id!)
          : q.view === 'received'
            ? (): Iterator<PrefixKey> => receivedPrefixes(src.rib, id!)
            : (): Iterator<PrefixKey> => src.rib.prefixes();
      const walk = new PrefixWalk(source, {
        ...(q.within ? { within: q.within } : {}),
        ...(q.after !== undefined ? { after: q.after } : {}),
        ...(q.family !== undefined ? { family: q.family } : {}),
        // concurrent full dumps of the Loc-RIB share one sorted copy of its prefixes (prefix-walk.ts SharedRuns)
        ...(q.view === 'loc' ? { shared: { runs: sharedRunsOf(src.rib), version: src.rib.keySetVersion } } : {}),
      });
      const rows = pagedRows<unknown>(walk, sched, signal, {
        limit: q.limit ?? Infinity,
        countOnly: q.count === true,
        maxBatch: MAX_BATCH,
        maxBytes: MAX_BATCH_BYTES,
        size: (row) => (row as string).length,
        row: (k) => (q.count ? maker.row(k, false) : maker.rowText(k)),
      }, page);
      for await (const batch of rows) yield batch;
    },
    trailer: () => (page.next !== undefined ? { matched: page.matched, next: keyText(page.next) } : { matched: page.matched }),
  });
}
