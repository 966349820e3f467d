/**
 * Files the user allows to pass unchanged (`--pass-through '*.png'`): their
 * content is copied as it is, only their name is de-identified. The report
 * lists each one, because deidkit has not checked what they contain.
 */
import { copyFile, constants } from "node:fs/promises";

import type { FormatHandler } from "./types.js";

/**
 * Converts a glob to a regular expression: `*` and `?` stay within one path
 * component, `**` crosses components. A pattern without "/" is matched
 * against the file name, otherwise against the whole relative path.
 */
export function globToRegExp(glob: string): RegExp {
  let pattern = "";
  for (let index = 0; index < glob.length; index++) {
    const character = glob[index];
    if (character === "*" && glob[index + 1] === "*") {
      pattern += ".*";
      index++;
    } else if (character === "*") {
      pattern += "[^/]*";
    } else if (character === "?") {
      pattern += "[^/]";
    } else {
      pattern += character.replace(/[.+^${}()|[\]\\]/g, "\\$&");
    }
  }
  return new RegExp(`^${pattern}$`, "i");
}

export function passThroughFormat(globs: readonly string[]): FormatHandler {
  const patterns = globs.map((glob) => ({ regexp: globToRegExp(glob), wholePath: glob.includes("/") }));
  return {
    name: "pass-through",
    matches(relativePath) {
      const name = relativePath.slice(relativePath.lastIndexOf("/") + 1);
      return patterns.some(({ regexp, wholePath }) => regexp.test(wholePath ? relativePath : name));
    },
    async write(path, targetPath) {
      await copyFile(path, targetPath, constants.COPYFILE_EXCL);
      return { replacements: 0 };
    },
  };
}
