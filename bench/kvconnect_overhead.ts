/**
 * The KV Connect server's added cost, timed inside one Deno process: the same ops on Deno's own local SQLite KV and
 * on `qbench serve` (in front of SQLite), in alternating blocks. Prints one JSON line of per-op microseconds.
 *
 *   deno run --unstable-kv --allow-net --allow-env --allow-read --allow-write kvconnect_overhead.ts \
 *     URL PATH ROUNDS BLOCK MEMORY_URL ECHO_PORT
 *
 * URL: the server in front of SQLite; PATH: Deno's own SQLite file; MEMORY_URL: a server in front of memory:
 * (what the server costs without its SQLite backend's thread hop); ECHO_PORT: a Python TCP echo server, whose
 * one-byte ping-pong is the floor of any round trip between Deno and a Python process on this machine.
 */

const [url, path, rounds, block, memoryUrl, echoPort] = Deno.args;
const echo = await Deno.connect({ hostname: "127.0.0.1", port: Number(echoPort) });
echo.setNoDelay(true);
const byte = new Uint8Array([1]);
const reply = new Uint8Array(1);
async function ping(): Promise<void> {
  await echo.write(byte);
  if ((await echo.read(reply)) !== 1) throw new Error("echo server went away");
}
const remote = await Deno.openKv(url);
const local = await Deno.openKv(path);
const memory = await Deno.openKv(memoryUrl);
const value = { to: "user1@example.com", template: "welcome", locale: "en", attempts: 0 };

for (const kv of [remote, local, memory]) {
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

const out: Record<string, { local: number[]; served: number[]; memory: number[]; ping?: number[] }> = {};
for (const [name, op] of Object.entries(ops)) {
  const n = name === "list page(50)" ? Math.max(1, Math.floor(Number(block) / 5)) : Number(block);
  await time(local, op, n); // warm both paths
  await time(remote, op, n);
  await time(memory, op, n);
  const samples = { local: [] as number[], served: [] as number[], memory: [] as number[] };
  for (let r = 0; r < Number(rounds); r++) {
    if (r % 2 === 0) { // alternate the order, so a drift in machine load hits every path alike
      samples.local.push(await time(local, op, n));
      samples.served.push(await time(remote, op, n));
      samples.memory.push(await time(memory, op, n));
    } else {
      samples.memory.push(await time(memory, op, n));
      samples.served.push(await time(remote, op, n));
      samples.local.push(await time(local, op, n));
    }
  }
  out[name] = samples;
}
const pings: number[] = [];
for (let r = 0; r < Number(rounds); r++) {
  const started = performance.now();
  for (let i = 0; i < Number(block); i++) await ping();
  pings.push((performance.now() - started) * 1000 / Number(block));
}
out["get"].ping = pings;
echo.close();
remote.close();
local.close();
memory.close();
console.log(JSON.stringify(out));
