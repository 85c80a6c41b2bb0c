/** What every benchmark returns: rows for a readable table and the figures for the JSON line. */
export interface BenchResult {
  readonly title: string;
  readonly rows: readonly Record<string, string | number>[];
  /** Further tables, printed after the first. */
  readonly tables?: readonly {
    readonly title: string;
    readonly rows: readonly Record<string, string | number>[];
  }[];
  readonly figures: Readonly<Record<string, unknown>>;
  readonly notes?: readonly string[];
}

export interface Benchmark {
  readonly description: string;
  run(args: readonly string[]): Promise<BenchResult>;
}

function cell(value: string | number): string {
  if (typeof value === 'string') return value;
  if (Number.isInteger(value)) return value.toLocaleString('en-US');
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toPrecision(3);
}

/** A plain-text table: one column per key of the first row. */
export function formatTable(rows: readonly Record<string, string | number>[]): string {
  if (rows.length === 0) return '(no rows)';
  const columns = Object.keys(rows[0] ?? {});
  const cells = rows.map((row) => columns.map((column) => cell(row[column] ?? '')));
  const widths = columns.map((column, i) =>
    Math.max(column.length, ...cells.map((line) => (line[i] ?? '').length)),
  );
  const line = (values: readonly string[]) =>
    `| ${values.map((value, i) => (i === 0 ? value.padEnd(widths[i] ?? 0) : value.padStart(widths[i] ?? 0))).join(' | ')} |`;
  return [
    line(columns),
    `|${widths.map((w, i) => (i === 0 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`,
    ...cells.map(line),
  ].join('\n');
}

export function progress(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

/** `--name N` from a benchmark's arguments, an integer of at least `min`, else `fallback`. */
export function integerFlag(
  args: readonly string[],
  flag: string,
  fallback: number,
  min = 0,
): number {
  const index = args.indexOf(`--${flag}`);
  if (index === -1) return fallback;
  const parsed = Number(args[index + 1]);
  if (!Number.isInteger(parsed) || parsed < min)
    throw new Error(`--${flag} needs an integer >= ${min}`);
  return parsed;
}
