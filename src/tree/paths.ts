import { realpath } from "node:fs/promises";
import { dirname, basename, resolve, sep } from "node:path";

import { DeidError } from "../errors.js";
import type { TextCleaner } from "../deid/cleaner.js";

/** Characters that may not appear in an output path component (POSIX and Windows). */
const UNSAFE_CHARACTERS = /[\u0000-\u001f\u007f/\\:*?"<>|]/g;

/**
 * Rewrites one path component: known identifiers are replaced, then any
 * character that could change the meaning of the path is replaced by "_",
 * so a component can never become "..", absolute, or contain a separator.
 */
export function rewriteComponent(component: string, cleaner: TextCleaner): string {
  // Placeholders such as "[NAME]" lose their brackets, which shells treat as globs.
  let out = cleaner
    .clean(component)
    .text.replace(/\[([A-Z]+)\]/g, "$1")
    .replace(UNSAFE_CHARACTERS, "_");
  if (out === "" || out === "." || out === "..") out = "_".repeat(Math.max(1, out.length));
  return fitComponent(out);
}

/** File systems limit a path component to 255 bytes; replacements can make a name longer. */
const MAX_COMPONENT_BYTES = 255;

/**
 * Shortens a component to at most 255 bytes, keeping its extension and
 * whole characters. The PathMapper adds a suffix when two names become equal.
 */
function fitComponent(component: string): string {
  if (Buffer.byteLength(component) <= MAX_COMPONENT_BYTES) return component;
  const dot = component.lastIndexOf(".");
  const extension = dot > 0 && component.length - dot <= 10 ? component.slice(dot) : "";
  let stem = component.slice(0, component.length - extension.length);
  // Room for the extension and a "~N" suffix added on collisions.
  while (Buffer.byteLength(stem) + Buffer.byteLength(extension) > MAX_COMPONENT_BYTES - 8) stem = stem.slice(0, -1);
  return stem + extension;
}

/** Maps input relative paths to unique output relative paths. */
export class PathMapper {
  private readonly used = new Map<string, string>();

  constructor(private readonly cleaner: TextCleaner) {}

  /** Returns the output path for `relativePath`, adding "~N" before the extension on a collision. */
  map(relativePath: string): string {
    const components = relativePath.split("/").map((component) => rewriteComponent(component, this.cleaner));
    let candidate = components.join("/");
    let counter = 2;
    while (this.used.has(candidate.toLowerCase()) && this.used.get(candidate.toLowerCase()) !== relativePath) {
      const name = components[components.length - 1];
      const dot = name.lastIndexOf(".");
      const stem = dot > 0 ? name.slice(0, dot) : name;
      const extension = dot > 0 ? name.slice(dot) : "";
      candidate = [...components.slice(0, -1), `${stem}~${counter}${extension}`].join("/");
      counter++;
    }
    this.used.set(candidate.toLowerCase(), relativePath);
    return candidate;
  }
}

async function resolveExisting(path: string): Promise<string> {
  // The output does not exist yet: resolve its nearest existing ancestor.
  let current = resolve(path);
  const missing: string[] = [];
  for (;;) {
    try {
      const real = await realpath(current);
      return resolve(real, ...missing.reverse());
    } catch {
      const parent = dirname(current);
      if (parent === current) return resolve(path);
      missing.push(basename(current));
      current = parent;
    }
  }
}

function isInside(child: string, parent: string): boolean {
  return child === parent || child.startsWith(parent.endsWith(sep) ? parent : parent + sep);
}

/** Rejects an output inside the input, an input inside the output, and identical paths. */
export async function checkPathsDisjoint(input: string, output: string, keyOut: string): Promise<void> {
  const realInput = await resolveExisting(input);
  const realOutput = await resolveExisting(output);
  const realKey = await resolveExisting(keyOut);
  if (isInside(realOutput, realInput) || isInside(realInput, realOutput)) {
    throw new DeidError("PATH_OVERLAP", "OUTPUT and INPUT overlap: one is inside the other", {
      hint: "choose an OUTPUT folder outside INPUT; deidkit never writes into its input",
    });
  }
  if (isInside(realKey, realOutput) || isInside(realKey, realInput)) {
    throw new DeidError("PATH_OVERLAP", "the key file would be inside INPUT or OUTPUT", {
      hint: "the key must stay apart from the shared data: pass --key-out with a path outside both",
    });
  }
}
