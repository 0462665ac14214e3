/**
 * `grainbows ctl [--pid FILE | --socket PATH] [--json] status|reload|resize N|stop|upgrade`: talks to a
 * running grainbows over its control channel (control.ts) and prints what it answers.
 * Exit status: 0 done, 1 the server refused or could not be reached, 2 usage, 5 (status only) the server
 * answers but is not ready: no actor serving yet, or stopping. So `grainbows ctl status` is a readiness check.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import meow from 'meow';
import { CONTROL_COMMANDS, findControlPath, type ControlAnswer, type ControlRequest, type StatusReport } from '../lifecycle/control.js';
import { ExitStatus, GrainbowsError } from '../../shared/errors.js';
import { STATUS_CLASSES } from '../../shared/request-metrics.js';

const HELP = `
  Usage
    $ grainbows ctl [--pid FILE | --socket PATH] [--json] COMMAND

  Commands
    status        Per-actor state: connections, requests served, event-loop utilisation, age, generation;
                  responses by status class and actor restarts. Exits 5 when the server is not ready.
    reload        Start a new generation of actors (config re-read, app imported afresh); old one drains
    resize N      Grow or shrink to N actors; removed actors drain first
    stop          Graceful stop (as TERM)
    upgrade       Binary upgrade: a new process takes over the listening sockets, then this one drains

  Options
    --pid FILE     The server's pidfile (grainbows -p FILE): its control socket is derived from the pid
    --socket PATH  The server's --control-socket
    --json         Print the answer as JSON
`;

function send(socketPath: string, request: ControlRequest): Promise<ControlAnswer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let reply = '';
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${JSON.stringify(request)}\n`));
    socket.on('data', (chunk: string) => (reply += chunk));
    socket.on('error', (error: NodeJS.ErrnoException) =>
      reject(new GrainbowsError('E_USAGE', `no grainbows answers at ${socketPath}: ${error.code ?? error.message}`)),
    );
    socket.on('end', () => {
      try {
        resolve(JSON.parse(reply) as ControlAnswer);
      } catch {
        reject(new Error(`unreadable answer from ${socketPath}: ${reply.slice(0, 200)}`));
      }
    });
  });
}

function formatSeconds(seconds: number): string {
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

export function formatStatus(status: StatusReport): string {
  const now = Date.now();
  const header = `grainbows ${status.pid}: generation ${status.generation}, ${status.workers} actors wanted, hand-off ${status.handoff}, ${status.queued} queued, up ${formatSeconds(status.uptime)}`;
  const columns = ['actor', 'gen', 'state', 'conns', 'served', 'in-flight', 'loop %', 'heap MB', 'age'];
  const rows = status.actors.map((actor) => [
    String(actor.actorId),
    String(actor.generation),
    actor.state,
    String(actor.connections),
    String(actor.requestsServed),
    String(actor.requestsInFlight),
    (actor.eventLoopUtilization * 100).toFixed(1),
    (actor.heapUsed / 1048576).toFixed(1),
    formatSeconds((now - actor.startedAt) / 1000),
  ]);
  const widths = columns.map((column, i) => Math.max(column.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((cell, i) => (i === 2 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
  const { responses, actorEndings: ended } = status;
  const classes = STATUS_CLASSES.map((name) => `${name} ${responses.byStatusClass[name]}`).join(', ');
  const mean = responses.count > 0 ? `, mean ${((responses.durationSum / responses.count) * 1000).toFixed(1)} ms` : '';
  const totals = [
    `responses: ${responses.count} (${classes})${mean}`,
    `actors: ${status.actorsStarted} started, ${ended.crashed} crashed, ${ended.hung} hung, ${ended.retired} retired${status.ready ? '' : '; NOT READY'}`,
  ];
  return [header, line(columns), ...rows.map(line), ...totals, ...formatTasks(status.tasks ?? [])].join('\n');
}

/** The task pool's lines of `ctl status`: one per task module. */
function formatTasks(modules: StatusReport['tasks']): string[] {
  return modules.map(
    (m) =>
      `tasks ${m.module}: ${m.threads} threads, ${m.running} running, ${m.queued} queued; ${m.completed} completed, ${m.failed} failed, ${m.timedOut} timed out, ${m.refused} refused, ${m.cancelled} cancelled, ${m.threadExited} lost with their thread; run p50 ${m.runTimeMs.p50.toFixed(1)} ms, p99 ${m.runTimeMs.p99.toFixed(1)} ms`,
  );
}

export async function runCtl(argv: string[], importMeta: ImportMeta): Promise<number> {
  const cli = meow(HELP, {
    importMeta,
    argv,
    flags: { pid: { type: 'string' }, socket: { type: 'string' }, json: { type: 'boolean', default: false } },
    allowUnknownFlags: false,
  });
  const [command, count] = cli.input;
  const usage = (message: string) => {
    process.stderr.write(`grainbows ctl: ${message} (see grainbows ctl --help)\n`);
    return ExitStatus.usage;
  };
  if (!command || !(CONTROL_COMMANDS as readonly string[]).includes(command)) return usage(`expected one of ${CONTROL_COMMANDS.join(', ')}`);
  if (command === 'resize' && !/^\d+$/.test(count ?? '')) return usage('resize needs a number of actors, e.g. resize 3');
  let socketPath = cli.flags.socket;
  if (!socketPath) {
    if (!cli.flags.pid) return usage('say which server: --pid FILE or --socket PATH');
    let pid: number;
    try {
      pid = Number(readFileSync(cli.flags.pid, 'utf8').trim());
    } catch (error) {
      process.stderr.write(`grainbows ctl: cannot read pidfile ${cli.flags.pid}: ${(error as NodeJS.ErrnoException).code}\n`);
      return ExitStatus.failure;
    }
    socketPath = findControlPath(pid);
  }
  let reply: ControlAnswer;
  try {
    reply = await send(socketPath, { command: command as ControlRequest['command'], ...(command === 'resize' ? { count: Number(count) } : {}) });
  } catch (error) {
    process.stderr.write(`grainbows ctl: ${error instanceof Error ? error.message : String(error)}\n`);
    return ExitStatus.failure;
  }
  if (cli.flags.json) process.stdout.write(`${JSON.stringify(reply)}\n`);
  else if (!reply.ok) process.stderr.write(`grainbows ctl: ${reply.error}\n`);
  else if (typeof reply.result === 'object' && reply.result !== null && 'actors' in reply.result)
    process.stdout.write(`${formatStatus(reply.result as StatusReport)}\n`);
  else process.stdout.write(`${String(reply.result)}\n`);
  if (!reply.ok) return ExitStatus.failure;
  const notReady = command === 'status' && (reply.result as Partial<StatusReport> | null)?.ready === false;
  return notReady ? ExitStatus.notReady : ExitStatus.ok;
}
