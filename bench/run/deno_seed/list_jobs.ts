/**
 * Drives the seed's queue (queue.ts) for qbench: seed a store, list once, or time listJobs. Prints one JSON line.
 *
 *   deno run --unstable-kv --allow-net --allow-env list_jobs.ts URL before|after seed N K
 *   ... list_jobs.ts URL before|after list NAME LIMIT OFFSET [STATUS]
 *   ... list_jobs.ts URL before|after time NAME LIMIT OFFSET STATUS|- WARMUPS VALUES LOOPS
 *
 * seed adds N jobs over K names ("email-0", "email-1", ... in turn, as bench/seeding.py names them); time prints
 * the seconds per listJobs call of each value (each value the mean of LOOPS calls) measured inside Deno.
 */

import { type JobStatus, JobQueue, type Variant } from "./queue.ts";

const [url, variant, command, ...args] = Deno.args;
if (!url || (variant !== "before" && variant !== "after") || !command) {
  console.error("usage: list_jobs.ts URL before|after seed|list|time ...");
  Deno.exit(2);
}
const queue = new JobQueue(url, variant as Variant);

function listOptions(name: string, limit: string, offset: string, status?: string) {
  return {
    name,
    limit: Number(limit),
    offset: Number(offset),
    status: status && status !== "-" ? status as JobStatus : undefined,
  };
}

if (command === "seed") {
  const [n, k] = args.map(Number);
  for (let i = 0; i < n; i++) {
    await queue.add(`email-${i % k}`, { to: `user${i}@example.com`, template: "welcome", locale: "en" });
  }
  console.log(JSON.stringify({ added: n }));
} else if (command === "list") {
  const [name, limit, offset, status] = args;
  const jobs = await queue.listJobs(listOptions(name, limit, offset, status));
  console.log(JSON.stringify({ listed: jobs.length, ids: jobs.map((j) => j.id) }));
} else if (command === "time") {
  const [name, limit, offset, status, warmups, values, loops] = args;
  const options = listOptions(name, limit, offset, status);
  await queue.init(); // opening the store (the metadata exchange) is not part of a call
  const measure = async () => {
    const started = performance.now();
    for (let i = 0; i < Number(loops); i++) await queue.listJobs(options);
    return (performance.now() - started) / 1000 / Number(loops);
  };
  const warm: number[] = [];
  for (let i = 0; i < Number(warmups); i++) warm.push(await measure());
  const timed: number[] = [];
  for (let i = 0; i < Number(values); i++) timed.push(await measure());
  console.log(JSON.stringify({ warmups: warm, values: timed, loops: Number(loops) }));
} else {
  console.error(`unknown command ${command}`);
  Deno.exit(2);
}
queue.close();
