// tap reporter: passes the raw TAP stream through and ends with the plain
// "N passed, N failed, N skipped" line that CI reads (nothing may follow it on that line; the todo
// count and the total go on the line before).
import { Transform } from 'node:stream';

export default class SummaryReporter extends Transform {
  #buf = '';
  #counts = null;

  _transform(chunk, _enc, cb) {
    this.#buf += chunk.toString();
    let i;
    while ((i = this.#buf.indexOf('\n')) >= 0) {
      const line = this.#buf.slice(0, i);
      this.#buf = this.#buf.slice(i + 1);
      const m = /^# \{ (total: \d+.*) \}$/.exec(line);
      if (m) {
        this.#counts = Object.fromEntries(m[1].split(', ').map((kv) => {
          const [k, v] = kv.split(': ');
          return [k, Number(v)];
        }));
      }
    }
    cb(null, chunk);
  }

  _flush(cb) {
    const c = this.#counts ?? { total: 0 };
    cb(null, `\n${c.todo ?? 0} todo, ${c.total} total\n${c.pass ?? 0} passed, ${c.fail ?? 0} failed, ${c.skip ?? 0} skipped\n`);
  }
}
