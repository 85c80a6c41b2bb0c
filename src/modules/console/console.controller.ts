import { Controller, Get, NotFoundException, Param, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { CONSOLE_HEADERS, consoleAsset } from './console.assets';

/**
 * The ops console on the main port (with OPS_PORT set it moves to that port: src/server.ts):
 * static pages whose script reads and changes everything through the public GraphQL API (with the
 * ops key the operator enters) and reads /metrics for the overview. The pages hold no data, so
 * they need no key themselves.
 */
@Controller('console')
export class ConsoleController {
  @Get()
  index(@Res() reply: FastifyReply): void {
    this.send(reply, 'index.html');
  }

  @Get(':file')
  file(@Param('file') file: string, @Res() reply: FastifyReply): void {
    this.send(reply, file);
  }

  private send(reply: FastifyReply, name: string): void {
    const asset = consoleAsset(name);
    if (asset === undefined) throw new NotFoundException(`no console file "${name}"`);
    void reply.headers(CONSOLE_HEADERS).header('content-type', asset.type).send(asset.body);
  }
}
