// The Deno side of the `deno:` KV backend: serves the two KV primitives over stdin/stdout.
//
// Run by queue_impls/kv/backends/deno.py as `deno run --unstable-kv <narrow permissions> deno_bridge.ts <path|url>`.
// Framing: every message is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON.
//   request  [id, "read", consistency, ["many", [keyHex, ...]]]                       -> getMany: one snapshot read
//            [id, "read", consistency, ["list", prefix, start, end, limit, reverse, cursor]] -> one list batch: one read
//            [id, "write", [[keyHex, versionstamp|null], ...], [[kind, keyHex, value, expireIn|null], ...]]
//              kind: set, delete, sum, min, max, or set_vs (a set of key + kv.commitVersionstamp())
//            [id, "ping"]                                                                  -> null, touches no store
//            [id, "watch", [keyHex, ...]]   -> kv.watch(keys): a reply [id, 0, [entry | null per key]] per yield, until
//            [id, "unwatch", watchId]       -> null, after the watch's reader is cancelled (no more replies for it)
//   reply    [id, 0, result] or [id, 1, [errorName, message]]; id 0 is the greeting [0, 0, ["ready", denoVersion]].
//            A read's result is one list of entries per range: [keyHex, versionstamp, json] when the value is plain
//            (json: the text Python's codec writes for it), else [keyHex, versionstamp, null, taggedValue].
// Keys cross as hex of their tuple encoding (the same bytes Deno uses); values as tagged JSON (see docs/deno.md):
//   ["n", "123"] bigint, ["f", "NaN"|"Infinity"|"-Infinity"|"-0"] number, ["b", hex] Uint8Array,
//   ["u", "123"] Deno.KvU64, ["l", item, ...] array; JSON objects are plain objects, other JSON scalars as is.
// Requests are handled concurrently and answered as they finish (pipelining); stdin EOF closes the store and exits.

type KeyPart = Uint8Array | string | bigint | number | boolean;
type Key = KeyPart[];
type Wire = null | boolean | number | string | Wire[] | { [k: string]: Wire };

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const utf8 = new TextEncoder();
const utf8d = new TextDecoder("utf-8", { fatal: true });

function fromHex(s: string): Uint8Array {
  const out = new Uint8Array(s.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(i * 2, 2), 16);
  return out;
}

function toHex(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += HEX[b[i]];
  return s;
}

// ---------------------------------------------------------------- keys: Deno's tuple encoding, both ways

function readEscaped(b: Uint8Array, pos: number): [Uint8Array, number] {
  const out: number[] = [];
  for (;;) {
    if (pos >= b.length) throw new Error("Invalid encoded key: unterminated part");
    const c = b[pos++];
    if (c !== 0) out.push(c);
    else if (b[pos] === 0xff) (out.push(0), pos++);
    else return [Uint8Array.from(out), pos];
  }
}

function decodeKey(b: Uint8Array): Key {
  const parts: Key = [];
  let pos = 0;
  while (pos < b.length) {
    const tag = b[pos++];
    if (tag === 0x01 || tag === 0x02) {
      const [raw, next] = readEscaped(b, pos);
      parts.push(tag === 0x01 ? raw : utf8d.decode(raw));
      pos = next;
    } else if (tag >= 0x0b && tag <= 0x1d) {
      let size: number, neg: boolean;
      if (tag === 0x14) (size = 0), (neg = false);
      else if (tag === 0x1d) (size = b[pos++]), (neg = false);
      else if (tag === 0x0b) (size = b[pos++] ^ 0xff), (neg = true);
      else (size = Math.abs(tag - 0x14)), (neg = tag < 0x14);
      let n = 0n;
      for (let i = 0; i < size; i++) n = (n << 8n) | BigInt(neg ? b[pos + i] ^ 0xff : b[pos + i]);
      pos += size;
      parts.push(neg ? -n : n);
    } else if (tag === 0x21) {
      const bits = new DataView(b.buffer, b.byteOffset + pos, 8).getBigUint64(0);
      const raw = bits >> 63n ? bits ^ (1n << 63n) : bits ^ 0xffffffffffffffffn;
      const dv = new DataView(new ArrayBuffer(8));
      dv.setBigUint64(0, raw);
      parts.push(dv.getFloat64(0));
      pos += 8;
    } else if (tag === 0x26 || tag === 0x27) {
      parts.push(tag === 0x27);
    } else {
      throw new Error(`Invalid encoded key: unknown type tag ${tag} at byte ${pos - 1}`);
    }
  }
  return parts;
}

