// The real Deno KV as an oracle for tests/test_differential_errors.py: runs each call exactly as given, with no
// checks of ours in front, and says which error Deno raised (and, for list() and watch(), whether the call itself or
// the first next()/read() raised it). One JSON request per stdin line, one JSON reply per stdout line, on one in-memory store.
//   request: ["reset"] | ["get", key, consistency] | ["get_many", [key...], consistency] | ["delete", key]
//            | ["set", key, value, expireIn] | ["list", prefix, start, end, options]
//            | ["atomic", [[key, versionstamp]...], [[kind, key, value, expireIn]...]] | ["watch", [key...]]
//   reply:   ["ok"] | ["error", phase, message]
// Arguments arrive tagged (see enc_* in the test): {"key": [part...]} or {"raw": json}; a part is {"s"}, {"b": hex},
// {"n": bigint decimal}, {"f": number text}, {"t": bool} or {"obj": 1} (an object: not a key part);
// a number option is {"num": text} or {"raw": json}; a value is {"v": json}, {"fn": 1} (not cloneable) or {"big": n}.

type Tagged = Record<string, unknown>;
const kv = await Deno.openKv(":memory:");

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
  if ("num" in v) return Number(v.num);
  return v.v;
}
function opts(o: Record<string, Tagged>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, v] of Object.entries(o)) out[name] = name === "limit" || name === "batchSize" ? num(v) : v.raw;
  return out;
}

async function run(req: any[]): Promise<unknown[]> {
  let phase = "call";
  try {
    switch (req[0]) {
      case "reset": {
        for await (const e of kv.list({ prefix: [] })) await kv.delete(e.key);
        break;
      }
      case "get":
        await kv.get(key(req[1]) as Deno.KvKey, req[2] === null ? undefined : { consistency: req[2] });
        break;
      case "get_many":
        await kv.getMany((req[1] as Tagged[]).map(key) as Deno.KvKey[], req[2] === null ? undefined : { consistency: req[2] });
        break;
      case "delete":
        await kv.delete(key(req[1]) as Deno.KvKey);
        break;
      case "set":
        await kv.set(key(req[1]) as Deno.KvKey, value(req[2]), req[3] === null ? undefined : { expireIn: num(req[3]) as number });
        break;
      case "list": {
        const selector: Record<string, unknown> = {};
        if (req[1] !== null) selector.prefix = key(req[1]);
        if (req[2] !== null) selector.start = key(req[2]);
        if (req[3] !== null) selector.end = key(req[3]);
        const it = kv.list(selector as Deno.KvListSelector, opts(req[4]));
        phase = "next";
        await it.next();
        break;
      }
      case "watch": {
        const reader = kv.watch((req[1] as Tagged[]).map(key) as Deno.KvKey[]).getReader();
        phase = "next";
        try {
          await reader.read();
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
        await op.commit();
        break;
      }
      default:
        throw new Error(`unknown request ${req[0]}`);
    }
  } catch (e) {
    return ["error", phase, String((e as Error).message).split("\n")[0]];
  }
  return ["ok"];
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
