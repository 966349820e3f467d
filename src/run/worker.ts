/** A worker thread of `anonymize --jobs N`: runs file tasks sent by the pool. */
import { parentPort, workerData } from "node:worker_threads";

import { initSodium } from "../pseudonym/keyed-hash.js";
import type { Term } from "../deid/identifiers.js";
import { TaskRunner, type RunSetup, type WriteTask } from "./tasks.js";

export type WorkerRequest =
  | { id: number; kind: "learn"; path: string; relativePath: string }
  | { id: number; kind: "terms"; terms: Term[] }
  | { id: number; kind: "write"; task: WriteTask };

await initSodium();
const runner = new TaskRunner(workerData as RunSetup);

async function handle(request: WorkerRequest): Promise<unknown> {
  if (request.kind === "learn") return runner.learn(request.path, request.relativePath);
  if (request.kind === "write") return runner.write(request.task);
  runner.useTerms(request.terms);
  return true;
}

// The pool sends the next task before this one is done. Tasks run one at a
// time, in the order they came, because the runner keeps per-file state.
let queue: Promise<void> = Promise.resolve();
parentPort!.on("message", (request: WorkerRequest) => {
  queue = queue
    .then(async () => {
      parentPort!.postMessage({ id: request.id, result: await handle(request) });
    })
    .catch((error: unknown) => {
      // A failure outside the runner's own handling ends this worker, which
      // the pool reports as a failed run, rather than stalling every later task.
      process.nextTick(() => {
        throw error;
      });
    });
});