function pushBigint(out: number[], n: bigint): void {
  if (n === 0n) return void out.push(0x14);
  const neg = n < 0n;
  let mag = neg ? -n : n;
  const body: number[] = [];
  while (mag > 0n) (body.unshift(Number(mag & 0xffn)), (mag >>= 8n));
  const size = body.length;
  if (neg) out.push(...(size <= 8 ? [0x14 - size] : [0x0b, size ^ 0xff]), ...body.map((c) => c ^ 0xff));
  else out.push(...(size <= 8 ? [0x14 + size] : [0x1d, size]), ...body);
}

function pushNumber(out: number[], x: number): void {
  const dv = new DataView(new ArrayBuffer(8));
  dv.setFloat64(0, x);
  let bits = dv.getBigUint64(0);
  if (Number.isNaN(x)) bits = bits >> 63n ? 0xfff8000000000000n : 0x7ff8000000000000n;
  bits = bits >> 63n ? bits ^ 0xffffffffffffffffn : bits ^ (1n << 63n);
  dv.setBigUint64(0, bits);
  out.push(0x21, ...new Uint8Array(dv.buffer));
}

function encodeKey(key: Deno.KvKey): string {
  let hex = "";
  for (const part of key) {
    if (typeof part === "string") hex += "02" + escapedStringHex(part);
    else if (part instanceof Uint8Array) hex += "01" + escapedHex(part);
    else {
      const out: number[] = [];
      if (typeof part === "bigint") pushBigint(out, part);
      else if (typeof part === "number") pushNumber(out, part);
      else if (typeof part === "boolean") out.push(part ? 0x27 : 0x26);
      else throw new Error(`Unsupported key part ${typeof part}`);
      for (const c of out) hex += HEX[c];
    }
  }
  return hex;
}

// An ASCII string part without NUL is its own UTF-8: hex from the char codes, no TextEncoder (6x faster per key).
function escapedStringHex(part: string): string {
  let hex = "";
  for (let i = 0; i < part.length; i++) {
    const c = part.charCodeAt(i);
    if (c === 0 || c > 0x7f) return escapedHex(utf8.encode(part));
    hex += HEX[c];
  }
  return hex + "00";
}

function escapedHex(raw: Uint8Array): string {
  let hex = "";
  for (let i = 0; i < raw.length; i++) hex += raw[i] === 0 ? "00ff" : HEX[raw[i]];
  return hex + "00";
}

const key = (hex: string): Key => decodeKey(fromHex(hex));

// ---------------------------------------------------------------- values: tagged JSON, both ways

function fromWire(w: Wire): unknown {
  if (w === null || typeof w !== "object") return w;
  if (!Array.isArray(w)) return Object.fromEntries(Object.entries(w).map(([k, v]) => [k, fromWire(v)]));
  switch (w[0]) {
    case "l":
      return w.slice(1).map(fromWire);
    case "n":
      return BigInt(w[1] as string);
    case "f":
      return w[1] === "-0" ? -0 : Number(w[1]);
    case "b":
      return fromHex(w[1] as string);
    case "u":
      return new Deno.KvU64(BigInt(w[1] as string));
  }
  throw new Error(`Unknown wire tag ${JSON.stringify(w[0])}`);
}

