/**
 * Starting real grainbows servers for tests: in-process through the library (`withServer`) or as the real
 * CLI in a child process (`startCli`, `runCli`). Everything listens on 127.0.0.1 port 0.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve, type GrainbowsServer, type HandoffStrategy, type ServeOptions } from '../../source/index.js';
import { canTransferSockets } from '../../source/handoff/strategy.js';
import { createLogger } from '../../shared/log.js';

import { until } from './wait.js';

export const ROOT = path.resolve(fileURLToPath(new URL('../../..', import.meta.url)));
export const CLI = path.join(ROOT, 'dist/source/cli/cli.js');
export const fixture = (name: string): string => path.join(ROOT, 'spec/fixtures', name);
export const example = (name: string): string => path.join(ROOT, 'examples', name);

/** A copy of spec/fixtures/versioned.js in a fresh directory: it answers `version` until `setVersion` rewrites it (read at import). */
export function versionedApp(version: string): { app: string; dir: string; setVersion: (v: string) => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'grainbows-versioned-'));
  const app = path.join(dir, 'app.js');
  copyFileSync(fixture('versioned.js'), app);
  const setVersion = (v: string) => writeFileSync(path.join(dir, 'version.txt'), v);
  setVersion(version);
  return { app, dir, setVersion };
}

/**
 * The hand-off strategies this runtime can do: every behaviour test runs under each. GRAINBOWS_TEST_STRATEGIES
 * (a comma list) keeps some of them: .ci/run runs only `transfer` on Node 26, where it is the one that
 * differs from Node 20 (sockets moved, not descriptors copied); relay is the same code on both and the
 * Node 20 run covers it.
 */
export async function strategies(): Promise<HandoffStrategy[]> {
  const possible: HandoffStrategy[] = (await canTransferSockets()) ? ['relay', 'transfer'] : ['relay'];
  const wanted = process.env.GRAINBOWS_TEST_STRATEGIES?.split(',').map((name) => name.trim());
  return wanted ? possible.filter((strategy) => wanted.includes(strategy)) : possible;
}

export interface TestServer {
  server: GrainbowsServer;
  url: string;
  port: number;
  /** Error-log lines the server wrote. */
  logs: string[];
}

export async function withServer<T>(options: Partial<ServeOptions> & { app: string }, body: (s: TestServer) => Promise<T>): Promise<T> {
  const logs: string[] = [];
  const server = await withDeadline(
    serve({
      bind: ['127.0.0.1:0'],
      workers: 2,
      logger: createLogger('debug', (line) => logs.push(line)),
      ...options,
    }),
    START_DEADLINE_MS,
    () => `serve() did not finish in ${START_DEADLINE_MS / 1000} s; its last log lines:\n${logs.slice(-30).join('')}`,
  );
  const url = server.urls[0];
  try {
    return await body({ server, url, port: Number(new URL(url).port), logs });
  } finally {
    await withDeadline(
      server.close(),
      CLOSE_DEADLINE_MS,
      () => `server.close() did not finish in ${CLOSE_DEADLINE_MS / 1000} s; its last log lines:\n${logs.slice(-30).join('')}`,
    );
  }
}

/** A server whose start or close hangs fails its test with its log, well before the test's own timeout. */
const START_DEADLINE_MS = 30_000;
const CLOSE_DEADLINE_MS = 20_000;

/** `promise`, or a rejection with `explain()` once `ms` have passed. */
async function withDeadline<T>(promise: Promise<T>, ms: number, explain: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(explain())), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * One quiet echo server (spec/fixtures/echo.js, one actor) for a suite that sends it raw bytes: the parser
 * suites (smuggling, fuzzer) start one per hand-off and parser mode, and close it after.
 */
export async function startEchoServer(handoff: HandoffStrategy, options: Partial<ServeOptions> = {}): Promise<{ server: GrainbowsServer; port: number }> {
  const server = await serve({ app: fixture('echo.js'), bind: ['127.0.0.1:0'], handoff, workers: 1, logger: createLogger('critical'), ...options });
  return { server, port: Number(new URL(server.urls[0]).port) };
}

