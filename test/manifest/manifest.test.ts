// Signed manifests: anonymize --sign-key writes one, and verify --manifest
// finds every changed, added or missing file and any bad signature.

import { createHash } from "node:crypto";
import { appendFile, readFile, rm, stat, writeFile } from "node:fs/promises";

import sodium from "libsodium-wrappers-sumo";
import { afterEach, beforeEach, describe, expect, test } from "vitest";

import { canonicalJson } from "../../src/manifest/canonical-json.js";
import { readManifest, SIGNATURE_CONTEXT, type Manifest } from "../../src/manifest/manifest.js";
import { readSigningKeyFile } from "../../src/manifest/signing-key.js";
import { runDeidkit } from "../helpers/cli.js";
import { listFiles, makeTestTree, type TestTree } from "../helpers/tree.js";

async function signedRun(tree: TestTree): Promise<void> {
  expect((await runDeidkit(["keygen", "--signing", "--out", tree.at("signing")])).code).toBe(0);
  const run = await runDeidkit([
    "anonymize", tree.input, tree.at("out"), "--recipient", tree.recipientPath, "--secret", tree.secretPath,
    "--sign-key", tree.at("signing", "signing.key"), "-q",
  ]);
  expect(run.code, run.stderr).toBe(0);
}

function verifyArgs(tree: TestTree, signer = tree.at("signing", "signing.pub")): string[] {
  return ["verify", tree.at("out"), "--manifest", tree.at("out.manifest.json"), "--signer", signer];
}

