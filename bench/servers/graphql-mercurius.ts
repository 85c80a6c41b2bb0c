import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { GraphQLModule } from '@nestjs/graphql';
import { MercuriusDriver, MercuriusDriverConfig } from '@nestjs/mercurius';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { ConstantHealthResolver, serveOnEphemeralPort } from './common';

/** Mercurius on Fastify 5, configured like the service (src/graphql/graphql.module.ts) minus hooks. */
@Module({
  imports: [
    GraphQLModule.forRoot<MercuriusDriverConfig>({
      driver: MercuriusDriver,
      autoSchemaFile: true,
      path: '/graphql',
      graphiql: false,
    }),
  ],
  providers: [ConstantHealthResolver],
})
class MercuriusBenchModule {}

async function main(): Promise<void> {
  const app = await NestFactory.create<NestFastifyApplication>(
    MercuriusBenchModule,
    new FastifyAdapter({ logger: false }),
    { logger: false },
  );
  await serveOnEphemeralPort(app);
}

void main().catch((error: unknown) => {
  process.stderr.write(`mercurius server failed: ${String(error)}\n`);
  process.exit(1);
});
