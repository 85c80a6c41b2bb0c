import { readFileSync } from 'node:fs';
import path from 'node:path';

export interface ConsoleAsset {
  readonly type: string;
  readonly body: Buffer;
}

const PUBLIC = path.join(__dirname, 'public');
// The chart library ships its browser bundle in the package; served as is, never rebuilt.
const CHART_JS = path.join(path.dirname(require.resolve('chart.js')), 'chart.umd.min.js');

/** Every file the console serves, read once: nothing outside this list is reachable. */
const ASSETS: ReadonlyMap<string, ConsoleAsset> = new Map(
  [
    ['index.html', path.join(PUBLIC, 'index.html'), 'text/html; charset=utf-8'],
    ['console.js', path.join(PUBLIC, 'console.js'), 'text/javascript; charset=utf-8'],
    ['console.css', path.join(PUBLIC, 'console.css'), 'text/css; charset=utf-8'],
    ['chart.umd.min.js', CHART_JS, 'text/javascript; charset=utf-8'],
  ].map(([name, file, type]) => [name, { type, body: readFileSync(file) }]),
);

/** Headers of every console response: its own scripts and styles only. */
export const CONSOLE_HEADERS: Readonly<Record<string, string>> = {
  'cache-control': 'no-cache',
  'x-content-type-options': 'nosniff',
  'content-security-policy':
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
};

/** A console file by name (`index.html` for the page itself); undefined for anything else. */
export function consoleAsset(name: string): ConsoleAsset | undefined {
  return ASSETS.get(name);
}
