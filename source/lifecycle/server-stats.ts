/**
 * What `server.stats()`, `ctl status`, the metrics and StatsD report: one snapshot of the server, from the
 * actor pool, the dispatcher and the task pool.
 */
import type { HandoffStrategy } from '../../shared/settings-values.js';
import type { RequestTotals } from '../../shared/request-metrics.js';
import type { TaskModuleStats } from '../tasks/task-pools.js';
import type { ActorEndings, PoolActorStats } from './actor-pool.js';

export interface ServerStats {
  /** Serving: at least one actor ready, and not stopping (the readiness probe's answer). */
  ready: boolean;
  handoff: HandoffStrategy;
  generation: number;
  /** Connections whose request head arrived, waiting in main for an actor slot. */
  queued: number;
  /** Connections held in main while they send their first request head (they cost no actor slot). */
  awaitingHead: number;
  actors: PoolActorStats[];
  /** Every response the actors gave since the server started, by status class and duration (ended actors' included). */
  responses: RequestTotals;
  /** Actors started since the server started, replacements included. */
  actorsStarted: number;
  /** How actors have ended: crashed, hung (terminated after `timeout`), retired. */
  actorEndings: ActorEndings;
  /** The task pool, per task module (`tasks`); empty without one. */
  tasks: TaskModuleStats[];
}
