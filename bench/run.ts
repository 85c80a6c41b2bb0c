import 'reflect-metadata';
import path from 'node:path';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Benchmark, formatTable } from './lib/harness';

/** `npm run bench -- <name> [args]`: runs bench/<name>.bench.ts, prints its table, then one JSON line. */
async function main(): Promise<void> {
  const name = process.argv.at(2);
  const args = process.argv.slice(3);
  const available = readdirSync(__dirname)
    .filter((file) => file.endsWith('.bench.ts'))
    .map((file) => file.replace(/\.bench\.ts$/, ''));
  if (name === undefined || !available.includes(name)) {
    process.stderr.write(`usage: npm run bench -- <${available.join('|')}> [args]\n`);
    process.exit(2);
  }
  const file = path.join(__dirname, `${name}.bench.ts`);
  if (!existsSync(file)) throw new Error(`no benchmark ${file}`);
  // require, not import(): under module node16 import() stays a native ESM import, which cannot load .ts.
  const benchmark = (createRequire(__filename)(file) as { default: Benchmark }).default;
  process.stderr.write(`[bench] ${name}: ${benchmark.description}\n`);
  const started = Date.now();
  const result = await benchmark.run(args);
  process.stdout.write(`\n## ${result.title}\n\n${formatTable(result.rows)}\n\n`);
  for (const table of result.tables ?? []) {
    process.stdout.write(`### ${table.title}\n\n${formatTable(table.rows)}\n\n`);
  }
  for (const note of result.notes ?? []) process.stdout.write(`- ${note}\n`);
  const machine = { cpus: (await import('node:os')).cpus().length, node: process.version };
  process.stdout.write(
    `${JSON.stringify({ bench: name, ...result.figures, machine, wallSeconds: (Date.now() - started) / 1000 })}\n`,
  );
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(
      `bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
