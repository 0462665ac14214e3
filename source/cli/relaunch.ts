/**
 * Starting node again with the V8 flags the main thread needs.
 *
 * The main thread holds every connection, so a pause there stalls all of them. V8's memory reducer is the
 * pause that matters: once a burst of traffic is over it runs compacting collections (20-36 ms, measured
 * with bench/slow-clients.ts; docs/performance.md) in the middle of whatever comes next. V8 reads
 * `--no-memory-reducer` when an isolate's heap is set up: `NODE_OPTIONS` refuses it, and
 * `v8.setFlagsFromString` reaches only isolates created later (the actors, see server.ts), never the main
 * thread's own. Main's young generation is the same: its 16 MB semi-spaces make for long scavenges with
 * thousands of connections, and V8 sizes them once, at start-up. So the CLI starts node again with
 * `--no-memory-reducer --max-semi-space-size=2` on the command line (settings `memory-reducer` and
 * `main-semi-space-size`), and with MALLOC_ARENA_MAX set (`malloc-arenas`, lifecycle/start-environment.ts):
 *
 * - on POSIX, in place (execve, exec-in-place.ts): same pid, nothing else changes;
 * - elsewhere (Windows, or where neither `process.execve` nor koffi is there) as a child in the foreground:
 *   this process forwards the signals the arbiter understands, and exits with the child's status. If this process dies, the child stops gracefully (it
 *   sees its IPC channel close), so a `kill -9` of the launcher never leaves a server behind.
 */
import { spawn } from 'node:child_process';
import { watchParent } from './parent-watch.js';
import { execInPlace } from './exec-in-place.js';

/** The settings that decide the main thread's node flags, and the process's environment at start. */
export interface MainThreadSettings {
  memoryReducer: boolean;
  mainSemiSpaceSize: number;
  mallocArenas: number;
}

/**
 * The node flags the main thread should have and this process lacks; none means no relaunch. An operator's
 * own `--max-semi-space-size` on node's command line wins over `--main-semi-space-size`.
 */
export function missingMainFlags(
  settings: Pick<MainThreadSettings, 'memoryReducer' | 'mainSemiSpaceSize'>,
  execArgv: readonly string[] = process.execArgv,
): string[] {
  const missing: string[] = [];
  if (!settings.memoryReducer && !execArgv.includes('--no-memory-reducer')) missing.push('--no-memory-reducer');
  const ownSemiSpace = execArgv.some(isSemiSpaceFlag);
  if (settings.mainSemiSpaceSize > 0 && !ownSemiSpace) missing.push(`--max-semi-space-size=${settings.mainSemiSpaceSize}`);
  return missing;
}

/** Does `flag` set V8's semi-space size? */
const isSemiSpaceFlag = (flag: string): boolean => /^--max[-_]semi[-_]space[-_]size(=|$)/.test(flag);

/**
 * Leaves main's young-generation size to main. V8 gives every isolate created while
 * `--max-semi-space-size` is set that size and ignores a worker's `resourceLimits`, so the actors had main's
 * 2 MB semi-spaces: they allocate per request, and an HTTP/2 actor spent about a third of its CPU on
 * scavenges (docs/performance.md, Tuning). Once main's own heap is set up the flag is cleared, and each
 * actor's young generation is its own (`maxYoungGenerationSizeMb`, server.ts `DEFAULTS.actorResourceLimits`).
 * Returns whether there was a flag to clear.
 */
export function keepSemiSpaceFlagToMain(v8: { setFlagsFromString(flags: string): void }, execArgv: readonly string[] = process.execArgv): boolean {
  if (!execArgv.some(isSemiSpaceFlag)) return false;
  v8.setFlagsFromString('--max-semi-space-size=0'); // 0: unset, as when node starts without it
  return true;
}

/** Set in the child's environment by the launcher; read once and removed, so descendants do not see it. */
const LAUNCHED = 'GRAINBOWS_LAUNCHED';

/**
 * The signals the arbiter handles (arbiter.ts). The child stays in this process's session and group, so a
 * Ctrl+C from the terminal reaches it directly as well as through this process: harmless, INT and QUIT
 * already mean a quick stop. (A session of its own would also be an autogroup of its own on Linux, which
 * changes how the kernel shares the CPU between the server and everything else, as bench/slow-clients.ts
 * measured.)
 */
