// Stream framer: turns TCP chunks, split anywhere, into whole BGP messages
// (RFC 4271 §4.1), checking each header as soon as its 19 octets are in
// (RFC 4271 §6.1) so a bad peer is caught before we wait for its body. It
// keeps a list of chunks and a byte count; a message lying inside one chunk is
// returned as a view of it (no copy), one spanning chunks is copied once.
// It does no I/O and decodes nothing beyond the header.
import { CeaseSubcode, ErrorCode, HEADER_LEN, MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN, MessageType } from './constants.js';
import { BgpError } from './errors.js';
import { checkHeader, checkRouteRefreshLength } from './header.js';

export interface FramerOptions {
  /** RFC 8654 negotiated from the start (normally set later with `extendedMessage`) */
  readonly extendedMessage?: boolean;
  /** bound on octets held while waiting for the caller to take messages; default 4 MiB */
  readonly maxBuffered?: number;
}

export class Framer {
  /** chunks from `#head` on are unconsumed; chunk `#head` is read from `#offset` */
  #chunks: Buffer[] = [];
  #head = 0;
  #offset = 0;
  #buffered = 0;
  #maxLength: number;
  readonly #maxBuffered: number;
  /** scratch for a header that spans chunks */
  readonly #header = Buffer.alloc(HEADER_LEN);
  /** length of the message whose header is already checked, waiting for its body; 0 when none */
  #pending = 0;
  #slab: Buffer = EMPTY;
  #slabOffset = 0;
  /** once a header check failed the stream is unsynchronised for good: the session resets (RFC 4271 §6.1) */
  #failed: BgpError | null = null;

  constructor(opts: FramerOptions = {}) {
    this.#maxLength = opts.extendedMessage ? MAX_EXTENDED_MESSAGE_LEN : MAX_MESSAGE_LEN;
    this.#maxBuffered = opts.maxBuffered ?? 4 * 1024 * 1024;
  }

  /**
   * RFC 8654 §3: once both ends advertised the extended message capability
   * (known after the OPEN exchange), messages other than OPEN and KEEPALIVE may
   * reach 65535 octets.
   */
  set extendedMessage(on: boolean) {
    this.#maxLength = on ? MAX_EXTENDED_MESSAGE_LEN : MAX_MESSAGE_LEN;
  }

  get extendedMessage(): boolean {
    return this.#maxLength === MAX_EXTENDED_MESSAGE_LEN;
  }

  /** Octets received but not yet returned as messages. */
  get buffered(): number {
    return this.#buffered;
  }

  /**
   * Add received bytes. Throws Cease / Out of Resources (RFC 4486 §4) when
   * the caller lets more than `maxBuffered` octets pile up without taking
   * messages: a bound on what one peer can make us hold.
   */
  push(chunk: Buffer): void {
    if (this.#failed) throw this.#failed;
    if (chunk.length === 0) return;
    if (this.#buffered + chunk.length > this.#maxBuffered) {
      throw new BgpError(ErrorCode.Cease, CeaseSubcode.OutOfResources, `more than ${this.#maxBuffered} octets buffered`);
    }
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
  }

  /**
   * The next whole message (header included), or null until more bytes come.
   * Throws the header's BgpError (and keeps throwing it afterwards).
   */
  next(): Buffer | null {
    if (this.#failed) throw this.#failed;
    // The header of the message being waited for was checked already: only wait for its body.
    if (this.#pending !== 0) {
      if (this.#buffered < this.#pending) return null;
      return this.#complete(this.#pending);
    }
    if (this.#buffered < HEADER_LEN) return null;
    const first = this.#chunks[this.#head] as Buffer;
    let hdr: Buffer;
    let at: number;
    if (first.length - this.#offset >= HEADER_LEN) {
      hdr = first;
      at = this.#offset;
    } else {
      this.#copyOut(this.#header, HEADER_LEN);
      hdr = this.#header;
      at = 0;
    }
    let length: number;
    try {
      length = checkHeader(hdr, at, this.#maxLength);
    } catch (e) {
      this.#failed = e as BgpError;
      throw e;
    }
    if (this.#buffered < length) {
      this.#pending = length;
      return null;
    }
    return this.#complete(length);
  }

  /** Take the message of `length` octets at the front (header checked) and run the checks that need all of it. */
  #complete(length: number): Buffer {
    this.#pending = 0;
    const msg = this.#take(length);
    if (msg[18] === MessageType.ROUTE_REFRESH) {
      try {
        checkRouteRefreshLength(msg);
      } catch (e) {
        this.#failed = e as BgpError;
        throw e;
      }
    }
    return msg;
  }

  /** Push a chunk and return every message now complete. */
  feed(chunk: Buffer): Buffer[] {
    this.push(chunk);
    const out: Buffer[] = [];
    for (let m = this.next(); m !== null; m = this.next()) out.push(m);
    return out;
  }

  /** Copy the first n buffered octets into dst without consuming them. */
  #copyOut(dst: Buffer, n: number): void {
    let done = 0;
    let off = this.#offset;
    for (let i = this.#head; i < this.#chunks.length; i++) {
      const c = this.#chunks[i] as Buffer;
      const k = Math.min(n - done, c.length - off);
      c.copy(dst, done, off, off + k);
      done += k;
      off = 0;
      if (done === n) return;
    }
  }

  /** Consume n octets: a view when they lie in the first chunk, else one copy. */
  #take(n: number): Buffer {
    const first = this.#chunks[this.#head] as Buffer;
    const avail = first.length - this.#offset;
    let out: Buffer;
    if (avail >= n) {
      out = first.subarray(this.#offset, this.#offset + n);
      if (avail === n) {
        this.#dropFirst();
      } else this.#offset += n;
    } else {
      out = this.#alloc(n);
      let done = 0;
      while (done < n) {
        const c = this.#chunks[this.#head] as Buffer;
        const k = Math.min(n - done, c.length - this.#offset);
        c.copy(out, done, this.#offset, this.#offset + k);
        done += k;
        if (this.#offset + k === c.length) this.#dropFirst();
        else this.#offset += k;
      }
    }
    this.#buffered -= n;
    return out;
  }

  /**
   * Room for a message that spans chunks. Carved from a 64 KiB slab of our own
   * rather than one allocation each (Node's pool stops at 4 KiB, exactly a
   * full BGP message), which at one TCP segment per chunk is most of the cost.
   * Like any view into socket data, a message pins its slab: keep a copy of
   * what must outlive the message.
   */
  #alloc(n: number): Buffer {
    if (n > SLAB_SIZE / 4) return Buffer.allocUnsafe(n);
    if (this.#slabOffset + n > this.#slab.length) {
      this.#slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
      this.#slabOffset = 0;
    }
    const out = this.#slab.subarray(this.#slabOffset, this.#slabOffset + n);
    this.#slabOffset = (this.#slabOffset + n + 7) & ~7;
    return out;
  }

  /** Forget the first chunk; compact the array now and then instead of shift() per chunk (O(1) amortised). */
  #dropFirst(): void {
    this.#chunks[this.#head] = EMPTY;
    this.#head++;
    this.#offset = 0;
    if (this.#head === this.#chunks.length) {
      this.#chunks = [];
      this.#head = 0;
    } else if (this.#head >= 1024) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
  }
}

const EMPTY = Buffer.alloc(0);
const SLAB_SIZE = 64 * 1024;
