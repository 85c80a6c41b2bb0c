import { randomUUID } from 'node:crypto';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { LogController } from 'fastify';
import { AppConfig } from './config/config';
import { Logger, NestPinoLogger } from './common/logger';
import { AppModule } from './app.module';

const REQUEST_ID_HEADER = 'x-request-id';

/** Builds the Nest application for the configured role; tests call this with their own config. */
export async function createServer(
  config: AppConfig,
  logger: Logger,
): Promise<NestFastifyApplication> {
  const adapter = new FastifyAdapter({
    loggerInstance: logger,
    // Per-request logs cost throughput; completed requests are logged at debug level below.
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: REQUEST_ID_HEADER,
    genReqId: () => randomUUID(),
    bodyLimit: 4 * 1024 * 1024,
  });
  const app = await NestFactory.create<NestFastifyApplication>(
    AppModule.forRole(config, logger),
    adapter,
    {
      logger: new NestPinoLogger(logger),
    },
  );
  const fastify = app.getHttpAdapter().getInstance();
  fastify.addHook('onSend', (request, reply, payload, done) => {
    void reply.header(REQUEST_ID_HEADER, request.id);
    done(null, payload);
  });
  fastify.addHook('onResponse', (request, reply, done) => {
    request.log.debug(
      {
        method: request.method,
        url: request.url,
        statusCode: reply.statusCode,
        ms: reply.elapsedTime,
      },
      'request completed',
    );
    done();
  });
  app.enableShutdownHooks(['SIGTERM', 'SIGINT']);
  return app;
}
