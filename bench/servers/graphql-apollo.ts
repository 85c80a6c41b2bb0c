import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { GraphQLModule } from '@nestjs/graphql';
import { ApolloDriver, ApolloDriverConfig } from '@nestjs/apollo';
import { NestExpressApplication } from '@nestjs/platform-express';
import { ConstantHealthResolver, serveOnEphemeralPort } from './common';

/** Apollo Server 5 on Express 5 (the @nestjs/apollo driver wires it via @as-integrations/express5). */
@Module({
  imports: [
    GraphQLModule.forRoot<ApolloDriverConfig>({
      driver: ApolloDriver,
      autoSchemaFile: true,
      path: '/graphql',
      playground: false,
      introspection: false,
    }),
  ],
  providers: [ConstantHealthResolver],
})
class ApolloBenchModule {}

async function main(): Promise<void> {
  const app = await NestFactory.create<NestExpressApplication>(ApolloBenchModule, {
    logger: false,
  });
  app.disable('x-powered-by');
  await serveOnEphemeralPort(app);
}

void main().catch((error: unknown) => {
  process.stderr.write(`apollo server failed: ${String(error)}\n`);
  process.exit(1);
});
