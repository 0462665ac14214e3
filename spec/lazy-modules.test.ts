/**
 * A feature's modules load only where the feature is on (docs/performance.md, Memory): the serving process
 * imports neither node:tls nor the task pool without HTTPS and --tasks, and an actor loads neither node:tls
 * nor node:crypto (engine.io session names, session forwarding) without HTTPS and --sticky-sessions. Each
 * probe is run with the feature on too, which shows that it sees the module when it is there.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { Agent, fetch as undiciFetch } from 'undici';
import { fixture, startCli } from './helpers/servers.js';
import { makeCertificate } from './helpers/certificates.js';

const TRACE = pathToFileURL(fixture('trace-imports.mjs')).href;

/** Runs the CLI with `args` on the builtins-reporting app; returns what main resolved and what an actor loaded. */
async function loadedWith(args: string[], tls?: { ca: Buffer }): Promise<{ mainResolved: string[]; actorBuiltins: string[] }> {
  const trace = path.join(mkdtempSync(path.join(os.tmpdir(), 'grainbows-trace-')), 'imports.txt');
  const cli = await startCli(['-b', '127.0.0.1:0', '-w', '1', ...args, fixture('loaded-builtins.js')], {
    nodeFlags: ['--import', TRACE],
    env: { GRAINBOWS_TRACE_IMPORTS: trace },
  });
  try {
    const dispatcher = tls ? new Agent({ connect: { ca: tls.ca } }) : undefined;
    const response = await undiciFetch(`${cli.url}/`, dispatcher ? { dispatcher } : {});
    const actorBuiltins = (await response.json()) as string[];
    return { mainResolved: readFileSync(trace, 'utf8').split('\n'), actorBuiltins };
  } finally {
    await cli.stop('SIGTERM');
  }
}

/**
 * The builtins a thread has once it imported node:http from ESM, as every actor does. Node 26 builds
 * node:http's namespace from exports that load its fetch implementation, and node:tls and node:crypto
 * with it: there they are in every thread, and nothing is left for grainbows to keep out.
 */
async function builtinsWithHttp(): Promise<string[]> {
  const code = `import('node:http').then(() => require('node:worker_threads').parentPort.postMessage(
    process.moduleLoadList.filter((entry) => entry.startsWith('NativeModule ')).map((entry) => entry.slice(13))))`;
  const worker = new Worker(code, { eval: true });
  try {
    return await new Promise<string[]>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
  } finally {
    await worker.terminate();
  }
}

const resolvedModule = (resolved: string[], file: string) => resolved.some((url) => url.endsWith(file));

describe("a feature's modules load with the feature only", () => {
  it('without HTTPS, --tasks or --sticky-sessions: no node:tls or task pool in main, no node:tls or node:crypto in an actor', async () => {
    const { mainResolved, actorBuiltins } = await loadedWith([]);
    assert.ok(resolvedModule(mainResolved, '/dist/source/server.js'), 'the trace saw the serving process');
    assert.ok(!mainResolved.includes('node:tls'), 'main: node:tls');
    assert.ok(!resolvedModule(mainResolved, '/dist/source/tasks/task-pools.js'), 'main: the task pool');
    assert.ok(actorBuiltins.includes('http'), `the actor reported its builtins: ${actorBuiltins.length}`);
    const withHttp = await builtinsWithHttp();
    for (const builtin of ['tls', 'crypto'].filter((name) => !withHttp.includes(name))) {
      assert.ok(!actorBuiltins.includes(builtin), `actor: node:${builtin}`);
    }
  });

  it('with HTTPS and --tasks: main imports node:tls and the task pool, and the actor ending TLS node:tls', async () => {
    const certificate = makeCertificate('lazy');
    const { mainResolved, actorBuiltins } = await loadedWith(
      ['--certfile', certificate.certfile, '--keyfile', certificate.keyfile, '--tasks', fixture('tasks/work.js')],
      { ca: readFileSync(certificate.certfile) },
    );
    assert.ok(mainResolved.includes('node:tls'), 'main: node:tls');
    assert.ok(resolvedModule(mainResolved, '/dist/source/tasks/task-pools.js'), 'main: the task pool');
    assert.ok(actorBuiltins.includes('tls'), 'actor: node:tls');
  });

  it('with --sticky-sessions: the actor loads node:crypto (the session names it gives engine.io)', async () => {
    const { actorBuiltins } = await loadedWith(['--sticky-sessions']);
    assert.ok(actorBuiltins.includes('crypto'), 'actor: node:crypto');
  });
});
