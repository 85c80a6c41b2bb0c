import { Controller, Get, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { HealthService, Readiness } from './health.service';

@Controller('health')
export class HealthController {
  constructor(private readonly health: HealthService) {}

  @Get('live')
  live(): { status: 'ok' } {
    return { status: 'ok' };
  }

  /** `detailed`: the OPS_PORT listener's view, with each failing dependency's error. */
  @Get('ready')
  async ready(
    @Res({ passthrough: true }) reply: FastifyReply,
    detailed = false,
  ): Promise<Readiness> {
    const readiness = detailed
      ? await this.health.readiness()
      : await this.health.publicReadiness();
    void reply.status(readiness.status === 'ok' ? 200 : 503);
    return readiness;
  }
}
