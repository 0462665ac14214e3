/**
 * The arbiter: the running CLI process's lifecycle, read top to bottom, after gunicorn's arbiter.py.
 *
 *   start → serve, dispatching queued commands one at a time → stop (graceful or quick) → exit
 *
 * Commands come from POSIX signals and (elsewhere) the control channel. Signals are queued and dispatched
 * by name, one at a time, so a HUP that arrives during a reload waits for it instead of interleaving.
 * On Windows there are no HUP/TTIN/TTOU/USR1 signals: Ctrl+C and Ctrl+Break stop gracefully, and a console
 * close (which Node reports as SIGHUP there) stops too, never reloads.
 */
import type { Logger } from '../../shared/log.js';
import { ExitStatus } from '../../shared/errors.js';
import type { ServiceState } from './systemd.js';

export type Command = 'reload' | 'stop' | 'quit' | 'increment' | 'decrement' | 'reopen' | 'resize' | 'upgrade';

/** Which signal asks for what, on POSIX (gunicorn's table). */
const POSIX_SIGNALS: Partial<Record<NodeJS.Signals, Command>> = {
  SIGHUP: 'reload',
  SIGTERM: 'stop',
  SIGINT: 'quit',
  SIGQUIT: 'quit',
  SIGTTIN: 'increment',
  SIGTTOU: 'decrement',
  SIGUSR1: 'reopen',
  SIGUSR2: 'upgrade',
};

/** Windows: every signal Node delivers there means "stop gracefully". */
const WINDOWS_SIGNALS: Partial<Record<NodeJS.Signals, Command>> = {
  SIGINT: 'stop',
  SIGBREAK: 'stop',
  SIGHUP: 'stop',
  SIGTERM: 'stop',
};

/**
 * What the arbiter drives: the running server (source/server.ts's GrainbowsServer), with `Changes` the
 * settings a reload applies (its ServeOptions).
 */
export interface ArbitedServer<Changes> {
  readonly workers: number;
  resize(workers: number): Promise<void>;
  reload(changes: Changes): Promise<void>;
  /** `handingOver`: a binary upgrade's successor serves the listening sockets now; do not unlink them. */
  close(options: { graceful: boolean; handingOver: boolean }): Promise<void>;
  /** Reopens the access log; the error when it cannot. */
  reopenLogs(): Error | undefined;
}

export interface ArbiterOptions<Changes> {
  log: Logger;
  /** Re-reads the configuration for a reload (config file, GRAINBOWS_CMD_ARGS, command line). */
  rereadConfig: () => Promise<Changes>;
  /** Reopens the error log file (USR1; the access log is the server's): the error when it cannot (lines then go on to the old file). */
  reopenLogs?: () => Error | undefined;
  /**
   * Binary upgrade: starts the next process on the same listening sockets and resolves once it serves
   * (rejects, leaving this one serving, if it does not). This process then stops gracefully.
   */
  startSuccessor?: () => Promise<void>;
  /** Tells the service manager where the lifecycle is (systemd.ts): reloading, ready again, stopping. */
  notify?: (state: ServiceState) => void;
  /** Called once the server has stopped, with the exit status. */
  onExit: (status: number) => void | Promise<void>;
  platform?: NodeJS.Platform;
}

export class Arbiter<Changes> {
  private readonly queue: Array<{ command: Command; argument?: number; done: (error?: unknown) => void }> = [];
  private dispatching = false;
  private stopping = false;
  private server: ArbitedServer<Changes> | undefined;

  constructor(private readonly options: ArbiterOptions<Changes>) {}

  /**
   * Installs the signal handlers of this platform. Call it before the server starts: a signal that arrives
   * before its handler exists gets the default action (TTIN, TTOU stop the process; HUP ends it).
   * Commands that arrive before `serve()` wait for it.
   */
  listen(): void {
    const table = (this.options.platform ?? process.platform) === 'win32' ? WINDOWS_SIGNALS : POSIX_SIGNALS;
    for (const [signal, command] of Object.entries(table) as Array<[NodeJS.Signals, Command]>) {
      process.on(signal, () => {
        this.options.log.info(`Handling signal: ${signal.replace(/^SIG/, '').toLowerCase()}`);
        this.enqueue(command).catch(() => {}); // already logged by dispatch()
      });
    }
  }

  /** The server is up: run what was queued meanwhile, and everything after. */
  serve(server: ArbitedServer<Changes>): void {
    this.server = server;
    void this.dispatch();
  }

