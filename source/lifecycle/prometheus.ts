/**
 * The Prometheus endpoint (`--metrics-bind`): `GET /metrics` in Prometheus's text format and `GET /healthz`,
 * the readiness probe (200 while serving, 503 while starting or stopping).
 *
 * It listens apart from the app's binds, so that a scrape never waits behind the app's connections for a
 * slot, the numbers stay off the public address, and a monitoring user needs no access to the owner-only
 * control socket.
 *
 * prom-client formats the text and adds the main thread's process metrics (CPU, memory, event-loop lag).
 * Each scrape reads one snapshot (`server.stats()`): the responses from the actors' shared counters
 * (shared/request-metrics.ts), the rest from each actor over the control port. prom-client's Histogram
 * counts observations made in its own thread, and ours are made in the actors', so the duration histogram
 * is a subclass that reports the shared buckets instead.
 */
import http from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { DURATION_BUCKETS, emptyTotals, STATUS_CLASSES, type RequestTotals } from '../../shared/request-metrics.js';
import { describeListener, parseBind } from '../accept/bind.js';
import { GrainbowsError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import type { ServerStats } from './server-stats.js';

/** What the endpoint reads: the server (an interface, so this module does not import the server's). */
export interface MetricsSource {
  stats(): Promise<ServerStats>;
  readonly workers: number;
  /** Serving: an actor ready, and not stopping. */
  readonly ready: boolean;
}

/** The probe paths, documented in docs/operations.md. */
export const METRICS_PATH = '/metrics';
export const HEALTH_PATH = '/healthz';

/** prom-client's default gauges whose `_total` names Prometheus's lint refuses; `sum()` of their by-type gauge replaces each. */
const PROMTOOL_REFUSED = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/**
 * The response-duration histogram, reporting the buckets the actors counted. prom-client's registry reads
 * a histogram through `getForPromString()` where it has one (15.x) and through `get()` otherwise: both
 * answer the shared buckets.
 */
class SharedDurationHistogram extends Histogram<string> {
  totals: RequestTotals | undefined;

  getForPromString(): ReturnType<Histogram<string>['get']> {
    const totals = this.totals ?? emptyTotals();
    const name = 'grainbows_request_duration_seconds';
    let cumulative = 0;
    const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = DURATION_BUCKETS.map((bound, index) => {
      cumulative += totals.buckets[index];
      return { labels: { le: bound }, value: cumulative, metricName: `${name}_bucket` };
    });
    values.push({ labels: { le: '+Inf' }, value: totals.count, metricName: `${name}_bucket` });
    values.push({ labels: {}, value: totals.durationSum, metricName: `${name}_sum` });
    values.push({ labels: {}, value: totals.count, metricName: `${name}_count` });
    // The shape prom-client's own histogram returns; its declared type names an enum where the registry
    // reads the string, hence the cast.
    const metric = { name, help: DURATION_HELP, type: 'histogram', values, aggregator: 'sum' };
    return Promise.resolve(metric as unknown as Awaited<ReturnType<Histogram<string>['get']>>);
  }

  override get(): ReturnType<Histogram<string>['get']> {
    return this.getForPromString();
  }
}

const DURATION_HELP = 'From the request reaching the app to its response ending';

/** The metrics, set from one snapshot per scrape. */
class GrainbowsMetrics {
  readonly registry = new Registry();
  private readonly ready: Gauge;
  private readonly actorsWanted: Gauge;
  private readonly actorsServing: Gauge;
  private readonly actorStarts: Counter;
  private readonly actorEnds: Counter<'reason'>;
  private readonly requests: Counter<'status_class'>;
  private readonly actorRequests: Counter<'actor' | 'status_class'>;
  private readonly durations: SharedDurationHistogram;
  private readonly inFlight: Gauge<'actor'>;
  private readonly connections: Gauge<'actor'>;
  private readonly queued: Gauge;
  private readonly awaitingHead: Gauge;
  private readonly loopUtilization: Gauge<'actor'>;
  private readonly heapUsed: Gauge<'actor'>;
  private readonly heapTotal: Gauge<'actor'>;
  private readonly taskThreads: Gauge<'module'>;
  private readonly taskRunning: Gauge<'module'>;
  private readonly taskQueued: Gauge<'module'>;
  private readonly taskCalls: Counter<'module' | 'outcome'>;
  private readonly taskThreadStarts: Counter<'module'>;
  private readonly taskRunP50: Gauge<'module'>;
  private readonly taskRunP99: Gauge<'module'>;
  private readonly taskWaitP99: Gauge<'module'>;
  /** Each actor's event-loop times at the previous scrape: utilisation is measured between scrapes. */
  private readonly previousLoop = new Map<number, { active: number; idle: number }>();

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    // prom-client names three gauges `*_total`, which Prometheus keeps for counters (`promtool check metrics`
    // refuses them). Each is the sum of a gauge it exports by type beside it (`nodejs_active_handles` ...).
    for (const name of PROMTOOL_REFUSED) this.registry.removeSingleMetric(name);
    this.ready = new Gauge({ name: 'grainbows_ready', help: '1 while serving (an actor ready, not stopping), else 0', registers });
    this.actorsWanted = new Gauge({ name: 'grainbows_actors_desired', help: 'Actors the server keeps serving (-w, resize)', registers });
    this.actorsServing = new Gauge({ name: 'grainbows_actors', help: 'Actors serving or draining now', registers });
    this.actorStarts = new Counter({ name: 'grainbows_actor_starts_total', help: 'Actors started, replacements included', registers });
    this.actorEnds = new Counter({
      name: 'grainbows_actor_ends_total',
      help: 'Actors ended, by reason: crashed (died serving), hung (terminated after --timeout), retired (reload, resize, --max-requests, stop)',
      labelNames: ['reason'],
      registers,
    });
    this.requests = new Counter({
      name: 'grainbows_requests_total',
      help: 'Responses the actors gave, by status class (aborted: the connection ended before a response began), ended actors included',
      labelNames: ['status_class'],
      registers,
    });
    this.actorRequests = new Counter({
      name: 'grainbows_actor_requests_total',
      help: 'Responses each live actor gave, by status class',
      labelNames: ['actor', 'status_class'],
      registers,
    });
    this.durations = new SharedDurationHistogram({
      name: 'grainbows_request_duration_seconds',
      help: DURATION_HELP,
      buckets: [...DURATION_BUCKETS],
      registers,
    });
    this.inFlight = new Gauge({ name: 'grainbows_requests_in_flight', help: 'Requests each actor is answering now', labelNames: ['actor'], registers });
    this.connections = new Gauge({ name: 'grainbows_connections', help: 'Connections each actor holds', labelNames: ['actor'], registers });
    this.queued = new Gauge({ name: 'grainbows_connections_queued', help: 'Connections with a request waiting in main for an actor slot', registers });
    this.awaitingHead = new Gauge({ name: 'grainbows_connections_awaiting_head', help: 'Connections still sending their first request head', registers });
    this.loopUtilization = new Gauge({
      name: 'grainbows_actor_event_loop_utilization',
      help: "Share of time each actor's event loop was busy since the previous scrape, 0..1",
      labelNames: ['actor'],
      registers,
    });
    this.heapUsed = new Gauge({ name: 'grainbows_actor_heap_used_bytes', help: "Each actor's V8 heap in use", labelNames: ['actor'], registers });
    this.heapTotal = new Gauge({ name: 'grainbows_actor_heap_total_bytes', help: "Each actor's V8 heap size", labelNames: ['actor'], registers });
    const perModule = { labelNames: ['module'] as const, registers };
    this.taskThreads = new Gauge({ name: 'grainbows_task_threads', help: 'Task threads of each task module (--tasks)', ...perModule });
    this.taskRunning = new Gauge({ name: 'grainbows_task_calls_running', help: 'Calls each task module is running now', ...perModule });
    this.taskQueued = new Gauge({ name: 'grainbows_task_calls_queued', help: 'Calls waiting for a thread of each task module', ...perModule });
    this.taskCalls = new Counter({
      name: 'grainbows_task_calls_total',
      help: 'Calls ended, by outcome: completed, failed (the task threw), timed_out (--task-timeout), refused (--task-max-queue), cancelled (by the caller), thread_exited (its thread died)',
      labelNames: ['module', 'outcome'],
      registers,
    });
    this.taskThreadStarts = new Counter({ name: 'grainbows_task_thread_starts_total', help: 'Task threads started, replacements included', ...perModule });
    this.taskRunP50 = new Gauge({ name: 'grainbows_task_run_p50_seconds', help: 'Median time a call ran on its thread', ...perModule });
    this.taskRunP99 = new Gauge({ name: 'grainbows_task_run_p99_seconds', help: '99th percentile of the time a call ran on its thread', ...perModule });
    this.taskWaitP99 = new Gauge({ name: 'grainbows_task_wait_p99_seconds', help: '99th percentile of the time a call waited for a thread', ...perModule });
  }

  /** Sets every metric from one snapshot. */
  update(stats: ServerStats, workers: number): void {
    this.ready.set(stats.ready ? 1 : 0);
    this.actorsWanted.set(workers);
    this.actorsServing.set(stats.actors.length);
    setCounter(this.actorStarts, {}, stats.actorsStarted);
    for (const [reason, count] of Object.entries(stats.actorEndings)) setCounter(this.actorEnds, { reason }, count);
    for (const name of STATUS_CLASSES) setCounter(this.requests, { status_class: name }, stats.responses.byStatusClass[name]);
    this.durations.totals = stats.responses;
    this.queued.set(stats.queued);
    this.awaitingHead.set(stats.awaitingHead);
    // Per-actor series: only the live actors', so an ended actor's series ends with it.
    for (const metric of [this.actorRequests, this.inFlight, this.connections, this.loopUtilization, this.heapUsed, this.heapTotal]) metric.reset();
    const live = new Set<number>();
    for (const actor of stats.actors) {
      const labels = { actor: String(actor.actorId) };
      live.add(actor.actorId);
      for (const name of STATUS_CLASSES) this.actorRequests.inc({ ...labels, status_class: name }, actor.responses.byStatusClass[name]);
      this.inFlight.set(labels, actor.requestsInFlight);
      this.connections.set(labels, actor.connections);
      this.heapUsed.set(labels, actor.heapUsed);
      this.heapTotal.set(labels, actor.heapTotal);
      const before = this.previousLoop.get(actor.actorId) ?? { active: 0, idle: 0 };
      const active = actor.eventLoopActiveMs - before.active;
      const idle = actor.eventLoopIdleMs - before.idle;
      this.loopUtilization.set(labels, active + idle > 0 ? active / (active + idle) : 0);
      this.previousLoop.set(actor.actorId, { active: actor.eventLoopActiveMs, idle: actor.eventLoopIdleMs });
    }
    for (const id of this.previousLoop.keys()) if (!live.has(id)) this.previousLoop.delete(id);
    this.updateTasks(stats.tasks);
  }

  private updateTasks(modules: ServerStats['tasks']): void {
    for (const m of modules) {
      const labels = { module: m.module };
      this.taskThreads.set(labels, m.threads);
      this.taskRunning.set(labels, m.running);
      this.taskQueued.set(labels, m.queued);
      const outcomes = {
        completed: m.completed,
        failed: m.failed,
        timed_out: m.timedOut,
        refused: m.refused,
        cancelled: m.cancelled,
        thread_exited: m.threadExited,
      };
      for (const [outcome, count] of Object.entries(outcomes)) setCounter(this.taskCalls, { ...labels, outcome }, count);
      setCounter(this.taskThreadStarts, labels, m.threadsStarted);
      this.taskRunP50.set(labels, m.runTimeMs.p50 / 1000);
      this.taskRunP99.set(labels, m.runTimeMs.p99 / 1000);
      this.taskWaitP99.set(labels, m.waitTimeMs.p99 / 1000);
    }
  }
}

