import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module';
import { CliCommand, CliContext } from './cli-command';
import { createLogger } from './common/logger';
import { ConfigError, loadConfig } from './config/config';
import { AUTH_COMMANDS } from './modules/auth/auth.cli';
import { INGEST_COMMANDS } from './modules/ingest/ingest.cli';
import { EMBEDDING_COMMANDS } from './modules/embedding/embedding.cli';
import { EXPERIMENT_COMMANDS } from './modules/experiments/experiments.cli';
import { REGISTRY_COMMANDS } from './modules/registry/registry.cli';
import { TRAINING_COMMANDS } from './modules/training/training.cli';

/** Every CLI verb; modules contribute theirs. */
const COMMANDS: readonly CliCommand[] = [
  ...INGEST_COMMANDS,
  ...EMBEDDING_COMMANDS,
  ...REGISTRY_COMMANDS,
  ...EXPERIMENT_COMMANDS,
  ...TRAINING_COMMANDS,
  ...AUTH_COMMANDS,
];

function usage(): string {
  const width = Math.max(...COMMANDS.map((command) => command.usage.length), 10);
  return [
    'usage: npm run cli -- <command> [args]',
    '',
    ...COMMANDS.map((command) => `  ${command.usage.padEnd(width)}  ${command.summary}`),
  ].join('\n');
}

async function main(): Promise<void> {
  const name = process.argv.at(2);
  const command = COMMANDS.find((candidate) => candidate.name === name);
  if (command === undefined) {
    process.stderr.write(`${usage()}\n`);
    process.exit(name === undefined || name === 'help' ? 0 : 2);
  }
  const config = loadConfig(process.env);
  const logger = createLogger(
    config.logLevel,
    { role: 'cli', command: command.name },
    config.logFormat,
  );
  const opened: { close(): Promise<void> }[] = [];
  const context: CliContext = {
    config,
    logger,
    app: async (...modules) => {
      const app = await NestFactory.createApplicationContext(
        AppModule.withModules(config, logger, modules),
        { logger: false },
      );
      opened.push(app);
      return app;
    },
  };
  try {
    await command.run(process.argv.slice(3), context);
  } finally {
    for (const app of opened) await app.close();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(
      error instanceof ConfigError
        ? `${error.message}\n`
        : `error: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    process.exit(1);
  },
);
