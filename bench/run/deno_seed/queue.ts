/**
 * The seed's job queue (backend/lib/queue.ts of the change note), transcribed: add(), getJob() and listJobs(),
 * before the change (the name index holds job ids: listJobs gets every job, an N+1) and after it (the index holds
 * the whole job: listJobs reads the index alone and stops when the page is full).
 *
 * The note elides the job's creation ("... job creation code ...") and calculateScore's body; they are filled in
 * here as plainly as possible. Everything listJobs does is the note's code, line for line.
 */

export type JobStatus = "pending" | "running" | "completed" | "failed";

export interface Job<T = unknown> {
  id: string;
  name: string;
  data: T;
  status: JobStatus;
  priority: number;
  attempts: number;
  maxAttempts: number;
  createdAt: string;
  scheduledFor: string;
  startedAt?: string;
  completedAt?: string;
  error?: string;
}

export interface JobOptions {
  priority?: number;
  delay?: number;
  maxAttempts?: number;
}

/** "before": the seed before its change; "after": the seed after it. */
export type Variant = "before" | "after";

export class JobQueue {
  private kv: Deno.Kv | null = null;

  constructor(private readonly url: string, readonly variant: Variant) {}

  async init(): Promise<void> {
    if (!this.kv) this.kv = await Deno.openKv(this.url);
  }

  close(): void {
    this.kv?.close();
    this.kv = null;
  }

  async add<T>(name: string, data: T, options: JobOptions = {}): Promise<string> {
    await this.init();
    // (elided in the note: the job's creation)
    const now = new Date();
    const jobId = crypto.randomUUID();
    const job: Job<T> = {
      id: jobId,
      name,
      data,
      status: "pending",
      priority: options.priority ?? 0,
      attempts: 0,
      maxAttempts: options.maxAttempts ?? 3,
      createdAt: now.toISOString(),
      scheduledFor: new Date(now.getTime() + (options.delay ?? 0)).toISOString(),
    };

    // Store job
    await this.kv!.set(["jobs", jobId], job);

    // Add to pending queue (sorted by priority and scheduled time)
    const score = this.calculateScore(job);
    await this.kv!.set(["queue", "pending", score, jobId], jobId);

    if (this.variant === "before") {
      // Add to job name index
      await this.kv!.set(["jobs_by_name", name, jobId], jobId);
    } else {
      // Add to job name index WITH FULL JOB DATA (optimization for listJobs)
      await this.kv!.set(["jobs_by_name", name, jobId], job);
    }

    return jobId;
  }

  async getJob(jobId: string): Promise<Job | null> {
    await this.init();
    const entry = await this.kv!.get<Job>(["jobs", jobId]);
    return entry.value;
  }

  listJobs(options: { status?: JobStatus; name?: string; limit?: number; offset?: number } = {}): Promise<Job[]> {
    return this.variant === "before" ? this.listJobsBefore(options) : this.listJobsAfter(options);
  }

  /** listJobs before the change. */
  async listJobsBefore(
    options: { status?: JobStatus; name?: string; limit?: number; offset?: number } = {},
  ): Promise<Job[]> {
    await this.init();
    const { status, name, limit = 50, offset = 0 } = options;

    const jobs: Job[] = [];
    let count = 0;

    // If filtering by name, use the name index
    if (name) {
      const prefix = ["jobs_by_name", name];
      const iter = this.kv!.list<string>({ prefix });

      for await (const entry of iter) {
        const jobId = entry.value;
        const job = await this.getJob(jobId); // N+1 query

        if (job && (!status || job.status === status)) {
          if (count >= offset && jobs.length < limit) {
            jobs.push(job);
          }
          count++;
        }
      }
    } else {
      // Otherwise, scan all jobs
      const prefix = ["jobs"];
      const iter = this.kv!.list<Job>({ prefix });

      for await (const entry of iter) {
        const job = entry.value;
        if (!status || job.status === status) {
          if (count >= offset && jobs.length < limit) {
            jobs.push(job);
          }
          count++;
        }
      }
    }

    return jobs;
  }

  /** listJobs after the change. */
  async listJobsAfter(
    options: { status?: JobStatus; name?: string; limit?: number; offset?: number } = {},
  ): Promise<Job[]> {
    await this.init();
    const { status, name, limit = 50, offset = 0 } = options;

    const jobs: Job[] = [];
    let count = 0;

    // If filtering by name, use the name index
    if (name) {
      const prefix = ["jobs_by_name", name];
      const iter = this.kv!.list<Job>({ prefix });

      for await (const entry of iter) {
        const job = entry.value; // Already have full data!

        // Verify job still exists (index might be stale)
        if (!job || typeof job !== "object" || !job.id) {
          // Clean up stale index entry
          await this.kv!.delete(entry.key);
          continue;
        }

        if (!status || job.status === status) {
          if (count >= offset && jobs.length < limit) {
            jobs.push(job);
          }
          count++;

          if (jobs.length >= limit) {
            break; // Early exit optimization
          }
        }
      }
    } else {
      // Otherwise, scan all jobs
      const prefix = ["jobs"];
      const iter = this.kv!.list<Job>({ prefix });

      for await (const entry of iter) {
        const job = entry.value;
        if (!status || job.status === status) {
          if (count >= offset && jobs.length < limit) {
            jobs.push(job);
          }
          count++;

          if (jobs.length >= limit) {
            break; // Early exit optimization
          }
        }
      }
    }

    return jobs;
  }

  private calculateScore(job: Job): number {
    // (elided in the note) higher priority first, then earlier scheduled time
    return -job.priority * 1e13 + Date.parse(job.scheduledFor);
  }
}
