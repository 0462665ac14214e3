/**
 * Imports the user's module inside an actor and turns whatever it exports into a request listener.
 *
 * Kinds are detected in this order (docs/design.md, pitfall 8): an object with `fetch` (Hono, itty-router, a
 * `{ fetch }` literal); a Koa app (`callback()`); a Fastify instance (`routing` after `ready()`); an
 * `http.Server` (its 'request' listeners); a function of one parameter (a Fetch handler); any other function
 * (a `(req, res)` listener: plain, Express, Connect). A Fastify instance and an exported `http.Server` also
 * bring a server of their own, whose 'upgrade' and 'connect' listeners hear those events (app-own-server.ts).
 */
import { Server, type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { AppSpec } from '../shared/app-spec.js';
import { announceListening, type FastifyInstanceLike } from './fastify-lifecycle.js';
import type { AppKind, ListeningAddress, ServerHook } from '../shared/actor-protocol.js';
import { appEventOf } from './app-own-server.js';

export interface LoadedApp {
  kind: AppKind;
  listener: RequestListener;
  onServer?: ServerHook;
  /** The app's own http.Server, when it built one: it hears the actor server's upgrades (app-own-server.ts). */
  ownServer?: Server;
  /** Main's listeners are open (Fastify's onListen hooks run here). */
  onListening?: (addresses: ListeningAddress[]) => Promise<void>;
  /** The actor is stopping, its requests done (Fastify's onClose hooks run here). */
  close?: () => Promise<void>;
}

/** Why an app could not be loaded; crosses the thread boundary as plain data. */
export class AppLoadFailure extends Error {
  constructor(
    readonly code: 'E_APP_LOAD' | 'E_NOT_AN_APP',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

type FetchHandler = (request: Request, ...rest: unknown[]) => Response | Promise<Response>;

interface KoaLike {
  callback(): RequestListener;
  use: unknown;
  middleware: unknown;
}
interface FastifyLike extends FastifyInstanceLike {
  ready(): Promise<unknown>;
  routing(req: IncomingMessage, res: ServerResponse): void;
}

const isObject = (value: unknown): value is Record<string, unknown> => (typeof value === 'object' || typeof value === 'function') && value !== null;

const isKoa = (app: unknown): app is KoaLike =>
  isObject(app) && typeof app.callback === 'function' && typeof app.use === 'function' && Array.isArray(app.middleware);

const isFastify = (app: unknown): app is FastifyLike =>
  isObject(app) && typeof app.routing === 'function' && typeof app.ready === 'function' && 'server' in app;

async function fetchListener(handler: FetchHandler): Promise<RequestListener> {
  // @hono/node-server's adapter: a well-kept Request/Response bridge with streaming both ways. We keep the
  // global Request/Response untouched so the app sees the runtime's own classes. Loaded only for a Fetch
  // app: other actors never pay for it (docs/performance.md, Memory).
  const { getRequestListener } = await import('@hono/node-server');
  return getRequestListener(handler, { overrideGlobalObjects: false }) as RequestListener;
}

export async function adaptApp(exported: unknown, where: string): Promise<Omit<LoadedApp, 'onServer'>> {
  if (isObject(exported) && typeof exported.fetch === 'function') {
    const target = exported;
    const fetch = exported.fetch as FetchHandler;
    return { kind: 'fetch', listener: await fetchListener((request, ...rest) => fetch.call(target, request, ...rest)) };
  }
  if (isKoa(exported)) return { kind: 'koa', listener: exported.callback() };
  if (isFastify(exported)) {
    await exported.ready();
    const app = exported;
    return {
      kind: 'fastify',
      listener: (req, res) => app.routing(req, res),
      ownServer: app.server instanceof Server ? app.server : undefined,
      onListening: (addresses) => announceListening(app, addresses),
      close: async () => {
        await app.close();
      },
    };
  }
  if (exported instanceof Server) {
    const server = exported;
    return { kind: 'http-server', listener: (req, res) => server.emit(appEventOf(req), req, res), ownServer: server };
  }
  if (typeof exported === 'function') {
    if (exported.length === 1) return { kind: 'fetch', listener: await fetchListener(exported as FetchHandler) };
    return { kind: 'listener', listener: exported as RequestListener };
  }
  const shown = exported === undefined ? 'undefined' : exported === null ? 'null' : typeof exported;
  throw new AppLoadFailure(
    'E_NOT_AN_APP',
    `${where} is not an app (it is ${shown}): export a (req, res) listener, a Fetch handler, an object with fetch(), a Koa app, a Fastify instance or an http.Server`,
  );
}

const TYPESCRIPT = /\.(ts|mts|cts|tsx)$/;

/**
 * The ES-module entry of `pkg`'s `subpath` export, found from `from`'s directory as Node would. require's
 * resolver would pick the CommonJS entry, and Node 20's import.meta.resolve takes no parent.
 */
function resolveEsmExport(from: string, pkg: string, subpath: string): string {
  const manifestPath = createRequire(from).resolve(`${pkg}/package.json`);
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { exports?: Record<string, { import?: string | { default?: string } }> };
  const entry = manifest.exports?.[subpath]?.import;
  const target = typeof entry === 'string' ? entry : entry?.default;
  if (!target) throw new Error(`${pkg} has no ES module export ${subpath}`);
  return pathToFileURL(path.join(path.dirname(manifestPath), target)).href;
}

interface TsxApi {
  tsImport(specifier: string, parent: string): Promise<Record<string, unknown>>;
}

/**
 * Imports the app's module. A TypeScript app runs as it is where Node strips types (22.18 and later, 23.6
 * and later). Elsewhere (Node 20) it is imported through tsx's API when tsx is installed where the app
 * can resolve it: loader hooks given as `node --import tsx` do not reach worker threads on Node 20, so the
 * actor asks tsx itself. Without tsx: one line that says what to do.
 */
async function importModule(spec: AppSpec): Promise<Record<string, unknown>> {
  try {
    return (await import(spec.url)) as Record<string, unknown>;
  } catch (error) {
    if (!TYPESCRIPT.test(spec.url) || (error as NodeJS.ErrnoException).code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw error;
    let tsx: TsxApi;
    try {
      tsx = (await import(resolveEsmExport(spec.url, 'tsx', './esm/api'))) as TsxApi;
    } catch {
      throw new AppLoadFailure(
        'E_APP_LOAD',
        `${spec.display} is TypeScript, which Node ${process.versions.node} does not run: install tsx beside the app (npm install --save-dev tsx), use Node 22.18 or later, or compile the app to JavaScript`,
      );
    }
    return tsx.tsImport(spec.url, spec.url);
  }
}

export async function loadApp(spec: AppSpec): Promise<LoadedApp> {
  let namespace: Record<string, unknown>;
  try {
    namespace = await importModule(spec);
  } catch (error) {
    if (error instanceof AppLoadFailure) throw error;
    const where = error instanceof SyntaxError ? (await import('../shared/syntax-error.js')).locateSyntaxError(spec.url) : undefined;
    throw new AppLoadFailure('E_APP_LOAD', `failed to load ${spec.display}${where ? ` (${where})` : ''}`, { cause: error });
  }
  if (!(spec.exportName in namespace)) {
    const names = Object.keys(namespace).join(', ') || 'none';
    throw new AppLoadFailure('E_NOT_AN_APP', `${spec.display} has no export named '${spec.exportName}' (its exports: ${names})`);
  }
  const where = spec.exportName === 'default' ? `the default export of ${spec.display}` : `export '${spec.exportName}' of ${spec.display}`;
  const app = await adaptApp(namespace[spec.exportName], where);
  const hook = namespace.onServer;
  return { ...app, onServer: typeof hook === 'function' ? (hook as ServerHook) : undefined };
}
