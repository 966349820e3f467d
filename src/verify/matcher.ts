/**
 * Finds original identifiers from a decrypted key in text. Findings name the
 * category and the index of the identifier in the key, never its text, so
 * that they can be printed and stored safely.
 */
import { hasCjk } from "../deid/cleaner.js";

export interface KeyIdentifier {
  text: string;
  category: string;
}

export interface Match {
  category: string;
  /** Index into the identifier list the matcher was built from. */
  identifier: number;
}

/** Shorter identifiers match too much ordinary text to be searched for. */
const MIN_LENGTH = 3;

/** The same thresholds as anonymize's cleaning: two characters of Chinese, Japanese or Korean suffice. */
const MIN_CJK_LENGTH = 2;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export class IdentifierMatcher {
  private readonly pattern: RegExp | undefined;
  private readonly indexByText = new Map<string, number>();

  constructor(readonly identifiers: readonly KeyIdentifier[]) {
    identifiers.forEach((identifier, index) => {
      const text = identifier.text.trim();
      const minimum = hasCjk(text) ? MIN_CJK_LENGTH : MIN_LENGTH;
      if (text.length >= minimum && !this.indexByText.has(text.toLowerCase())) this.indexByText.set(text.toLowerCase(), index);
    });
    const texts = [...this.indexByText.keys()].sort((a, b) => b.length - a.length);
    const bounded = texts.filter((text) => !hasCjk(text)).map(escapeRegExp);
    const unbounded = texts.filter(hasCjk).map(escapeRegExp);
    const alternatives: string[] = [];
    // Chinese, Japanese and Korean run words together, so those identifiers match without word boundaries.
    if (unbounded.length) alternatives.push(`(?:${unbounded.join("|")})`);
    // UIDs contain dots, so a UID that continues with more components is a different UID. A date may
    // be followed by an ISO 8601 time ("2019-04-18T10:15"), so "T" and a digit end a word too.
    if (bounded.length) alternatives.push(`(?<![\\p{L}\\p{N}])(?:${bounded.join("|")})(?!(?![Tt]\\d)[\\p{L}\\p{N}]|\\.\\d)`);
    this.pattern = alternatives.length ? new RegExp(alternatives.join("|"), "giu") : undefined;
  }

  /** Returns every identifier found in `text`, once each. */
  find(text: string): Match[] {
    if (!this.pattern || text.length === 0) return [];
    const found = new Map<number, Match>();
    for (const match of text.matchAll(this.pattern)) {
      const index = this.indexByText.get(match[0].toLowerCase());
      if (index !== undefined && !found.has(index)) found.set(index, { identifier: index, category: this.identifiers[index].category });
    }
    return [...found.values()];
  }

  /**
   * Returns `text` with every identifier replaced by "[#N]", N being its
   * index, so that a file name or archive member name can be printed.
   */
  redact(text: string): string {
    if (!this.pattern) return text;
    return text.replace(this.pattern, (match) => `[#${this.indexByText.get(match.toLowerCase()) ?? "?"}]`);
  }
}
