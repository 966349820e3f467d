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

parentPort!.on("message", async (request: WorkerRequest) => {
  let result: unknown;
  if (request.kind === "learn") result = await runner.learn(request.path, request.relativePath);
  else if (request.kind === "write") result = await runner.write(request.task);
  else {
    runner.useTerms(request.terms);
    result = true;
  }
  parentPort!.postMessage({ id: request.id, result });
});
