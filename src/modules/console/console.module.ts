import { Module } from '@nestjs/common';
import { ConsoleController } from './console.controller';

/** The api role's ops console at /console (docs/operations/console.md). */
@Module({ controllers: [ConsoleController] })
export class ConsoleModule {}
