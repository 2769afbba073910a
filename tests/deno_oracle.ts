// The real Deno KV as an oracle for tests/test_differential_errors.py and tests/test_differential_results.py: runs
// each call exactly as given, with no checks of ours in front, and says what it gave or which error Deno raised (and,
// for list() and watch(), whether the call itself or the first next()/read() raised it). One JSON request per stdin
// line, one JSON reply per stdout line, on one in-memory store (or on the store whose URL is its first argument).
//   request: ["reset"] | ["get", key, consistency] | ["get_many", [key...], consistency] | ["delete", key]
//            | ["set", key, value, expireIn] | ["list", prefix, start, end, options, take?]
//            | ["atomic", [[key, versionstamp]...], [[kind, key, value, expireIn]...]] | ["watch", [key...]]
//   reply:   ["ok", result] | ["error", phase, message]
//   result:  get: entry; get_many and watch (its first yield): [entry...]; list: [[entry...], cursor] where the list
//            takes at most `take` entries (all if null; one if absent) and cursor is it.cursor after them, or null
//            when reading it throws; set and atomic: [ok, versionstamp]; others null.
//            An entry is [[part...], value, versionstamp]: parts tagged as below ({"f"}: "-0", "NaN", "Infinity" as
//            such), a value as a bigint's decimal text, a KvU64 as "u64:" and its decimal text, or null when missing
//            (any other value: its type's name).
// Arguments arrive tagged (see enc_* in the tests): {"key": [part...]} or {"raw": json}; a part is {"s"}, {"b": hex},
// {"n": bigint decimal}, {"f": number text}, {"t": bool} or {"obj": 1} (an object: not a key part);
// a number option is {"num": text} or {"raw": json}; a value is {"v": json}, {"fn": 1} (not cloneable), {"big": n},
// {"bigint": decimal} or {"u64": decimal} (a Deno.KvU64).

type Tagged = Record<string, unknown>;
const kv = await Deno.openKv(Deno.args[0] ?? ":memory:");

function part(p: Tagged): unknown {
  if ("s" in p) return p.s;
  if ("b" in p) return Uint8Array.from((p.b as string).match(/../g) ?? [], (h) => parseInt(h, 16));
  if ("n" in p) return BigInt(p.n as string);
  if ("f" in p) return Number(p.f);
  if ("t" in p) return p.t;
  return {};
}
function key(k: Tagged | null | undefined): unknown {
  if (k === null || k === undefined) return undefined;
  if ("key" in k) return (k.key as Tagged[]).map(part);
  return k.raw;
}
function num(n: Tagged | null | undefined): unknown {
  if (n === null || n === undefined) return undefined;
  if ("num" in n) return Number(n.num);
  return n.raw;
}
function value(v: Tagged): unknown {
  if ("fn" in v) return () => 1;
  if ("big" in v) return "y".repeat(v.big as number);
  if ("bigint" in v) return BigInt(v.bigint as string);
  if ("u64" in v) return new Deno.KvU64(BigInt(v.u64 as string));
  if ("num" in v) return Number(v.num);
  return v.v;
}
function opts(o: Record<string, Tagged>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, v] of Object.entries(o)) out[name] = name === "limit" || name === "batchSize" ? num(v) : v.raw;
  return out;
}

function tagPart(p: unknown): Tagged {
  if (typeof p === "string") return { s: p };
  if (p instanceof Uint8Array) return { b: Array.from(p, (x) => x.toString(16).padStart(2, "0")).join("") };
  if (typeof p === "bigint") return { n: p.toString() };
  if (typeof p === "number") return { f: Object.is(p, -0) ? "-0" : String(p) };
  return { t: p as boolean };
}
function entry(e: Deno.KvEntryMaybe<unknown>): unknown[] {
  const v = e.value;
  const shown = e.versionstamp === null
    ? null
    : typeof v === "bigint"
    ? v.toString()
    : v instanceof Deno.KvU64
    ? `u64:${v.value}`
    : { type: typeof v };
  return [e.key.map(tagPart), shown, e.versionstamp];
}

async function run(req: any[]): Promise<unknown[]> {
  let phase = "call";
  let result: unknown = null;
  try {
    switch (req[0]) {
      case "reset": {
        for await (const e of kv.list({ prefix: [] })) await kv.delete(e.key);
        break;
      }
      case "get":
        result = entry(await kv.get(key(req[1]) as Deno.KvKey, req[2] === null ? undefined : { consistency: req[2] }));
        break;
      case "get_many": {
        const keys = (req[1] as Tagged[]).map(key) as Deno.KvKey[];
        result = (await kv.getMany(keys, req[2] === null ? undefined : { consistency: req[2] })).map(entry);
        break;
      }
      case "delete":
        await kv.delete(key(req[1]) as Deno.KvKey);
        break;
      case "set": {
        const expireIn = req[3] === null ? undefined : { expireIn: num(req[3]) as number };
        const r = await kv.set(key(req[1]) as Deno.KvKey, value(req[2]), expireIn);
        result = [r.ok, r.versionstamp];
        break;
      }
      case "list": {
        const selector: Record<string, unknown> = {};
        if (req[1] !== null) selector.prefix = key(req[1]);
        if (req[2] !== null) selector.start = key(req[2]);
        if (req[3] !== null) selector.end = key(req[3]);
        const it = kv.list(selector as Deno.KvListSelector, opts(req[4]));
        phase = "next";
        const take = req.length > 5 ? (req[5] ?? Infinity) : 1;
        const entries = [];
        while (entries.length < take) {
          const r = await it.next();
          if (r.done) break;
          entries.push(entry(r.value));
        }
        let cursor: string | null = null;
        try {
          cursor = it.cursor;
        } catch {
          cursor = null;
        }
        result = [entries, cursor];
        break;
      }
      case "watch": {
        const reader = kv.watch((req[1] as Tagged[]).map(key) as Deno.KvKey[]).getReader();
        phase = "next";
        try {
          const r = await reader.read();
          result = r.done ? null : r.value.map(entry);
        } finally {
          await reader.cancel();
        }
        break;
      }
      case "atomic": {
        const op = kv.atomic();
        for (const [k, vs] of req[1]) op.check({ key: key(k) as Deno.KvKey, versionstamp: vs });
        for (const [kind, k, v, expireIn] of req[2]) {
          if (kind === "set") op.set(key(k) as Deno.KvKey, value(v), expireIn === null ? undefined : { expireIn: num(expireIn) as number });
          else if (kind === "delete") op.delete(key(k) as Deno.KvKey);
          else (op as any)[kind](key(k), value(v));
        }
        const r = await op.commit();
        result = [r.ok, r.ok ? r.versionstamp : null];
        break;
      }
      default:
        throw new Error(`unknown request ${req[0]}`);
    }
  } catch (e) {
    return ["error", phase, String((e as Error).message).split("\n")[0]];
  }
  return ["ok", result];
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();
let buffered = "";
for await (const chunk of Deno.stdin.readable) {
  buffered += decoder.decode(chunk, { stream: true });
  let nl: number;
  while ((nl = buffered.indexOf("\n")) >= 0) {
    const line = buffered.slice(0, nl);
    buffered = buffered.slice(nl + 1);
    const reply = await run(JSON.parse(line));
    await Deno.stdout.write(encoder.encode(JSON.stringify(reply) + "\n"));
  }
}
kv.close();