export interface CliResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to completion (for commands that should exit by themselves). */
export function runCli(args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string; nodeFlags?: string[] } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...(options.nodeFlags ?? []), CLI, ...args], {
      cwd: options.cwd ?? ROOT,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 15_000);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr });
    });
  });
}

/** Requests a CLI server's actors are answering now, as `grainbows ctl --json status` reports them; -1 when it does not answer. */
export async function requestsInFlight(pidfile: string): Promise<number> {
  const status = await runCli(['ctl', '--pid', pidfile, '--json', 'status']);
  if (status.status !== 0) return -1;
  const { actors } = JSON.parse(status.stdout).result as { actors: Array<{ requestsInFlight: number }> };
  return actors.reduce((sum, actor) => sum + actor.requestsInFlight, 0);
}

export interface RunningCli {
  /** The process started: the server itself, or on Node 20 its launcher (source/cli/relaunch.ts). */
  child: ChildProcess;
  /** The serving process's pid, from its `Listening at: URL (PID)` line. */
  pid: number;
  url: string;
  output: () => string;
  /** Resolves once stderr matches (lines may arrive after the first `Listening at`). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** Sends the signal and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<CliResult>;
}

/**
 * Starts the CLI and resolves once it logs `Listening at: URL` (to stderr, or to `logFile` when its error log
 * goes there). `nodeFlags` go on node's command line, before the CLI.
 */
export function startCli(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; execPath?: string; logFile?: string; nodeFlags?: string[] } = {},
): Promise<RunningCli> {
  return new Promise((resolve, reject) => {
    const child = spawn(options.execPath ?? process.execPath, [...(options.nodeFlags ?? []), CLI, ...args], {
      cwd: options.cwd ?? ROOT,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    // 'close' waits for stdout and stderr to close, which a process started by this one (a binary upgrade's
    // successor) keeps open: after 'exit', give the pipes a moment to drain, no more.
    const exited = new Promise<CliResult>((done) =>
      child.on('exit', (status, signal) => {
        const finish = () => done({ status, signal, stdout, stderr });
        const timer = setTimeout(finish, 1000);
        child.once('close', () => {
          clearTimeout(timer);
          finish();
        });
      }),
    );
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`CLI did not start listening in time:\n${stderr}`));
    }, 20_000);
    child.stdout.on('data', (chunk) => (stdout += chunk));
    if (options.logFile) {
      const logFile = options.logFile;
      const poll = setInterval(() => {
        if (!existsSync(logFile)) return;
        stderr = readFileSync(logFile, 'utf8');
        child.stderr.emit('data', '');
      }, 25);
      child.on('close', () => clearInterval(poll));
    }
    child.stderr.on('data', (chunk) => {
      if (options.logFile) {
        if (chunk !== '') return;
      } else stderr += chunk;
      const match = /Listening at: (\S+) \((\d+)\)/.exec(stderr);
      if (match && timer) {
        clearTimeout(timer);
        resolve({
          child,
          pid: Number(match[2]),
          url: match[1],
          output: () => stderr,
          waitFor: (pattern, timeoutMs = 10_000) =>
            until(() => pattern.exec(stderr), String(pattern), timeoutMs, 20).catch(() => {
              throw new Error(`no ${pattern} in:\n${stderr}`);
            }),
          stop: (signal = 'SIGTERM') => {
            if (child.exitCode === null && child.signalCode === null) child.kill(signal);
            // A server that does not stop fails its test instead of hanging the suite.
            const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
            return exited.finally(() => clearTimeout(killer));
          },
        });
      }
    });
    child.on('close', (status) => {
      clearTimeout(timer);
      reject(new Error(`CLI exited (${status}) before listening:\n${stderr}`));
    });
  });
}
