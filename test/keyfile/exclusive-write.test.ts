import { mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterEach, beforeEach, describe, expect, test } from "vitest";

import { DeidError } from "../../src/errors.js";
import { writeFileExclusive } from "../../src/keyfile/exclusive-write.js";
import { generateIdentity, readKeyFile, writeKeyFile, type KeyIdentity } from "../../src/keyfile/index.js";

let dir: string;
let alice: KeyIdentity;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "deidkit-exclusive-"));
  alice = await generateIdentity();
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function captureError(action: () => Promise<unknown>): Promise<DeidError> {
  try {
    await action();
  } catch (error) {
    expect(error).toBeInstanceOf(DeidError);
    return error as DeidError;
  }
  throw new Error("expected the call to throw, but it returned");
}

describe("key file output", () => {
  test("mode is 0600 under any umask", async () => {
    for (const umask of [0, 0o022, 0o077]) {
      const path = join(dir, `umask-${umask}.dkey`);
      const previous = process.umask(umask);
      try {
        await writeKeyFile(path, { a: 1 }, { recipients: [alice.recipient] });
      } finally {
        process.umask(previous);
      }
      expect((await stat(path)).mode & 0o777, `umask ${umask.toString(8)}`).toBe(0o600);
    }
  });

  test("second write fails and keeps the first", async () => {
    const path = join(dir, "run.dkey");
    await writeKeyFile(path, { first: true }, { recipients: [alice.recipient] });
    const before = await readFile(path);
    const error = await captureError(() => writeKeyFile(path, { second: true }, { recipients: [alice.recipient] }));
    expect(error.code).toBe("OUTPUT_EXISTS");
    expect(error.path).toBe(path);
    expect(error.message).toContain(path);
    expect((await readFile(path)).equals(before)).toBe(true);
    expect((await readKeyFile(path, alice)).payload).toEqual({ first: true });
    expect(await readdir(dir)).toEqual(["run.dkey"]);
  });

  test("existing unrelated file is kept", async () => {
    const path = join(dir, "notes.txt");
    await writeFile(path, "keep me");
    const error = await captureError(() => writeKeyFile(path, { a: 1 }, { recipients: [alice.recipient] }));
    expect(error.code).toBe("OUTPUT_EXISTS");
    expect(await readFile(path, "utf8")).toBe("keep me");
  });

  test("dangling symlink is not followed", async () => {
    const path = join(dir, "link.dkey");
    const target = join(dir, "target.dkey");
    await symlink(target, path);
    const error = await captureError(() => writeKeyFile(path, { a: 1 }, { recipients: [alice.recipient] }));
    expect(error.code).toBe("OUTPUT_EXISTS");
    await expect(stat(target)).rejects.toMatchObject({ code: "ENOENT" });
  });

  test("concurrent writers: exactly one wins", async () => {
    const path = join(dir, "race.dkey");
    const results = await Promise.allSettled(
      [1, 2, 3, 4].map((writer) => writeKeyFile(path, { writer }, { recipients: [alice.recipient] })),
    );
    const fulfilled = results.filter((result) => result.status === "fulfilled");
    const rejected = results.filter((result): result is PromiseRejectedResult => result.status === "rejected");
    expect(fulfilled).toHaveLength(1);
    expect(rejected).toHaveLength(3);
    for (const result of rejected) {
      expect((result.reason as DeidError).code).toBe("OUTPUT_EXISTS");
    }
    expect(await readdir(dir)).toEqual(["race.dkey"]);
    const { payload } = await readKeyFile(path, alice);
    expect([1, 2, 3, 4]).toContain(payload.writer);
  });

  test("missing directory is an IO error", async () => {
    const path = join(dir, "absent", "run.dkey");
    const error = await captureError(() => writeKeyFile(path, { a: 1 }, { recipients: [alice.recipient] }));
    expect(error.code).toBe("IO");
    expect(error.path).toBe(path);
  });
});

describe("writeFileExclusive", () => {
  test("failed write leaves no file", async () => {
    const path = join(dir, "out.bin");
    await expect(
      writeFileExclusive(path, 0o600, async (handle) => {
        await handle.write(Buffer.from("partial"));
        throw new Error("writer failed");
      }),
    ).rejects.toThrow("writer failed");
    expect(await readdir(dir)).toEqual([]);
  });

  test("content and mode are published", async () => {
    const path = join(dir, "out.txt");
    await writeFileExclusive(path, 0o644, async (handle) => {
      await handle.writeFile("hello\n");
    });
    expect(await readFile(path, "utf8")).toBe("hello\n");
    expect((await stat(path)).mode & 0o777).toBe(0o644);
    expect(await readdir(dir)).toEqual(["out.txt"]);
  });
});