function toWire(v: unknown): Wire {
  if (v === null || typeof v === "boolean" || typeof v === "string") return v;
  if (typeof v === "number") {
    if (Number.isFinite(v) && !Object.is(v, -0)) return v;
    return ["f", Object.is(v, -0) ? "-0" : String(v)];
  }
  if (typeof v === "bigint") return ["n", v.toString()];
  if (v instanceof Uint8Array) return ["b", toHex(v)];
  if (v instanceof Deno.KvU64) return ["u", v.value.toString()];
  if (Array.isArray(v)) return ["l", ...v.map(toWire)];
  const proto = typeof v === "object" ? Object.getPrototypeOf(v) : undefined;
  if (proto === Object.prototype || proto === null) {
    const out: { [k: string]: Wire } = Object.create(null); // no __proto__ setter: every key is a plain property
    for (const k in v as object) if (Object.hasOwn(v as object, k)) out[k] = toWire((v as Record<string, unknown>)[k]);
    return out;
  }
  const kind = v === undefined ? "undefined" : (proto?.constructor?.name ?? typeof v);
  throw new TypeError(`Unsupported value type: a stored ${kind} has no Python mapping`);
}

// A value made only of null, booleans, numbers, bigints, well-formed strings, arrays and plain objects crosses as
// the exact JSON text Python's codec writes for it (bigint -> 5, number -> 5.0 / 1e-05 / NaN, as Python's repr),
// so Python parses it in one C call and gets the encoded size from its length, with no walk on either side.

// A number as Python's float repr: the same shortest digits, fixed notation for 1e-4 <= |x| < 1e16.
function pyFloat(x: number): string {
  if (Number.isInteger(x) && Math.abs(x) < 1e16) return Object.is(x, -0) ? "-0.0" : `${x}.0`;
  if (!Number.isFinite(x)) return Number.isNaN(x) ? "NaN" : x > 0 ? "Infinity" : "-Infinity";
  const abs = Math.abs(x);
  if (abs >= 1e-4 && abs < 1e16) return String(x); // JS writes fixed notation from 1e-7 to 1e21
  const [mantissa, exp] = x.toExponential().split("e");
  return `${mantissa}e${exp[0]}${exp.slice(1).padStart(2, "0")}`;
}

// Python's json text of a plain value, or null when it holds anything else (then it crosses as tagged JSON).
function plainJson(v: unknown): string | null {
  if (v === null) return "null";
  const type = typeof v;
  if (type === "string") return (v as string).isWellFormed() ? JSON.stringify(v) : null; // V8 escapes a lone surrogate
  if (type === "number") return pyFloat(v as number);
  if (type === "bigint") return (v as bigint).toString();
  if (type === "boolean") return v ? "true" : "false";
  if (type !== "object") return null;
  if (Array.isArray(v)) {
    let out = "[";
    for (let i = 0; i < v.length; i++) {
      const part = i in v ? plainJson(v[i]) : null;
      if (part === null) return null;
      out += i ? "," + part : part;
    }
    return out + "]";
  }
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return null;
  let out = "{";
  for (const k in v as object) {
    if (!Object.hasOwn(v as object, k) || !k.isWellFormed()) return null;
    const part = plainJson((v as Record<string, unknown>)[k]);
    if (part === null) return null;
    out += (out.length > 1 ? "," : "") + JSON.stringify(k) + ":" + part;
  }
  return out + "}";
}

// ---------------------------------------------------------------- the two primitives

// [keyHex, versionstamp, Python's JSON text] for a plain value, else [keyHex, versionstamp, null, tagged value].
type Entry = [string, string, string] | [string, string, null, Wire];

function entry(e: Deno.KvEntry<unknown>): Entry {
  const text = plainJson(e.value);
  return text === null ? [encodeKey(e.key), e.versionstamp, null, toWire(e.value)] : [encodeKey(e.key), e.versionstamp, text];
}

