// The KV micro-benchmark's operations timed inside one Deno process: what Deno KV costs with no bridge at all.
//
//   deno run --unstable-kv --allow-read=F --allow-write=F tools/deno_inprocess.ts F [--entries N] [--min-time S]
//       prints JSON: the median microseconds per call of each op
//   ... tools/deno_inprocess.ts F --entries N --serve    prints "ready", then answers "op loops" lines with seconds
//
// The data and the operations mirror tools/kv_micro.py's Workload exactly as the deno: backend stores it
// (Python int -> bigint): N job records under ["jobs", "%08d"], writes under ["bench-writes", ...].

const args = [...Deno.args];
const path = args.shift() ?? ":memory:";
const flag = (name: string) => args.indexOf(name);
const entries = flag("--entries") >= 0 ? Number(args[flag("--entries") + 1]) : 1000;
const serve = flag("--serve") >= 0;
const minTime = flag("--min-time") >= 0 ? Number(args[flag("--min-time") + 1]) : 0.1; // seconds per value

const key = (i: number): Deno.KvKey => ["jobs", String(i).padStart(8, "0")];
const value = (i: number) => ({
  id: BigInt(i),
  queue: "default",
  state: "queued",
  attempts: 0n,
  payload: { to: `u${i}@example.com` },
});

const kv = await Deno.openKv(path);
for (let first = 0; first < entries; first += 500) {
  const op = kv.atomic();
  for (let i = first; i < Math.min(first + 500, entries); i++) op.set(key(i), value(i));
  if (!(await op.commit()).ok) throw new Error("seeding commit failed");
}

const hot = key(Math.floor(entries / 2));
const step = Math.max(Math.floor(entries / 10), 1);
const many = Array.from({ length: 10 }, (_, i) => key(i * step));
const [first, second] = [["bench-writes", "a"], ["bench-writes", "b"]];
const record = value(0);

function spin(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

// Names as in tools/kv_micro.py's OPS.
const ops: Record<string, () => Promise<unknown>> = {
  "get": () => kv.get(hot),
  "get_many(10)": () => kv.getMany(many),
  "list page(50)": async () => {
    const out = [];
    for await (const e of kv.list({ prefix: ["jobs"] }, { limit: 50 })) out.push(e);
    if (out.length !== 50) throw new Error(`list page returned ${out.length} entries`);
    return out;
  },
  "set": () => kv.set(first, record),
  "commit(2 sets)": () => kv.atomic().set(first, record).set(second, record).commit(),
};

// For tools/kv_bounds.py (served by name, not in the standalone JSON): a get after 200 us of the main thread spinning
// (Deno's KV thread has nothing to do meanwhile, as between a bridge's requests), and the spin alone.
const diagnostics: Record<string, () => Promise<unknown>> = {
  "idle 200 us": async () => spin(0.2),
  "get from idle 200 us": () => (spin(0.2), kv.get(hot)),
};

async function time(op: string, loops: number): Promise<number> {
  const fn = ops[op] ?? diagnostics[op];
  if (!fn) throw new Error(`unknown op ${JSON.stringify(op)}`);
  const start = performance.now();
  for (let i = 0; i < loops; i++) await fn();
  return (performance.now() - start) / 1000;
}

const out = new TextEncoder();
if (serve) {
  await Deno.stdout.write(out.encode("ready\n"));
  let pending = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      const [op, loops] = pending.slice(0, nl).split("\t");
      pending = pending.slice(nl + 1);
      await Deno.stdout.write(out.encode(`${await time(op, Number(loops))}\n`));
    }
  }
} else {
  const result: Record<string, number> = {};
  for (const op of Object.keys(ops)) {
    let loops = 1;
    while ((await time(op, loops)) < minTime) loops *= 2; // calibrate: at least minTime seconds per value
    const values = [];
    for (let v = 0; v < 5; v++) values.push((await time(op, loops)) / loops);
    values.sort((a, b) => a - b);
    result[op] = Math.round(values[2] * 1e7) / 10; // median, microseconds
  }
  console.log(JSON.stringify({ deno: Deno.version.deno, path, entries, us_per_call_median: result }));
}
kv.close();
