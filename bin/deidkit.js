#!/usr/bin/env node
import { runCli } from "../dist/cli/main.js";
import { removeStagingFolders } from "../dist/run/unpublished.js";

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    process.stderr.write("\ndeidkit: interrupted; nothing was published\n");
    for (const path of removeStagingFolders()) {
      process.stderr.write(`deidkit: warning: could not remove the unpublished folder ${path}; delete it by hand\n`);
    }
    process.exit(130);
  });
}

// A closed pipe (`deidkit profile | head`) ends the output, not the program with a stack trace.
process.stdout.on("error", (error) => {
  if (error.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw error;
});

process.exitCode = await runCli(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr });
