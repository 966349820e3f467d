/**
 * Canonical JSON for signing: object members sorted by name in UTF-16 code
 * unit order, no whitespace, strings escaped as JSON.stringify escapes them.
 * For the values a manifest contains (strings, safe integers, booleans, null,
 * arrays and objects) this is the output of RFC 8785 (JSON Canonicalization
 * Scheme), which specifies the same ordering and escaping.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === "boolean" || typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number") {
    // Integers only: other numbers have several spellings across serializers, which a signature must not depend on.
    if (!Number.isSafeInteger(value)) throw new TypeError("canonicalJson accepts only safe integers as numbers");
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object") {
    const members = Object.entries(value as Record<string, unknown>)
      .filter(([, member]) => member !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, member]) => `${JSON.stringify(name)}:${canonicalJson(member)}`);
    return `{${members.join(",")}}`;
  }
  throw new TypeError(`canonicalJson cannot serialize a ${typeof value}`);
}
