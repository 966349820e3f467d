// Runs the built library's anonymize() in a child process and, when asked,
// kills that process with SIGKILL at a chosen point of the run, as a crash
// or `kill -9` would. Used by test/run/resume.test.ts.
//
// Usage: node anonymize-child.mjs SETTINGS_JSON
//   { input, output, recipient, secretFile, jobs, resume, killAt }
// killAt: "phase:NAME" (on that phase event), "learn:N" or "write:N" (when
// the N-th file of that pass is done), or "key-written" (right after the
// key file is complete).
import { readRecipientFile, writeKeyFile } from "../../dist/keyfile/index.js";
import { selectOptions } from "../../dist/profile/profile.js";
import { readSecret } from "../../dist/pseudonym/secret.js";
import { anonymize } from "../../dist/run/anonymize.js";

const settings = JSON.parse(process.argv[2]);
const killAt = settings.killAt ?? "";
const die = () => process.kill(process.pid, "SIGKILL");
const recipient = await readRecipientFile(settings.recipient);

try {
  const result = await anonymize({
    input: settings.input,
    output: settings.output,
    options: selectOptions("research", []),
    secret: await readSecret(settings.secretFile),
    jobs: settings.jobs ?? 1,
    resume: settings.resume === true,
    onEvent: (event) => {
      if (event.type === "phase" && killAt === `phase:${event.phase}`) die();
      if (event.type === "progress" && killAt === `${event.phase}:${event.done}`) die();
    },
    writeKey: async (path, payload, fields) => {
      await writeKeyFile(path, payload, { recipients: [recipient], fields, tool: "deidkit test" });
      if (killAt === "key-written") die();
    },
  });
  process.stdout.write(`${JSON.stringify({ ok: true, written: result.report.filesWritten })}\n`);
} catch (error) {
  process.stdout.write(`${JSON.stringify({ ok: false, code: error.code, message: error.message })}\n`);
  process.exitCode = 1;
}