async function read(kv: Deno.Kv, consistency: Deno.KvConsistencyLevel, spec: Wire[]): Promise<Entry[][]> {
  if (spec[0] === "many") {
    const entries = await kv.getMany((spec[1] as string[]).map(key), { consistency });
    return entries.map((e) => (e.versionstamp === null ? [] : [entry(e)]));
  }
  const [, prefix, start, end, limit, reverse, cursor] = spec as [string, string | null, string | null, string | null, number, boolean, string | null];
  const selector = prefix === null ? { start: key(start!), end: key(end!) } : start !== null ? { prefix: key(prefix), start: key(start) } : end !== null ? { prefix: key(prefix), end: key(end) } : { prefix: key(prefix) };
  // batchSize = limit and at most limit entries consumed: exactly one op_kv_snapshot_read.
  const iter = kv.list(selector as Deno.KvListSelector, { limit, batchSize: limit, reverse, consistency, cursor: cursor ?? undefined });
  const out: Entry[] = [];
  for await (const e of iter) out.push(entry(e));
  return [out];
}

type Check = [string, string | null];
type Mutation = [string, string, Wire, number | null];
const U64_KINDS = new Set(["sum", "min", "max"]);
const MAX_CHECKS = 100;
const MAX_TOTAL_MUTATION_SIZE = 819200;

class MutationTypeError extends TypeError {
  override name = "MutationTypeError";
}

async function getAll(kv: Deno.Kv, hexes: string[]): Promise<Map<string, Deno.KvEntryMaybe<unknown>>> {
  const chunks: string[][] = [];
  for (let i = 0; i < hexes.length; i += 10) chunks.push(hexes.slice(i, i + 10));
  const results = await Promise.all(chunks.map((c) => kv.getMany(c.map(key))));
  return new Map(hexes.map((h, i) => [h, results[Math.floor(i / 10)][i % 10]]));
}

// Deno's local backend keeps the mutations before a failing sum/min/max. To stay all-or-nothing, a commit with
// sum/min/max first reads each key whose first mutation in the commit is sum/min/max, replays the mutations on
// their types, and then commits with extra checks pinning those keys to the versionstamps it read; if the commit
// fails and the caller's own checks still hold, a pinned key changed in between, so it reads and tries again.
async function write(kv: Deno.Kv, checks: Check[], mutations: Mutation[], size: number): Promise<string | null> {
  if (!mutations.some((m) => U64_KINDS.has(m[0]))) return await commit(kv, checks, mutations);
  const firstTouch = new Map<string, string>();
  for (const [kind, hex] of mutations) if (kind !== "set_vs" && !firstTouch.has(hex)) firstTouch.set(hex, kind);
  const pinned = [...firstTouch].filter(([, kind]) => U64_KINDS.has(kind)).map(([hex]) => hex);
  for (let attempt = 0; attempt < 100; attempt++) {
    const current = await getAll(kv, pinned);
    const failing = typeFailure(mutations, current);
    if (failing !== null) {
      if (await checksFail(kv, checks)) return null; // Deno evaluates checks before mutations
      throw new MutationTypeError(`Failed to perform '${failing}' mutation on a non-U64 value in the database`);
    }
    const pins: Check[] = pinned.map((hex) => [hex, current.get(hex)!.versionstamp]);
    const pinSize = pinned.reduce((n, hex) => n + hex.length / 2, 0);
    const fits = checks.length + pins.length <= MAX_CHECKS && size + pinSize <= MAX_TOTAL_MUTATION_SIZE;
    const result = await commit(kv, fits ? checks.concat(pins) : checks, mutations);
    if (result !== null || !fits || (await checksFail(kv, checks))) return result;
  }
  throw new Error("Commit with sum/min/max kept losing a race with concurrent writers (100 attempts)");
}

