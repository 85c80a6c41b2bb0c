import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Controller, Get, Header, NotFoundException, Param, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';

interface Asset {
  readonly type: string;
  readonly body: Buffer;
}

const PUBLIC = path.join(__dirname, 'public');
// The chart library ships its browser bundle in the package; served as is, never rebuilt.
const CHART_JS = path.join(path.dirname(require.resolve('chart.js')), 'chart.umd.min.js');

/** Every file the console serves, read once: nothing outside this list is reachable. */
const ASSETS: ReadonlyMap<string, Asset> = new Map(
  [
    ['index.html', path.join(PUBLIC, 'index.html'), 'text/html; charset=utf-8'],
    ['console.js', path.join(PUBLIC, 'console.js'), 'text/javascript; charset=utf-8'],
    ['console.css', path.join(PUBLIC, 'console.css'), 'text/css; charset=utf-8'],
    ['chart.umd.min.js', CHART_JS, 'text/javascript; charset=utf-8'],
  ].map(([name, file, type]) => [name, { type, body: readFileSync(file) }]),
);

/**
 * The ops console: static pages whose script reads and changes everything through the public
 * GraphQL API (with the ops key the operator enters) and reads /metrics for the overview. The
 * pages hold no data, so they need no key themselves.
 */
@Controller('console')
export class ConsoleController {
  @Get()
  @Header('cache-control', 'no-cache')
  index(@Res() reply: FastifyReply): void {
    this.send(reply, 'index.html');
  }

  @Get(':file')
  @Header('cache-control', 'no-cache')
  file(@Param('file') file: string, @Res() reply: FastifyReply): void {
    this.send(reply, file);
  }

  private send(reply: FastifyReply, name: string): void {
    const asset = ASSETS.get(name);
    if (asset === undefined) throw new NotFoundException(`no console file "${name}"`);
    void reply
      .header('content-type', asset.type)
      .header('x-content-type-options', 'nosniff')
      .header(
        'content-security-policy',
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
      )
      .send(asset.body);
  }
}
