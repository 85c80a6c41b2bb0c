import { parentPort } from 'node:worker_threads';
import { answer } from '../../common/thread';
import type { TrainBackendPreference } from '../training/model/backend';
import { TowerPass, towerPass, useBackend } from './catalog-tower';

export type TowerRequest = { readonly id: number } & (
  | { readonly kind: 'pass'; readonly pass: TowerPass }
  | { readonly kind: 'backend'; readonly backend: TrainBackendPreference }
);

/** The catalog pass's thread (catalog-adapter.ts): one pass at a time, in order. */
function run(): void {
  const port = parentPort;
  if (port === null) throw new Error('catalog-adapter.thread runs as a worker thread');
  let queue = Promise.resolve();
  port.on('message', (request: TowerRequest) => {
    queue = queue.then(() =>
      answer<string | null>(port, request.id, async () => {
        switch (request.kind) {
          case 'pass':
            await towerPass(request.pass);
            return null;
          case 'backend':
            return await useBackend(request.backend);
        }
      }),
    );
  });
}

run();
