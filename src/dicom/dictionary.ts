import { DICTIONARY_TEXT } from "./generated/dictionary.js";
import { isPrivateCreatorTag, isPrivateTag, tagElement, tagGroup, tagKey, type Tag } from "./tags.js";

export interface DictionaryEntry {
  vr: string;
  keyword: string;
}

let entries: Map<number, DictionaryEntry> | undefined;

function load(): Map<number, DictionaryEntry> {
  const map = new Map<number, DictionaryEntry>();
  for (const line of DICTIONARY_TEXT.split("\n")) {
    if (line.length === 0) continue;
    const [key, vr, keyword] = line.split(":");
    map.set(Number.parseInt(key, 16) >>> 0, { vr, keyword });
  }
  return map;
}

/**
 * Looks up a standard tag in the PS3.6 data dictionary. Repeating groups
 * 50xx and 60xx (curves and overlays) resolve to their base group.
 */
export function lookupTag(tag: Tag): DictionaryEntry | undefined {
  entries ??= load();
  const direct = entries.get(tag);
  if (direct) return direct;
  const group = tagGroup(tag);
  if ((group & 0xff00) === 0x5000 || (group & 0xff00) === 0x6000) {
    return entries.get((((group & 0xff00) << 16) | tagElement(tag)) >>> 0);
  }
  return undefined;
}

/** The VR an implicit VR reader assigns to a tag (PS3.5 section 7.1.3). */
export function implicitVr(tag: Tag): string {
  if (tagElement(tag) === 0x0000) return "UL";
  if (isPrivateCreatorTag(tag)) return "LO";
  if (isPrivateTag(tag)) return "UN";
  return lookupTag(tag)?.vr ?? "UN";
}

export function keywordOf(tag: Tag): string {
  return lookupTag(tag)?.keyword ?? tagKey(tag);
}