function typeFailure(mutations: Mutation[], current: Map<string, Deno.KvEntryMaybe<unknown>>): string | null {
  const isU64 = new Map<string, boolean | null>(); // null: missing
  for (const [kind, hex, value] of mutations) {
    if (kind === "set_vs") continue; // its key is the commit's own: no other mutation touches it
    if (kind === "set") isU64.set(hex, Array.isArray(value) && value[0] === "u");
    else if (kind === "delete") isU64.set(hex, null);
    else {
      const stored = current.get(hex);
      const state = isU64.has(hex) ? isU64.get(hex) : stored?.versionstamp ? stored.value instanceof Deno.KvU64 : null;
      if (state === false) return kind;
      isU64.set(hex, true);
    }
  }
  return null;
}

async function checksFail(kv: Deno.Kv, checks: Check[]): Promise<boolean> {
  const current = await getAll(kv, checks.map(([hex]) => hex));
  return checks.some(([hex, vs]) => current.get(hex)!.versionstamp !== vs);
}

async function commit(kv: Deno.Kv, checks: Check[], mutations: Mutation[]): Promise<string | null> {
  const op = kv.atomic();
  for (const [hex, versionstamp] of checks) op.check({ key: key(hex), versionstamp });
  for (const [kind, hex, value, expireIn] of mutations) {
    if (kind === "set") op.set(key(hex), fromWire(value), expireIn === null ? undefined : { expireIn });
    else if (kind === "set_vs") {
      // the key + the commit's versionstamp as its last part: KV Connect's M_SET_SUFFIX_VERSIONSTAMPED_KEY
      const options = expireIn === null ? undefined : { expireIn };
      op.set([...key(hex), kv.commitVersionstamp()], fromWire(value), options);
    } else if (kind === "delete") op.delete(key(hex));
    else op[kind as "sum" | "min" | "max"](key(hex), BigInt(value as string));
  }
  const result = await op.commit();
  return result.ok ? result.versionstamp : null;
}

// ---------------------------------------------------------------- framing and dispatch

const pendingOut: Uint8Array[] = [];
let flushQueued = false;

// Replies go out with Deno.stdout.writeSync: the async write hops to a blocking thread and back (about 40-100 us
// per reply, measured, see docs/deno.md). Frames finished in the same task are batched into one write (a
// microtask). A full pipe blocks the bridge until Python reads, which its event loop always does.
function flush(): void {
  flushQueued = false;
  if (!pendingOut.length) return;
  const chunks = pendingOut.splice(0);
  let buf = chunks.length === 1 ? chunks[0] : new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  if (chunks.length > 1) chunks.reduce((off, c) => (buf.set(c, off), off + c.length), 0);
  while (buf.length) buf = buf.subarray(Deno.stdout.writeSync(buf));
}

function send(message: unknown): void {
  const body = utf8.encode(JSON.stringify(message));
  const frame = new Uint8Array(4 + body.length);
  new DataView(frame.buffer).setUint32(0, body.length);
  frame.set(body, 4);
  pendingOut.push(frame);
  if (!flushQueued) (flushQueued = true), queueMicrotask(flush);
}

// ---------------------------------------------------------------- watch: Deno's own kv.watch, streamed

const watches = new Map<number, ReadableStreamDefaultReader<Deno.KvEntryMaybe<unknown>[]>>();

function startWatch(kv: Deno.Kv, id: number, hexes: string[]): void {
  let reader: ReadableStreamDefaultReader<Deno.KvEntryMaybe<unknown>[]>;
  try {
    reader = kv.watch(hexes.map(key)).getReader();
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    return send([id, 1, [err.name, err.message]]);
  }
  watches.set(id, reader);
  void (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done || !watches.has(id)) break;
        send([id, 0, value.map((e) => (e.versionstamp === null ? null : entry(e)))]);
      }
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      if (watches.has(id)) send([id, 1, [err.name, err.message]]);
    } finally {
      watches.delete(id);
    }
  })();
}

