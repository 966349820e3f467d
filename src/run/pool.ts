/**
 * Spreads file tasks over worker threads. Results come back in task order,
 * so the run's outcome does not depend on the number of workers.
 */
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";

import type { Term } from "../deid/identifiers.js";
import type { LearnResult, RunSetup, WriteResult, WriteTask } from "./tasks.js";
import type { WorkerRequest } from "./worker.js";

type Task = { kind: "learn"; path: string; relativePath: string } | { kind: "write"; task: WriteTask };

const WORKER_URL = new URL("./worker.js", import.meta.url);

/**
 * The default of --jobs: one thread fewer than the machine has cores, since
 * the main thread and the kernel's copying need one. On the 2-core
 * benchmark machine one thread was as fast as two on the medium tree and
 * faster on trees of many small files (docs/performance.md).
 */
export function defaultJobs(): number {
  return Math.max(1, availableParallelism() - 1);
}

/** Worker threads need the compiled worker; when running from TypeScript sources there is none. */
export function workersAvailable(): boolean {
  return WORKER_URL.protocol === "file:" && existsSync(fileURLToPath(WORKER_URL));
}

export class WorkerPool {
  private readonly workers: Worker[];
  private nextId = 0;
  private readonly pending = new Map<number, { resolve(value: unknown): void; reject(error: unknown): void }>();

  constructor(size: number, setup: RunSetup) {
    this.workers = Array.from({ length: size }, () => {
      const worker = new Worker(WORKER_URL, { workerData: setup });
      worker.on("message", (message: { id: number; result: unknown }) => {
        this.pending.get(message.id)?.resolve(message.result);
        this.pending.delete(message.id);
      });
      worker.on("error", (error) => this.failAll(error));
      return worker;
    });
  }

  private failAll(error: unknown): void {
    for (const waiter of this.pending.values()) waiter.reject(error);
    this.pending.clear();
  }

  private send(worker: Worker, request: { kind: WorkerRequest["kind"] } & Record<string, unknown>): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ ...request, id });
    });
  }

  /** Sends the run's identifiers to every worker before the write pass. */
  async useTerms(terms: Term[]): Promise<void> {
    await Promise.all(this.workers.map((worker) => this.send(worker, { kind: "terms", terms })));
  }

  /**
   * Runs the tasks with two in flight per worker, so that a worker finds its
   * next task waiting when it finishes one. Results keep task order.
   * `onResult` gets each result as it arrives. When it throws, no further
   * task is sent, and the error is thrown once the tasks in flight are done.
   */
  async run<R extends LearnResult | WriteResult>(tasks: readonly Task[], onResult: (index: number, result: R) => void): Promise<R[]> {
    const results = new Array<R>(tasks.length);
    let next = 0;
    let stopped: { error: unknown } | undefined;
    const feed = async (worker: Worker): Promise<void> => {
      while (next < tasks.length && !stopped) {
        const index = next++;
        const result = (await this.send(worker, tasks[index])) as R;
        results[index] = result;
        try {
          onResult(index, result);
        } catch (error) {
          stopped ??= { error };
        }
      }
    };
    await Promise.all(this.workers.flatMap((worker) => [feed(worker), feed(worker)]));
    if (stopped) throw stopped.error;
    return results;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }
}

/** Runs the tasks one after the other in this thread, with the same callback contract as WorkerPool.run. */
export async function runLocally<T, R>(items: readonly T[], task: (item: T) => Promise<R>, onResult: (index: number, result: R) => void): Promise<R[]> {
  const results: R[] = [];
  for (const [index, item] of items.entries()) {
    const result = await task(item);
    results.push(result);
    onResult(index, result);
  }
  return results;
}

/** Turns a progress callback that takes a count into a result callback. */
export function counting(onDone: (done: number) => void, before = 0): (index: number, result: unknown) => void {
  let done = before;
  return () => onDone(++done);
}
