import { INestApplicationContext, Type } from '@nestjs/common';
import type { AppConfig } from './config/config';
import type { Logger } from './common/logger';

export interface CliContext {
  readonly config: AppConfig;
  readonly logger: Logger;
  /**
   * A Nest application context of these modules (and the shared infrastructure), without HTTP;
   * closed by the CLI when the command ends.
   */
  app(...modules: Type[]): Promise<INestApplicationContext>;
}

/** One verb of `npm run cli -- <name> [args]`; modules export theirs from `<module>.cli.ts`. */
export interface CliCommand {
  readonly name: string;
  readonly usage: string;
  readonly summary: string;
  run(args: readonly string[], context: CliContext): Promise<void>;
}

/** `--key value` and `--flag` arguments; positional ones are returned in `_`. */
export function parseFlags(args: readonly string[]): {
  _: string[];
  flags: Map<string, string | true>;
} {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const parts = arg.slice(2).split('=', 2);
    const key = parts[0] ?? '';
    const inline = parts.at(1);
    const next = args.at(i + 1);
    if (inline !== undefined) flags.set(key, inline);
    else if (next !== undefined && !next.startsWith('--')) {
      flags.set(key, next);
      i++;
    } else flags.set(key, true);
  }
  return { _: positional, flags };
}

/** Rows under headers, columns padded to their widest cell; numbers right-aligned. */
export function formatTable(
  headers: readonly string[],
  rows: readonly (readonly (string | number)[])[],
): string {
  const cells = [headers, ...rows].map((row) => row.map(String));
  const widths = headers.map((_, c) => Math.max(...cells.map((row) => (row[c] ?? '').length)));
  const numeric = headers.map(
    (_, c) => rows.length > 0 && rows.every((row) => typeof row[c] === 'number'),
  );
  return cells
    .map((row) =>
      row
        .map((cell, c) => (numeric[c] ? cell.padStart(widths[c]) : cell.padEnd(widths[c])))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