async function stopWatch(watchId: number): Promise<null> {
  const reader = watches.get(watchId);
  watches.delete(watchId);
  if (reader !== undefined) await reader.cancel();
  return null;
}

async function handle(kv: Deno.Kv, msg: Wire[]): Promise<void> {
  const id = msg[0];
  try {
    let result: unknown;
    if (msg[1] === "ping") result = null; // a round trip that touches no store: the transport's own cost
    else if (msg[1] === "read") result = await read(kv, msg[2] as Deno.KvConsistencyLevel, msg[3] as Wire[]);
    else if (msg[1] === "write") result = await write(kv, msg[2] as Check[], msg[3] as Mutation[], msg[4] as number);
    else if (msg[1] === "unwatch") result = await stopWatch(msg[2] as number);
    else throw new Error(`Unknown request ${JSON.stringify(msg[1])}`);
    send([id, 0, result]);
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    send([id, 1, [err.name, err.message]]);
  }
}

const inflight = new Set<Promise<void>>();

// Reads straight into a buffer (a ReadableStream adds about 50 us per chunk). The async Deno.stdin.read runs on
// a blocking thread and costs 40-100 us more per round trip than readSync (measured, see docs/deno.md), so a
// local store, whose requests Deno serves on one SQLite connection anyway, answers every frame read before it
// blocks in readSync for the next ones; a remote store keeps reading while requests are in flight.
async function serve(kv: Deno.Kv, blocking: boolean): Promise<void> {
  let buf: Uint8Array = new Uint8Array(1 << 16);
  let filled = 0;
  for (;;) {
    if (filled === buf.length) buf = grow(buf, buf.length * 2);
    const sync = blocking && watches.size === 0; // an open watch must be able to send while we wait for stdin
    if (sync) {
      while (inflight.size) await Promise.race(inflight);
      flush(); // before blocking: the replies queued for a microtask
    }
    const n = sync ? Deno.stdin.readSync(buf.subarray(filled)) : await Deno.stdin.read(buf.subarray(filled));
    if (n === null) return;
    filled += n;
    let pos = 0;
    while (filled - pos >= 4) {
      const size = new DataView(buf.buffer, pos, 4).getUint32(0);
      if (filled - pos - 4 < size) {
        if (size + 4 > buf.length) buf = grow(buf, size + 4);
        break;
      }
      dispatch(kv, buf.subarray(pos + 4, pos + 4 + size));
      pos += 4 + size;
    }
    buf.copyWithin(0, pos, filled);
    filled -= pos;
  }
}

function grow(buf: Uint8Array, size: number): Uint8Array {
  const bigger = new Uint8Array(size);
  bigger.set(buf);
  return bigger;
}

function dispatch(kv: Deno.Kv, body: Uint8Array): void {
  let msg: Wire[];
  try {
    msg = JSON.parse(utf8d.decode(body));
    if (!Array.isArray(msg) || typeof msg[0] !== "number") throw new Error("not a request array");
  } catch (e) {
    console.error(`deno_bridge: garbled request frame (${(e as Error).message}): ${new TextDecoder().decode(body.slice(0, 200))}`);
    Deno.exit(2);
  }
  if (msg[1] === "watch") return startWatch(kv, msg[0] as number, msg[2] as string[]);
  const job = handle(kv, msg);
  inflight.add(job);
  void job.finally(() => inflight.delete(job));
}

const target = Deno.args[0];
let kv: Deno.Kv;
try {
  kv = await Deno.openKv(target);
} catch (e) {
  send([0, 1, [(e as Error).name, `Cannot open Deno KV ${JSON.stringify(target)}: ${(e as Error).message}`]]);
  flush();
  Deno.exit(1);
}
send([0, 0, ["ready", Deno.version.deno]]);
await serve(kv, !/^https?:\/\//.test(target));
await Promise.all(inflight); // answer what was asked before stdin closed
kv.close();
flush();
