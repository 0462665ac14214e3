/**
 * The command line: every bind kind, port 0, several actors serving, and a clear one-line error with a
 * documented exit status for every kind of bad input.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { CLI, ROOT, fixture, runCli, startCli } from './helpers/servers.js';
import { canTransferSockets, transferMechanism } from '../source/handoff/strategy.js';
import { exchange } from './helpers/wire.js';
import { until } from './helpers/wait.js';

function requestOverUnixSocket(socketPath: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let text = '';
    socket.on('data', (chunk) => (text += chunk));
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
    socket.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  });
}

const hasIPv6 = Object.values(os.networkInterfaces()).some((list) => list?.some((i) => i.family === 'IPv6' && i.internal));

describe('grainbows CLI', () => {
  it('the request limits, --header-map and --backlog flags take effect on the running server', async () => {
    const cli = await startCli([
      '-b',
      '127.0.0.1:0',
      '--limit-request-line',
      '100',
      '--limit-request-fields',
      '5',
      '--limit-request-field-size',
      '200',
      '--header-map',
      'refuse',
      '--backlog',
      '77',
      fixture('identify.js'),
    ]);
    try {
      const port = Number(new URL(cli.url).port);
      const status = async (request: string) => (await exchange(port, request, { timeoutMs: 5000 })).responses[0]?.status;
      assert.equal(await status(`GET /${'a'.repeat(120)} HTTP/1.1\r\nHost: x\r\n\r\n`), 414);
      assert.equal(await status(`GET /${'a'.repeat(60)} HTTP/1.1\r\nHost: x\r\n\r\n`), 200);
      assert.equal(await status(`GET / HTTP/1.1\r\nHost: x\r\n${'X-A: 1\r\n'.repeat(5)}\r\n`), 431);
      assert.equal(await status(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(250)}\r\n\r\n`), 431);
      assert.equal(await status('GET / HTTP/1.1\r\nHost: x\r\nX_Under: 1\r\n\r\n'), 400);
      // The kernel shows a listening socket's backlog as its Send-Q.
      const listening = execFileSync('ss', ['-ltnH', `sport = :${port}`], { encoding: 'utf8' })
        .trim()
        .split(/\s+/);
      assert.equal(listening[2], '77', listening.join(' '));
    } finally {
      await cli.stop();
    }
  });

  it('serves an example on port 0, prints the real address, and stops on SIGTERM with status 0', async () => {
    const cli = await startCli(['-b', '127.0.0.1:0', '-w', '2', 'examples/hello.js']);
    assert.match(cli.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.notEqual(new URL(cli.url).port, '0');
    assert.equal(await (await fetch(cli.url)).text(), 'Hello, World!');
    const result = await cli.stop('SIGTERM');
    assert.equal(result.status, 0);
    assert.match(result.stderr, /Handling signal: term/);
  });

  it('runs -w 3 actors that all serve', async () => {
    const cli = await startCli(['-b', '127.0.0.1:0', '-w', '3', fixture('identify.js')]);
    try {
      // Requests that overlap spread over the actors (least-loaded dispatch); collect who answered.
      const answers = await Promise.all(
        Array.from({ length: 9 }, () => fetch(`${cli.url}/?sleep=300`, { headers: { connection: 'close' } }).then((r) => r.text())),
      );
      assert.equal(new Set(answers).size, 3, `threads that answered: ${[...new Set(answers)].join(', ')}`);
    } finally {
      await cli.stop();
    }
  });

  it('listens on several binds at once: TCP, unix socket and (where the host has it) IPv6', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'grainbows-'));
    const socketPath = path.join(dir, 'app.sock');
    const binds = ['-b', '127.0.0.1:0', '-b', `unix:${socketPath}`, ...(hasIPv6 ? ['-b', '[::1]:0'] : [])];
    const cli = await startCli([...binds, 'examples/hello.js']);
    try {
      await cli.waitFor(new RegExp(`Listening at: unix:${socketPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
      assert.match(await requestOverUnixSocket(socketPath), /^HTTP\/1\.1 200 OK[\s\S]*Hello, World!/);
      if (hasIPv6) {
        const v6 = (await cli.waitFor(/Listening at: (http:\/\/\[::1\]:\d+)/))[1];
        assert.equal(await (await fetch(v6)).text(), 'Hello, World!');
      }
    } finally {
      await cli.stop();
    }
  });

  it('serves on an inherited listening socket (fd://N)', async () => {
    // python3 stands in for a supervisor such as systemd: it binds, then execs grainbows with the fd open.
    const script = [
      'import os, socket, sys',
      's = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16); os.set_inheritable(s.fileno(), True)',
      'print(s.getsockname()[1], flush=True)',
      'os.execv(sys.argv[1], [sys.argv[1], sys.argv[2], "-b", "fd://%d" % s.fileno(), "examples/hello.js"])',
    ].join('\n');
    const child = spawn('python3', ['-c', script, process.execPath, CLI], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const port = await new Promise<string>((resolve) => child.stdout.once('data', (chunk) => resolve(String(chunk).trim())));
      let stderr = '';
      child.stderr.on('data', (chunk) => (stderr += chunk));
      await until(() => stderr.includes('Listening at'), 'Listening at', 15_000).catch(() => {});
      assert.match(stderr, /Listening at: http:\/\/127\.0\.0\.1:\d+/);
      assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 'Hello, World!');
    } finally {
      child.kill('SIGTERM');
      if (child.exitCode === null && child.signalCode === null) await new Promise((resolve) => child.once('close', resolve));
    }
  });

  const failures: Array<{ name: string; args: string[]; status: number; message: RegExp }> = [
    { name: 'an unknown flag', args: ['--frobnicate', 'examples/hello.js'], status: 2, message: /unknown flag --frobnicate/ },
    { name: 'a bad number of workers', args: ['-w', 'abc', 'examples/hello.js'], status: 2, message: /--workers must be a whole number ≥ 1, not 'abc'/ },
    { name: 'a nonsense bind', args: ['-b', 'not a bind', 'examples/hello.js'], status: 2, message: /invalid bind address 'not a bind'/ },
    { name: 'a bad port', args: ['-b', '127.0.0.1:99999', 'examples/hello.js'], status: 2, message: /port must be a number from 0 to 65535/ },
    { name: 'an unknown hand-off', args: ['--handoff', 'teleport', 'examples/hello.js'], status: 2, message: /--handoff must be one of auto, relay, transfer/ },
    { name: 'no app at all', args: [], status: 2, message: /no app given/ },
    { name: 'an app path that does not exist', args: ['nowhere/app.js'], status: 4, message: /app module not found: nowhere\/app\.js/ },
    {
      name: 'an export that is not an app',
      args: [fixture('not-an-app.js')],
      status: 4,
      message: /the default export of .*not-an-app\.js is not an app \(it is number\)/,
    },
    {
      name: 'an export that does not exist',
      args: [`${fixture('not-an-app.js')}:missing`],
      status: 4,
      message: /has no export named 'missing' \(its exports: alsoNot, default\)/,
    },
    {
      name: 'an app with a syntax error',
      args: [fixture('syntax-error.js')],
      status: 4,
      message: /failed to load .*syntax-error\.js \(.*syntax-error\.js:2\): SyntaxError: missing \) after argument list/,
    },
    {
      name: 'an app that throws while loading',
      args: [fixture('throws-at-load.js')],
      status: 4,
      message: /failed to load .*throws-at-load\.js: Error: the database is not there/,
    },
  ];
  for (const failure of failures) {
    it(`refuses ${failure.name} with one line and status ${failure.status}`, async () => {
      const result = await runCli(['-b', '127.0.0.1:0', ...failure.args]);
      assert.equal(result.status, failure.status, result.stderr);
      const errorLines = result.stderr.split('\n').filter((line) => line.startsWith('grainbows:'));
      assert.equal(errorLines.length, 1, result.stderr);
      assert.match(errorLines[0], failure.message);
      assert.doesNotMatch(result.stderr, /^\s+at /m, 'no stack trace');
    });
  }

  it('refuses --handoff transfer where the runtime cannot transfer sockets, and uses it where it can', async () => {
    if (await canTransferSockets()) {
      const cli = await startCli(['-b', '127.0.0.1:0', '--handoff', 'transfer', 'examples/hello.js']);
      const how = (await transferMechanism()) === 'copy' ? 'dup\\(\\)ed descriptors' : 'sockets moved';
      assert.match(cli.output(), new RegExp(`Using hand-off: transfer \\(${how}\\)`));
      assert.equal(await (await fetch(cli.url)).text(), 'Hello, World!');
      await cli.stop();
    } else {
      const result = await runCli(['-b', '127.0.0.1:0', '--handoff', 'transfer', 'examples/hello.js']);
      assert.equal(result.status, 2);
      assert.match(result.stderr, /--handoff transfer is not possible on Node \d+/);
    }
  });

  it('prints help and the version', () => {
    assert.match(execFileSync(process.execPath, [CLI, '--help'], { encoding: 'utf8' }), /--worker-connections/);
    assert.match(execFileSync(process.execPath, [CLI, '--version'], { encoding: 'utf8' }), /^\d+\.\d+\.\d+/);
    // gunicorn's -v.
    const version = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version as string;
    assert.equal(execFileSync(process.execPath, [CLI, '-v'], { encoding: 'utf8' }).trim(), version);
    // The epilogue names the control command, the signals and the environment variables.
    const help = execFileSync(process.execPath, [CLI, '--help'], { encoding: 'utf8' });
    assert.match(help, /grainbows ctl \[--pid FILE/);
    assert.match(help, /HUP reload, TTIN\/TTOU/);
    assert.match(help, /GRAINBOWS_CMD_ARGS[\s\S]*WEB_CONCURRENCY[\s\S]*FORWARDED_ALLOW_IPS/);
    assert.match(help, /MODULE is a JavaScript or TypeScript file/, 'TypeScript apps load too (spec/typescript.test.ts)');
  });
});