const FORWARDED: NodeJS.Signals[] = ['SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGTERM', 'SIGTTIN', 'SIGTTOU', 'SIGUSR1', 'SIGUSR2'];
/**
 * Windows: what Node reports as these signals means "stop gracefully" there (arbiter.ts), and `child.kill`
 * would terminate the child outright, so the launcher asks over the IPC channel. A console's Ctrl+C also
 * reaches the child itself: the second request is a no-op.
 */
const STOP_ON_WINDOWS: NodeJS.Signals[] = ['SIGINT', 'SIGBREAK', 'SIGHUP', 'SIGTERM'];
/** The one message a launcher sends its child: the signal it received, meaning stop. */
const STOP_KIND = 'grainbows-launcher-stop';
interface StopMessage {
  kind: typeof STOP_KIND;
  signal: NodeJS.Signals;
}

/**
 * Starts this same command again with node `flags` added: in place where it can (exec-in-place.ts), and
 * returns only where it cannot, with a promise of the exit status the child ended with (a signal that
 * killed it is re-raised here first). `inheritedFds`: descriptors beyond stdio the new process needs at the
 * same numbers (the `fd://N` binds).
 */
export async function relaunch(
  flags: readonly string[],
  inheritedFds: readonly number[] = [],
  { argv = process.argv.slice(1), stopWithParent = false, env = {} }: { argv?: readonly string[]; stopWithParent?: boolean; env?: Record<string, string> } = {},
): Promise<number> {
  const nodeArgs = [...process.execArgv, ...flags, ...argv];
  await execInPlace(process.execPath, [process.execPath, ...nodeArgs], { ...process.env, ...env }, inheritedFds);
  return new Promise((resolve) => {
    const windows = process.platform === 'win32';
    const highest = Math.max(2, ...inheritedFds);
    const passed = Array.from({ length: highest - 2 }, (_, index) => (inheritedFds.includes(index + 3) ? index + 3 : 'ignore'));
    const child = spawn(process.execPath, nodeArgs, {
      stdio: ['inherit', 'inherit', 'inherit', ...passed, 'ipc'], // the channel after them, never on an fd:// number
      env: { ...process.env, ...env, [LAUNCHED]: '1' },
    });
    const handlers = new Map<NodeJS.Signals, () => void>(
      windows
        ? STOP_ON_WINDOWS.map((signal) => [signal, () => child.connected && child.send({ kind: STOP_KIND, signal } satisfies StopMessage)])
        : FORWARDED.map((signal) => [signal, () => child.kill(signal)]),
    );
    for (const [signal, handler] of handlers) process.on(signal, handler);
    // Started by npm, which may end without passing TERM on (parent-watch.ts): its end means TERM.
    if (stopWithParent) watchParent(() => handlers.get('SIGTERM')?.());
    child.on('error', (error) => {
      process.stderr.write(`grainbows: cannot start ${process.execPath}: ${error.message}\n`);
      resolve(1);
    });
    child.on('exit', (status, signal) => {
      for (const [name, handler] of handlers) process.off(name, handler);
      if (signal) process.kill(process.pid, signal); // die of the same signal, as a shell would report it
      resolve(status ?? 1);
    });
  });
}

/**
 * Whether a launcher started this process. Call it first: it removes the mark from the environment, so that
 * a process this one starts (a daemon, an upgrade's successor) does not take itself for a launcher's child.
 */
export function claimLauncher(): boolean {
  const launched = process.env[LAUNCHED] === '1';
  delete process.env[LAUNCHED];
  return launched;
}

/**
 * In the child of a launcher: calls `stop` once the launcher is gone (its IPC channel closed) or asks for it
 * (Windows, where it cannot signal).
 */
export function watchLauncher(launched: boolean, stop: (why: 'orphaned' | NodeJS.Signals) => void): boolean {
  if (!launched || !process.channel) return false;
  process.channel.unref(); // the channel alone must not keep the server alive
  process.once('disconnect', () => stop('orphaned'));
  process.on('message', (message: Partial<StopMessage> | null) => {
    if (message?.kind === STOP_KIND && message.signal) stop(message.signal);
  });
  return true;
}
