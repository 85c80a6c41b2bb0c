/** `npm run docs:config`: writes docs/configuration.md from the config schema and its docs. */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { renderConfigDocs } from '../src/config/render-config-docs';

const target = path.join(__dirname, '..', 'docs', 'configuration.md');
writeFileSync(target, renderConfigDocs());
process.stdout.write(`wrote ${path.relative(process.cwd(), target)}\n`);
