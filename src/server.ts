import { randomUUID } from 'node:crypto';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import Fastify, {
  FastifyInstance,
  FastifyReply,
  LogController,
  onRequestHookHandler,
} from 'fastify';
import { AppConfig } from './config/config';
import { installLeanAsyncResourceBind } from './common/async-resource-bind';
import { Logger, NestPinoLogger } from './common/logger';
import { AppModule, modulesFor } from './app.module';
import { CONSOLE_HEADERS, consoleAsset } from './modules/console/console.assets';
import { HealthController } from './modules/health/health.controller';
import { Metrics } from './modules/metrics/metrics.registry';

const REQUEST_ID_HEADER = 'x-request-id';

const isOpsRoute = (url: string) =>
  url === '/metrics' ||
  url.startsWith('/health/') ||
  url === '/console' ||
  url.startsWith('/console/');
/** What the console's GraphQL calls carry that the main app needs to see. */
const FORWARDED_HEADERS = ['content-type', 'x-api-key', 'authorization'] as const;

const opsListeners = new WeakMap<NestFastifyApplication, FastifyInstance>();

/** The OPS_PORT listener of an app created by createServer (for its address); none without OPS_PORT. */
export function opsListener(app: NestFastifyApplication): FastifyInstance | undefined {
  return opsListeners.get(app);
}

/**
 * OPS_PORT: health, metrics and (in roles with GraphQL) the ops console move to a second, small
 * listener (probes, scrapers and operators reach it, the public port does not) and answer 404 on
 * the main port. They call the same Nest providers; the console's GraphQL calls are answered by
 * the main app in process, with the same keys and limits. The listener opens and closes with the
 * app.
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
  if (modulesFor(config.role).graphql) serveConsole(ops, main);
  main.addHook('onReady', async () => {
    const url = await ops.listen({ port: opsPort, host: config.http.host });
    logger.info({ url }, `health and metrics on ${url} (OPS_PORT)`);
  });
  main.addHook('onClose', async () => {
    await ops.close();
  });
  opsListeners.set(app, ops);
}

/** The console's files, and its GraphQL calls forwarded to the main app (in process). */
function serveConsole(ops: FastifyInstance, main: FastifyInstance): void {
  const send = (name: string, reply: FastifyReply) => {
    const asset = consoleAsset(name);
    if (asset === undefined) return reply.code(404).send({ message: `no console file "${name}"` });
    return reply.headers(CONSOLE_HEADERS).type(asset.type).send(asset.body);
  };
  ops.get('/console', (_request, reply) => send('index.html', reply));
  ops.get<{ Params: { file: string } }>('/console/:file', (request, reply) =>
    send(request.params.file, reply),
  );
  ops.post('/graphql', async (request, reply) => {
    const headers: Record<string, string> = {};
    for (const name of FORWARDED_HEADERS) {
      const value = request.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    const answer = await main.inject({
      method: 'POST',
      url: '/graphql',
      headers,
      payload: JSON.stringify(request.body),
    });
    return reply
      .code(answer.statusCode)
      .type(answer.headers['content-type']?.toString() ?? 'application/json')
      .send(answer.body);
  });
}

/** The HTTP adapter every app of this service runs on. */
export function fastifyAdapter(logger: Logger): FastifyAdapter {
  // Fastify binds an AsyncResource per parsed body: Node 20's bind made each request outlive
  // scavenges (see the function).
  installLeanAsyncResourceBind();
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