/** A counter set to an absolute value: our counters are kept by the actors, and read here. */
function setCounter<T extends string>(counter: Counter<T>, labels: Partial<Record<T, string>>, value: number): void {
  counter.remove(labels);
  counter.inc(labels, value);
}

export class MetricsEndpoint {
  private constructor(
    private readonly listener: http.Server,
    readonly url: string,
  ) {}

  /** Listens on `spec` (HOST:PORT or unix:PATH) and serves the metrics of `source`. */
  static async open(spec: string, source: MetricsSource, log: Logger): Promise<MetricsEndpoint> {
    const bind = parseBind(spec);
    const metrics = new GrainbowsMetrics();
    // One scrape at a time: each reads the actors once, and utilisation is measured between scrapes.
    let scraping: Promise<unknown> = Promise.resolve();
    const listener = http.createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      const readOnly = req.method === 'GET' || req.method === 'HEAD';
      if (!readOnly || (path !== METRICS_PATH && path !== HEALTH_PATH)) {
        res.writeHead(readOnly ? 404 : 405, { 'content-type': 'text/plain' }).end(`try GET ${METRICS_PATH} or GET ${HEALTH_PATH}\n`);
        return;
      }
      // The probe answers at once, from the server's state: it neither waits for a scrape nor asks the actors.
      if (path === HEALTH_PATH) {
        res.writeHead(source.ready ? 200 : 503, { 'content-type': 'text/plain' }).end(source.ready ? 'ok\n' : 'not ready\n');
        return;
      }
      const answer = (scraping = scraping.then(async () => {
        const stats = await source.stats();
        metrics.update(stats, source.workers);
        res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(await metrics.registry.metrics());
      }));
      answer.catch((error: unknown) => {
        log.error(`metrics: ${String(error)}`);
        if (!res.headersSent) res.writeHead(500).end();
      });
    });
    await new Promise<void>((resolve, reject) => {
      listener.once('error', (error: NodeJS.ErrnoException) =>
        reject(new GrainbowsError('E_BIND', `cannot listen for metrics on ${spec}: ${error.code ?? error.message}`)),
      );
      if (bind.kind === 'tcp') listener.listen(bind.port, bind.host, resolve);
      else if (bind.kind === 'unix') listener.listen(bind.path, resolve);
      else reject(new GrainbowsError('E_BIND', `--metrics-bind takes HOST:PORT or unix:PATH, not ${spec}`));
    });
    const url = describeListener(listener, bind);
    log.info(`Metrics at: ${url}${METRICS_PATH} (readiness: ${HEALTH_PATH})`);
    return new MetricsEndpoint(listener, url);
  }

  close(): Promise<void> {
    this.listener.closeAllConnections();
    return new Promise((resolve) => this.listener.close(() => resolve()));
  }
}
