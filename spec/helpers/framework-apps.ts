/**
 * The real framework apps of spec/fixtures/frameworks/ (each written as its framework's docs write it) and
 * where each serves the routes every fixture has (spec/fixtures/frameworks/common.js): the volume suite
 * (frameworks.test.ts) and the hostile-input suite (framework-input.test.ts) drive the same apps.
 */
import { fixture } from './servers.js';

export const STREAM_LINES = 20;

/** Where a fixture serves each kind of request of the volume scenario, and what it answers. */
export interface Routes {
  hello: string;
  echo: (n: number) => { path: string; body: unknown; answer: unknown };
  /** A handler that throws, and the status the framework answers it with. */
  boom: { path: string; status: number };
  stream: { path: string; headers?: Record<string, string>; parts: (body: string) => number };
  /** Answers a first part at once and the rest later. */
  slow: string;
}

const lines = (body: string) => body.split('\n').filter(Boolean).length;
export const ROUTES: Routes = {
  hello: '/hello',
  echo: (n) => ({ path: '/echo', body: { n }, answer: { n } }),
  boom: { path: '/boom', status: 500 },
  stream: { path: '/stream', parts: lines },
  slow: '/slow',
};
export const graphql = (query: string) => `/graphql?query=${encodeURIComponent(query)}`;
const YOGA_ROUTES: Routes = {
  hello: graphql('{ hello }'),
  echo: (n) => ({ path: '/graphql', body: { query: 'query ($n: Int!) { echo(n: $n) }', variables: { n } }, answer: { data: { echo: n } } }),
  // GraphQL answers a failing resolver 200, with the (masked) error in the body.
  boom: { path: graphql('{ boom }'), status: 200 },
  stream: {
    path: graphql(`subscription { countdown(from: ${STREAM_LINES - 1}) }`),
    headers: { accept: 'text/event-stream' },
    parts: (body) => body.split('event: next').length - 1,
  },
  slow: graphql('subscription { countdown(from: 1000) }'),
};

export interface FrameworkApp {
  name: string;
  file: string;
  routes?: Routes;
}

export const APPS: FrameworkApp[] = [
  { name: 'Express 5', file: 'express.js' },
  { name: 'Koa 3', file: 'koa.js' },
  { name: 'Fastify 5', file: 'fastify.js' },
  { name: 'Connect', file: 'connect.js' },
  { name: 'Hono', file: 'hono.js' },
  { name: 'itty-router', file: 'itty.js' },
  { name: 'h3', file: 'h3.js' },
  { name: 'an exported http.Server with ws', file: 'http-server-ws.js' },
  { name: 'NestJS (Express)', file: 'nest.js' },
  { name: 'graphql-yoga', file: 'yoga.js', routes: YOGA_ROUTES },
  { name: 'socket.io on an exported http.Server', file: 'socket-io.js' },
  { name: 'hapi 21 (server.listener)', file: 'hapi.js' },
];

export const frameworkApp = (file: string): string => fixture(`frameworks/${file}`);
