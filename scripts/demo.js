#!/usr/bin/env node
// `npm start`: makes demo keys, de-identifies the bundled pipeline tree and
// shows the sealed key's header. Everything goes to demo-out/, which the
// demo recreates on every run.
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "demo-out");
const cli = join(root, "bin", "deidkit.js");

function deidkit(...args) {
  console.log(`\n$ deidkit ${args.join(" ")}`);
  const result = spawnSync(process.execPath, [cli, ...args], { cwd: root, stdio: "inherit" });
  return result.status ?? 1;
}

rmSync(out, { recursive: true, force: true });
if (deidkit("keygen", "--out", "demo-out/keys") !== 0) process.exit(1);
const status = deidkit("anonymize", "fixtures/pipeline", "demo-out/pipeline-deid", "--recipient", "demo-out/keys/recipient.pub");
if (status !== 0) process.exit(status);
deidkit("key", "inspect", "demo-out/pipeline-deid.deidkey");
console.log(`
The de-identified tree is in demo-out/pipeline-deid/ and the run report in
demo-out/pipeline-deid.report.json. To read the key (original identifiers):
  npx deidkit key decrypt demo-out/pipeline-deid.deidkey --identity demo-out/keys/identity.key --format csv`);
