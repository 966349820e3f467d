/**
 * Names for files that are left out, used by anonymize and scan alike. The
 * own name of such a file, and a folder that will not be published, may contain
 * identifiers that the run never learnt, because the file that carries them
 * could not be read, so neither is ever shown.
 */

/** Returns every folder that contains a written file, and its ancestors ("" is the root itself). */
export function publishedFolders(outputPaths: Iterable<string>): Set<string> {
  const folders = new Set<string>([""]);
  for (const path of outputPaths) {
    const parts = path.split("/").slice(0, -1);
    for (let depth = 1; depth <= parts.length; depth++) folders.add(parts.slice(0, depth).join("/"));
  }
  return folders;
}

/**
 * Names a file that would be left out as "file-N.ext", N being its position
 * (from 1) among INPUT's entries in byte order of their paths, inside its
 * de-identified folder when that folder is published and inside
 * "(unpublished folder)" otherwise.
 * The key maps each one back to its input path.
 */
export function leftOutName(outputPath: string, index: number, published: ReadonlySet<string>): string {
  const slash = outputPath.lastIndexOf("/");
  const folder = slash < 0 ? "" : outputPath.slice(0, slash);
  const extension = /\.[A-Za-z0-9]{1,5}$/.exec(outputPath.slice(slash + 1))?.[0] ?? "";
  const name = `file-${index + 1}${extension}`;
  if (folder === "") return name;
  return published.has(folder) ? `${folder}/${name}` : `(unpublished folder)/${name}`;
}