describe("signed manifest", () => {
  let tree: TestTree;
  let files: string[];

  beforeEach(async () => {
    tree = await makeTestTree({ include: ["AB-0042", "README.txt"] });
    await signedRun(tree);
    files = await listFiles(tree.at("out"));
  });

  afterEach(async () => {
    await tree.cleanup();
  });

  test("keygen --signing writes a 0600 secret and a public file", async () => {
    expect((await stat(tree.at("signing", "signing.key"))).mode & 0o777).toBe(0o600);
    const key = await readSigningKeyFile(tree.at("signing", "signing.key"));
    expect(await readFile(tree.at("signing", "signing.pub"), "utf8")).toContain(key.signer.text);
    const again = await runDeidkit(["keygen", "--signing", "--out", tree.at("signing")]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already exists/);
  });

  test("manifest lists every output file with its SHA-256", async () => {
    const manifest = await readManifest(tree.at("out.manifest.json"));
    expect(manifest.files.map((file) => file.path)).toEqual(files);
    for (const file of manifest.files) {
      const bytes = await readFile(tree.at("out", ...file.path.split("/")));
      expect(file.size).toBe(bytes.length);
      expect(file.sha256).toBe(createHash("sha256").update(bytes).digest("hex"));
    }
    expect(manifest.run.filesWritten).toBe(files.length);
    expect(JSON.stringify(manifest)).not.toContain("AB-0042");
  });

  test("signature is Ed25519 over the canonical body", async () => {
    await sodium.ready;
    const manifest = JSON.parse(await readFile(tree.at("out.manifest.json"), "utf8")) as Manifest;
    const { signature, ...body } = manifest;
    const key = await readSigningKeyFile(tree.at("signing", "signing.key"));
    const message = Buffer.from(SIGNATURE_CONTEXT + canonicalJson(body), "utf8");
    expect(sodium.crypto_sign_verify_detached(Buffer.from(signature.value, "base64"), message, key.signer.publicKey)).toBe(true);
  });

  test("unchanged output verifies", async () => {
    const run = await runDeidkit(verifyArgs(tree));
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stderr).toMatch(/manifest: valid signature; \d+ files listed, 0 changed, added or missing/);
  });

  test("a modified byte is found", async () => {
    const target = files.find((file) => file.endsWith(".dcm"))!;
    const path = tree.at("out", ...target.split("/"));
    const bytes = await readFile(path);
    bytes[bytes.length - 1] ^= 0x01;
    await writeFile(path, bytes);
    const run = await runDeidkit(verifyArgs(tree));
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(`error   ${target}  manifest  manifest-changed: the SHA-256 differs from the manifest`);
  });

  test("an added file is found", async () => {
    await writeFile(tree.at("out", "extra.txt"), "added later\n");
    const run = await runDeidkit(verifyArgs(tree));
    expect(run.code).toBe(1);
    expect(run.stdout).toContain("error   extra.txt  manifest  manifest-added");
  });

  test("a removed file is found", async () => {
    const target = files[0]!;
    await rm(tree.at("out", ...target.split("/")));
    const run = await runDeidkit(verifyArgs(tree));
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(`error   ${target}  manifest  manifest-missing`);
  });

  test("a grown file is found by size", async () => {
    const target = files[0]!;
    await appendFile(tree.at("out", ...target.split("/")), "x");
    const run = await runDeidkit(verifyArgs(tree));
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/manifest-changed: the size is \d+ bytes, the manifest says \d+/);
  });

  test("a wrong signer fails", async () => {
    expect((await runDeidkit(["keygen", "--signing", "--out", tree.at("other")])).code).toBe(0);
    const run = await runDeidkit(verifyArgs(tree, tree.at("other", "signing.pub")));
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/manifest-signature: the manifest was signed by [0-9a-f]{16}, not by the given signer [0-9a-f]{16}/);
    expect(run.stderr).toMatch(/INVALID signature/);
  });

  test("an edited manifest fails the signature", async () => {
    const manifest = JSON.parse(await readFile(tree.at("out.manifest.json"), "utf8")) as Manifest;
    // An edited hash must fail the signature, even though no output file changed.
    manifest.files[0]!.sha256 = "0".repeat(64);
    await rm(tree.at("out.manifest.json"));
    await writeFile(tree.at("out.manifest.json"), JSON.stringify(manifest));
    const run = await runDeidkit(verifyArgs(tree));
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/manifest-signature: the signature does not match/);
  });

  test("--manifest without --signer exits 2", async () => {
    const run = await runDeidkit(["verify", tree.at("out"), "--manifest", tree.at("out.manifest.json")]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--manifest and --signer go together/);
  });

  test("the secret key as --signer exits 2", async () => {
    const run = await runDeidkit(verifyArgs(tree, tree.at("signing", "signing.key")));
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/this is a secret signing key, not the public signer/);
    expect(run.stderr).not.toMatch(/DEIDKIT-SIGNING-KEY-1-[A-Z2-7]/);
  });

  test("an existing manifest stops anonymize before it writes", async () => {
    const run = await runDeidkit([
      "anonymize", tree.input, tree.at("out2"), "--recipient", tree.recipientPath,
      "--sign-key", tree.at("signing", "signing.key"),
    ]);
    expect(run.code, run.stderr).toBe(0);
    await rm(tree.at("out2"), { recursive: true });
    await rm(tree.at("out2.deidkey"));
    await rm(tree.at("out2.report.json"));
    const blocked = await runDeidkit([
      "anonymize", tree.input, tree.at("out2"), "--recipient", tree.recipientPath,
      "--sign-key", tree.at("signing", "signing.key"),
    ]);
    expect(blocked.code).toBe(2);
    expect(blocked.stderr).toMatch(/out2\.manifest\.json: file already exists/);
    await expect(stat(tree.at("out2"))).rejects.toThrow();
  });
});

describe("canonical JSON", () => {
  test("sorts members and drops whitespace", () => {
    expect(canonicalJson({ b: [1, { d: true, c: null }], a: "é\n" })).toBe('{"a":"é\\n","b":[1,{"c":null,"d":true}]}');
  });

  test("rejects fractions", () => {
    expect(() => canonicalJson({ size: 1.5 })).toThrow(/safe integers/);
  });
});
