/**
 * grainbows as a library: `const server = await serve({ app: 'app.js', workers: 2 })`.
 */
import { GrainbowsServer, type ServeOptions } from './server.js';

export { GrainbowsServer, DEFAULTS, type ServeOptions, type ServerEvents, type ActorInfo, type CloseOptions } from './server.js';
export type { ServerStats } from './lifecycle/server-stats.js';
export { GrainbowsError, ExitStatus, type ErrorCode } from '../shared/errors.js';
export { createLogger, type Logger, type LogLevel } from '../shared/log.js';
export type { ActorEndings, ActorState, PoolActorStats as ActorStatsEntry } from './lifecycle/actor-pool.js';
export { DURATION_BUCKETS, STATUS_CLASSES, type RequestTotals, type StatusClass } from '../shared/request-metrics.js';
export type { ActorStats, AppKind, ServerHook } from '../shared/actor-protocol.js';
export type { AppSpec } from '../shared/app-spec.js';
export type { BindAddress } from './accept/bind.js';
export type { HandoffStrategy, HeaderMap, HttpCompat, ConcurrencyModel } from '../shared/settings-values.js';
export type { ActorHooks, HookActor, TaskHooks } from '../shared/hooks.js';
export type { TaskModuleStats, TaskCounters } from './tasks/task-pools.js';

export function serve(options: ServeOptions): Promise<GrainbowsServer> {
  return GrainbowsServer.start(options);
}
