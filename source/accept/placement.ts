/**
 * Which actor gets a connection: a pure function of the actors' loads, as piscina's balancer is of its
 * workers'. The dispatcher (dispatcher.ts) asks; the actor pool (source/lifecycle/actor-pool.ts) is only
 * the list it asks about.
 */

/** What placement reads of an actor. */
export interface Placeable {
  readonly id: number;
  /** Only `ready` actors take connections; `draining` ones too while the server stops (`takeDraining`). */
  readonly state: string;
  /** Requests in flight: what `--worker-connections` caps. */
  readonly requestsInFlight: number;
  /** Connections the actor holds, busy or idle. */
  readonly connectionCount: number;
}

export interface PlacementRule {
  /** `--worker-connections` (ActorSettings.requestsPerActor): an actor with this many requests in flight takes no more. */
  requestsPerActor: number;
  /** The server is stopping: draining actors still take what was accepted before the listeners closed. */
  takeDraining: boolean;
}

function isOpen(actor: Placeable, { takeDraining }: PlacementRule): boolean {
  return actor.state === 'ready' || (takeDraining && actor.state === 'draining');
}

/**
 * The open actor with the least load below the cap; undefined when all are full. Load counts a connection
 * once and a request in flight once more: a new connection is mostly future work, so placing by requests
 * in flight alone (which swing from moment to moment under keep-alive load) split wrk's 64 connections as
 * unevenly as 25/39, leaving one core short of work; idle keep-alive connections still weigh half what busy
 * ones do. The scan starts at `start` (the caller turns it) so that ties spread across actors instead of
 * piling on the first.
 */
export function leastLoaded<T extends Placeable>(actors: readonly T[], rule: PlacementRule, start: number): T | undefined {
  let best: T | undefined;
  for (let i = 0; i < actors.length; i++) {
    const actor = actors[(i + start) % actors.length];
    if (!isOpen(actor, rule) || actor.requestsInFlight >= rule.requestsPerActor) continue;
    if (!best || actor.requestsInFlight + actor.connectionCount < best.requestsInFlight + best.connectionCount) best = actor;
  }
  return best;
}

/**
 * The actor a sticky session belongs to (`--sticky-sessions`): itself when open and below the cap, `full`
 * when open but at the cap (the connection waits for it), undefined when it is gone (the connection goes
 * anywhere, and that actor's answer starts a new session).
 */
export function sessionActor<T extends Placeable>(actors: readonly T[], id: number, rule: PlacementRule): T | 'full' | undefined {
  const actor = actors.find((candidate) => candidate.id === id);
  if (!actor || !isOpen(actor, rule)) return undefined;
  return actor.requestsInFlight >= rule.requestsPerActor ? 'full' : actor;
}
