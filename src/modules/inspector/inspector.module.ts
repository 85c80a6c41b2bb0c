import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module';
import { OnlineStateReaderModule } from '../online-state/online-state.module';
import { ServingModule } from '../serving/serving.module';
import { InspectorRepository } from './inspector.repository';
import { InspectorResolver } from './inspector.resolver';
import { InspectorService } from './inspector.service';

/** The api role's inspector queries (the console's inspector page). */
@Module({
  imports: [AuthModule, OnlineStateReaderModule, ServingModule],
  providers: [InspectorRepository, InspectorService, InspectorResolver],
})
export class InspectorModule {}