  /**
   * Queues a command; commands run one at a time in arrival order, and the promise settles when this one
   * has run (a control-channel client waits for it). A stop jumps the queue.
   */
  enqueue(command: Command, argument?: number): Promise<void> {
    if (command === 'stop' || command === 'quit') {
      for (const dropped of this.queue.splice(0)) dropped.done(new Error(`superseded by ${command}`));
      // A second INT/QUIT during a graceful stop makes it quick, as in gunicorn.
      if (this.stopping && command === 'quit') void this.quit();
    }
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ command, argument, done: (error) => (error === undefined ? resolve() : reject(error)) });
      void this.dispatch();
    });
  }

  private async dispatch(): Promise<void> {
    if (this.dispatching || !this.server) return;
    this.dispatching = true;
    try {
      for (let next = this.queue.shift(); next; next = this.queue.shift()) {
        try {
          await this.handlers[next.command](next.argument);
          next.done();
        } catch (error) {
          this.options.log.error(`${next.command} failed: ${error instanceof Error ? error.message : String(error)}`);
          next.done(error);
        }
      }
    } finally {
      this.dispatching = false;
    }
  }

  private readonly handlers: Record<Command, (argument?: number) => Promise<void>> = {
    reload: () => this.reload(),
    resize: (count) => this.running.resize(count ?? this.running.workers),
    stop: () => this.stop(true),
    quit: () => this.quit(),
    increment: () => this.running.resize(this.running.workers + 1),
    decrement: async () => {
      if (this.running.workers <= 1) {
        this.options.log.info('Already at one actor: not removing it');
        return;
      }
      await this.running.resize(this.running.workers - 1);
    },
    upgrade: async () => {
      if (!this.options.startSuccessor) throw new Error('upgrade is not available here');
      try {
        await this.options.startSuccessor();
      } catch (error) {
        throw new Error(`the new process did not start, this one keeps serving: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
      }
      this.options.log.info('Upgrade: the new process is serving; stopping this one gracefully');
      // Not awaited: the command is done (a control client gets its answer) while this process drains.
      void this.stop(true, true).catch((error: unknown) => this.stopFailed(error));
    },
    reopen: async () => {
      const failures = [this.running.reopenLogs(), this.options.reopenLogs?.()].filter((error) => error !== undefined);
      for (const error of failures) this.options.log.error(`Cannot reopen a log file, writing on to the one open before: ${error.message}`);
      if (failures.length === 0) this.options.log.info('Reopened log files');
    },
  };

  private get running(): ArbitedServer<Changes> {
    if (!this.server) throw new Error('no server yet');
    return this.server;
  }

  private async reload(): Promise<void> {
    this.options.notify?.('reloading');
    try {
      await this.reloadGeneration();
    } finally {
      this.options.notify?.('ready'); // the new generation, or the old one still serving
    }
  }

  private async reloadGeneration(): Promise<void> {
    let changes: Changes;
    try {
      changes = await this.options.rereadConfig();
    } catch (error) {
      throw new Error(`the new configuration is not valid, keeping the running one: ${error instanceof Error ? error.message : String(error)}`, {
        cause: error,
      });
    }
    try {
      await this.running.reload(changes);
    } catch (error) {
      throw new Error(`the new generation did not start, the old one keeps serving: ${error instanceof Error ? error.message : String(error)}`, {
        cause: error,
      });
    }
  }

  private async stop(graceful: boolean, handingOver = false): Promise<void> {
    if (this.stopping && graceful) return;
    this.stopping = true;
    // Handing over to an upgrade's successor is not the service stopping: the successor took its place.
    if (!handingOver) this.options.notify?.('stopping');
    await this.running.close({ graceful, handingOver });
    await this.options.onExit(ExitStatus.ok);
  }

  /**
   * A stop that threw (closing a listener, a hook) must not end the process with an unhandled rejection in
   * the middle of its drain: it is logged, and the process exits as a stop would, with a failure status.
   */
  private async stopFailed(error: unknown): Promise<void> {
    this.options.log.error(`stop failed: ${error instanceof Error ? error.message : String(error)}`);
    await this.options.onExit(ExitStatus.failure);
  }

  private quick?: Promise<void>;
  private quit(): Promise<void> {
    this.quick ??= this.stop(false);
    return this.quick;
  }
}
