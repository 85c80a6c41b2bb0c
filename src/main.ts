import 'reflect-metadata';
import { AppConfig, ConfigError, loadConfig, ROLES } from './config/config';
import { createLogger } from './common/logger';
import { provisionTopics } from './infra/kafka-topics';
import { migrate } from './infra/migrator';
import { modulesFor } from './app.module';
import { createServer } from './server';
import { runTrainOnce } from './modules/training/training.cli';
import { serviceTopics } from './service-topics';

const USAGE = `usage: node dist/main.js [${ROLES.join('|')}|train --once|migrate [up|down]|topics]`;
/** Commands that prepare the stores and exit; anything else names a role. */
const SETUP_COMMANDS = ['migrate', 'topics'];

/** One entry point; the role comes from the first argument, else ROLE, else `all`. */
async function main(argv: readonly string[]): Promise<void> {
  const command = argv.at(0);
  const rest = argv.slice(1);
  const env = { ...process.env };
  const setup = command !== undefined && SETUP_COMMANDS.includes(command);
  if (command !== undefined && !setup) {
    if (!(ROLES as readonly string[]).includes(command))
      throw new ConfigError([`role argument "${command}": ${USAGE}`]);
    env.ROLE = command;
  }
  const config: AppConfig = loadConfig(env);
  const logger = createLogger(
    config.logLevel,
    { role: setup ? command : config.role },
    config.logFormat,
  );

  if (command === 'migrate') {
    const direction = rest[0] === 'down' ? 'down' : 'up';
    const applied = await migrate(
      config.postgres.directUrl,
      logger,
      direction,
      direction === 'down' ? 1 : Infinity,
    );
    logger.info({ applied }, `migrations ${direction}: ${applied.length} applied`);
    return;
  }

  if (command === 'topics') {
    const topics = await provisionTopics(
      config.kafka,
      serviceTopics(config.kafka.newTopics),
      logger,
    );
    for (const { name, partitions, created } of topics) {
      logger.info(
        { topic: name, partitions, created },
        `topic ${name}: ${partitions} partition${partitions === 1 ? '' : 's'}${created ? ', created' : ''}`,
      );
    }
    return;
  }

  if (config.role === 'train' && rest.includes('--once')) {
    // A Kubernetes CronJob: one training check, then exit (no HTTP server).
    const outcome = await runTrainOnce(config, logger);
    logger.info({ outcome }, 'train --once finished');
    if (outcome.kind === 'ran' && outcome.run.status === 'failed') process.exitCode = 1;
    return;
  }

  const app = await createServer(config, logger);
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      // Nest closes modules and clients in order; this bounds how long that may take.
      setTimeout(() => {
        logger.error({ signal }, `shutdown exceeded ${config.shutdownTimeoutMs} ms, exiting`);
        process.exit(1);
      }, config.shutdownTimeoutMs).unref();
    });
  }
  await app.listen(config.http.port, config.http.host);
  const url = `http://${config.http.host === '0.0.0.0' ? '127.0.0.1' : config.http.host}:${config.http.port}`;
  const consoleNote = modulesFor(config.role).graphql ? `, ops console at ${url}/console` : '';
  logger.info(
    { url: `${url}/graphql` },
    `recsys ${config.role} ready: GraphQL at ${url}/graphql${consoleNote}`,
  );
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`);
  } else {
    process.stderr.write(
      `fatal: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
  }
  process.exit(1);
});
