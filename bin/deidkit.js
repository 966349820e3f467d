#!/usr/bin/env node
import { runCli } from "../dist/cli/main.js";
import { removeStagingFolders } from "../dist/run/anonymize.js";

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    removeStagingFolders();
    process.stderr.write("\ndeidkit: interrupted; nothing was published\n");
    process.exit(130);
  });
}

process.exitCode = await runCli(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr });
