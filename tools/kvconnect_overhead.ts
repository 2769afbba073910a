/**
 * The KV Connect server's added cost, timed inside one Deno process: the same ops on Deno's own local SQLite KV and
 * through servers, in alternating blocks. Prints one JSON line: per op, per path, the microseconds of each block.
 *
 *   deno run --unstable-kv --allow-net --allow-env --allow-read --allow-write kvconnect_overhead.ts \
 *     URL PATH ROUNDS BLOCK ECHO_PORT [NAME=URL ...]
 *
 * URL: the server in front of SQLite ("served"); PATH: Deno's own SQLite file ("local"); NAME=URL: more servers
 * (e.g. memory=..., granian=...); ECHO_PORT: a Python TCP echo server, whose one-byte ping-pong is the floor of any
 * round trip between Deno and a Python process on this machine. Last, each server alone serves a run of gets between
 * marker bytes sent to the echo server, at which the Python side reads its process CPU time.
 */

const [url, path, rounds, block, echoPort, ...more] = Deno.args;
const stores: Record<string, Deno.Kv> = { local: await Deno.openKv(path), served: await Deno.openKv(url) };
for (const spec of more) {
  const at = spec.indexOf("=");
  stores[spec.slice(0, at)] = await Deno.openKv(spec.slice(at + 1));
}
const echo = await Deno.connect({ hostname: "127.0.0.1", port: Number(echoPort) });
echo.setNoDelay(true);
const byte = new Uint8Array([1]);
const reply = new Uint8Array(1);
async function ping(): Promise<void> {
  await echo.write(byte);
  if ((await echo.read(reply)) !== 1) throw new Error("echo server went away");
}
const value = { to: "user1@example.com", template: "welcome", locale: "en", attempts: 0 };

for (const kv of Object.values(stores)) {
  const op = kv.atomic();
  for (let i = 0; i < 50; i++) op.set(["page", i], value);
  op.set(["k"], value);
  await op.commit();
}

type Op = (kv: Deno.Kv) => Promise<unknown>;
const ops: Record<string, Op> = {
  "get": (kv) => kv.get(["k"]),
  "set": (kv) => kv.set(["w"], value),
  "list page(50)": async (kv) => {
    for await (const _ of kv.list({ prefix: ["page"] }, { limit: 50 })) { /* consume */ }
  },
};

async function time(kv: Deno.Kv, op: Op, n: number): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < n; i++) await op(kv);
  return (performance.now() - started) * 1000 / n; // microseconds per op
}

const names = Object.keys(stores);
const out: Record<string, Record<string, number[]>> = {};
for (const [name, op] of Object.entries(ops)) {
  const n = name === "list page(50)" ? Math.max(1, Math.floor(Number(block) / 5)) : Number(block);
  for (const kv of Object.values(stores)) await time(kv, op, n); // warm every path
  const samples: Record<string, number[]> = Object.fromEntries(names.map((s) => [s, [] as number[]]));
  for (let r = 0; r < Number(rounds); r++) {
    // rotate the order every round, so a drift in machine load hits every path alike
    const order = names.map((_, i) => names[(i + r) % names.length]);
    for (const s of order) samples[s].push(await time(stores[s], op, n));
  }
  out[name] = samples;
}
const pings: number[] = [];
for (let r = 0; r < Number(rounds); r++) {
  const started = performance.now();
  for (let i = 0; i < Number(block); i++) await ping();
  pings.push((performance.now() - started) * 1000 / Number(block));
}
out["ping"] = { ping: pings };
// the server process's CPU per get, route by route: a marker byte (2) before each route's gets and after the last
// makes the Python side note its process CPU time
const cpuGets = Number(block) * 5;
const mark = new Uint8Array([2]);
const servers = names.filter((s) => s !== "local");
for (const s of servers) {
  await echo.write(mark);
  await echo.read(reply);
  for (let i = 0; i < cpuGets; i++) await stores[s].get(["k"]);
}
await echo.write(mark);
await echo.read(reply);
out["cpu"] = { gets: [cpuGets], ...Object.fromEntries(servers.map((s, i) => [s, [i]])) };
echo.close();
for (const kv of Object.values(stores)) kv.close();
console.log(JSON.stringify(out));
