/**
 * The only writer to the terminal. Every line starts with "deidkit:" and a
 * label (error, warning, hint); results go to stdout, everything else to
 * stderr. Messages passed here must never contain values read from input
 * files: callers print de-identified paths and reason codes only.
 */
export interface CliStreams {
  stdout: { write(text: string): unknown; isTTY?: boolean };
  stderr: { write(text: string): unknown; isTTY?: boolean; columns?: number };
}

/** A redraw per file wrote 400 KB to the terminal for a tree of 7,800 files. */
const PROGRESS_INTERVAL_MS = 100;

/** "1 file", "2 files". */
export function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

export class CliOutput {
  private progressShown = false;
  private progressDrawnAt = -Infinity;

  constructor(
    readonly streams: CliStreams,
    private readonly quiet = false,
  ) {}

  /** Writes a result line (or a JSON document) to stdout. */
  result(text: string): void {
    this.clearProgress();
    this.streams.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
  }

  info(text: string): void {
    if (this.quiet) return;
    this.clearProgress();
    this.streams.stderr.write(`deidkit: ${text}\n`);
  }

  warning(text: string): void {
    this.clearProgress();
    this.streams.stderr.write(`deidkit: warning: ${text}\n`);
  }

  error(text: string): void {
    this.clearProgress();
    this.streams.stderr.write(`deidkit: error: ${text}\n`);
  }

  hint(text: string): void {
    this.clearProgress();
    this.streams.stderr.write(`deidkit: hint: ${text}\n`);
  }

  /** Draws a one-line progress bar, only when stderr is a terminal, at most every PROGRESS_INTERVAL_MS and at the end. */
  progress(label: string, done: number, total: number): void {
    if (this.quiet || !this.streams.stderr.isTTY || total === 0) return;
    const now = performance.now();
    if (done < total && now - this.progressDrawnAt < PROGRESS_INTERVAL_MS) return;
    this.progressDrawnAt = now;
    const width = Math.max(10, Math.min(40, (this.streams.stderr.columns ?? 80) - 40));
    const filled = Math.round((done / total) * width);
    const bar = "#".repeat(filled) + "-".repeat(width - filled);
    this.streams.stderr.write(`\r\x1b[2Kdeidkit: ${label} [${bar}] ${done}/${total}`);
    this.progressShown = true;
  }

  clearProgress(): void {
    if (!this.progressShown) return;
    this.streams.stderr.write("\r\x1b[2K");
    this.progressShown = false;
  }
}
