import { randomUUID } from 'node:crypto';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import Fastify, { FastifyInstance, LogController, onRequestHookHandler } from 'fastify';
import { AppConfig } from './config/config';
import { Logger, NestPinoLogger } from './common/logger';
import { AppModule } from './app.module';
import { HealthController } from './modules/health/health.controller';
import { Metrics } from './modules/metrics/metrics.registry';

const REQUEST_ID_HEADER = 'x-request-id';

const isOpsRoute = (url: string) => url === '/metrics' || url.startsWith('/health/');

const opsListeners = new WeakMap<NestFastifyApplication, FastifyInstance>();

/** The OPS_PORT listener of an app created by createServer (for its address); none without OPS_PORT. */
export function opsListener(app: NestFastifyApplication): FastifyInstance | undefined {
  return opsListeners.get(app);
}

/**
 * OPS_PORT: health and metrics move to a second, small listener (probes and scrapers reach it,
 * the public port does not) and answer 404 on the main port. They call the same Nest providers,
 * and the listener opens and closes with the app.
 */
function serveOpsRoutesOnOwnPort(
  app: NestFastifyApplication,
  config: AppConfig,
  logger: Logger,
  opsPort: number,
): void {
  const main = app.getHttpAdapter().getInstance();
  const notFound: onRequestHookHandler = (_request, reply) => {
    reply.callNotFound();
  };
  main.addHook('onRoute', (route) => {
    if (!isOpsRoute(route.url)) return;
    const existing = route.onRequest;
    route.onRequest = [...(existing === undefined ? [] : [existing].flat()), notFound];
  });
  const ops = Fastify({ logger: false });
  ops.get('/health/live', () => app.get(HealthController).live());
  ops.get('/health/ready', (_request, reply) => app.get(HealthController).ready(reply, true));
  ops.get('/metrics', async (_request, reply) => {
    const { registry } = app.get(Metrics);
    return reply.type(registry.contentType).send(await registry.metrics());
  });
  main.addHook('onReady', async () => {
    const url = await ops.listen({ port: opsPort, host: config.http.host });
    logger.info({ url }, `health and metrics on ${url} (OPS_PORT)`);
  });
  main.addHook('onClose', async () => {
    await ops.close();
  });
  opsListeners.set(app, ops);
}

/** The HTTP adapter every app of this service runs on. */
export function fastifyAdapter(logger: Logger): FastifyAdapter {
  return new FastifyAdapter({
    loggerInstance: logger,
    // Per-request logs cost throughput; completed requests are logged at debug level below.
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: REQUEST_ID_HEADER,
    genReqId: () => randomUUID(),
    bodyLimit: 4 * 1024 * 1024,
  });
}

/** Request ids, the debug request log, OPS_PORT and shutdown hooks, on an app not yet listening. */
export function configureServer(
  app: NestFastifyApplication,
  config: AppConfig,
  logger: Logger,
): NestFastifyApplication {
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
  if (config.http.opsPort !== null)
    serveOpsRoutesOnOwnPort(app, config, logger, config.http.opsPort);
  app.enableShutdownHooks(['SIGTERM', 'SIGINT']);
  return app;
}

/** Builds the Nest application for the configured role. */
export async function createServer(
  config: AppConfig,
  logger: Logger,
): Promise<NestFastifyApplication> {
  const app = await NestFactory.create<NestFastifyApplication>(
    AppModule.forRole(config, logger),
    fastifyAdapter(logger),
    { logger: new NestPinoLogger(logger) },
  );
  return configureServer(app, config, logger);
}
