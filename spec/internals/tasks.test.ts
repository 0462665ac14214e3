/**
 * Without servers: the pure parts of the task pool. How a call names its function, how `--tasks
 * MODULE[:THREADS]` resolves, how a thrown value crosses a thread and comes back, and what `transfer()` marks.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { TRANSFER_KEY, TaskError, errorOf, resolveTaskName, thrownValueOf, unwrapMoved, type TaskCatalog } from '../../shared/task-protocol.js';
import { defaultTaskThreads, resolveTaskModules, splitTaskSpec } from '../../source/tasks/task-modules.js';
import { GrainbowsError } from '../../shared/errors.js';
import { transfer } from '../../actors/tasks.js';

const catalog: TaskCatalog = {
  modules: [
    { name: 'images.js', exports: ['resize', 'thumbnail', 'hash'] },
    { name: 'reports.mjs', exports: ['render', 'hash', 'rows'] },
  ],
  timeoutMs: 0,
};

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof TaskError, `a TaskError, not ${String(error)}`);
    return error.code;
  }
  return undefined;
}

describe('resolveTaskName', () => {
  it('finds a function that one module exports by its name alone', () => {
    assert.deepEqual(resolveTaskName('resize', catalog), { module: 'images.js', fn: 'resize' });
    assert.deepEqual(resolveTaskName('render', catalog), { module: 'reports.mjs', fn: 'render' });
  });
  it('takes module:fn with the file name, with or without its extension', () => {
    assert.deepEqual(resolveTaskName('images.js:hash', catalog), { module: 'images.js', fn: 'hash' });
    assert.deepEqual(resolveTaskName('reports:hash', catalog), { module: 'reports.mjs', fn: 'hash' });
  });
  it('refuses a name two modules export, naming the way to say which', () => {
    assert.throws(() => resolveTaskName('hash', catalog), /exported by images\.js and reports\.mjs: call it as 'images\.js:hash'/);
    assert.equal(
      codeOf(() => resolveTaskName('hash', catalog)),
      'E_TASK_UNKNOWN',
    );
  });
  it('refuses what no module exports, and a module that is not in the pool', () => {
    assert.equal(
      codeOf(() => resolveTaskName('nothing', catalog)),
      'E_TASK_UNKNOWN',
    );
    assert.throws(() => resolveTaskName('videos:resize', catalog), /no task module 'videos' \(the pool has images\.js, reports\.mjs\)/);
    assert.throws(() => resolveTaskName('images:render', catalog), /images\.js exports no function 'render'/);
  });
  it('says E_NO_TASK_POOL when the server has no --tasks', () => {
    assert.equal(
      codeOf(() => resolveTaskName('resize', { modules: [], timeoutMs: 0 })),
      'E_NO_TASK_POOL',
    );
  });
});

describe('--tasks MODULE[:THREADS]', () => {
  it('splits the thread count off the last colon only when it is a whole number', () => {
    assert.deepEqual(splitTaskSpec('tasks.js'), { modulePath: 'tasks.js', threads: undefined });
    assert.deepEqual(splitTaskSpec('tasks.js:3'), { modulePath: 'tasks.js', threads: 3 });
    assert.deepEqual(splitTaskSpec('C:\\srv\\tasks.js:2'), { modulePath: 'C:\\srv\\tasks.js', threads: 2 });
    assert.deepEqual(splitTaskSpec('C:\\srv\\tasks.js'), { modulePath: 'C:\\srv\\tasks.js', threads: undefined });
    assert.deepEqual(splitTaskSpec('tasks.js:x'), { modulePath: 'tasks.js:x', threads: undefined });
  });
  it('--task-threads 0 means one thread per core', () => {
    assert.equal(defaultTaskThreads(0), availableParallelism());
    assert.equal(defaultTaskThreads(3), 3);
  });

  const dir = mkdtempSync(path.join(tmpdir(), 'grainbows-task-units-'));
  writeFileSync(path.join(dir, 'work.js'), 'export const f = () => 1;\n');
  writeFileSync(path.join(dir, 'other.mjs'), 'export const g = () => 2;\n');

  it('resolves each module against the working directory, with its own or the default thread count', () => {
    const modules = resolveTaskModules(['work.js:3', 'other.mjs'], 2, dir);
    assert.deepEqual(modules, [
      { name: 'work.js', url: pathToFileURL(path.join(dir, 'work.js')).href, display: 'work.js', threads: 3 },
      { name: 'other.mjs', url: pathToFileURL(path.join(dir, 'other.mjs')).href, display: 'other.mjs', threads: 2 },
    ]);
  });
  it('a module that is not there is E_TASK_LOAD; a directory is not a module', () => {
    for (const spec of ['missing.js', '.']) {
      assert.throws(
        () => resolveTaskModules([spec], 1, dir),
        (error: unknown) => error instanceof GrainbowsError && error.code === 'E_TASK_LOAD' && /task module not found/.test(error.message),
      );
    }
  });
  it(':0 threads and two modules with one file name are usage errors', () => {
    assert.throws(
      () => resolveTaskModules(['work.js:0'], 1, dir),
      (error: unknown) => error instanceof GrainbowsError && error.code === 'E_USAGE',
    );
    const sub = path.join(dir, 'sub');
    mkdirSync(sub);
    writeFileSync(path.join(sub, 'work.js'), 'export const h = () => 3;\n');
    assert.throws(() => resolveTaskModules(['work.js', path.join(sub, 'work.js')], 1, dir), /two task modules are named work\.js/);
  });
});

describe('a thrown value crossing a thread', () => {
  function roundTrip(value: unknown): unknown {
    return errorOf(structuredClone(thrownValueOf(value)));
  }
  it('an Error keeps its class name, message, stack and own properties', () => {
    class ValidationError extends Error {
      override name = 'ValidationError';
      field = 'email';
      status = 422;
    }
    const original = new ValidationError('bad address');
    const back = roundTrip(original);
    assert.ok(back instanceof Error);
    assert.equal(back.name, 'ValidationError');
    assert.equal(back.message, 'bad address');
    assert.equal(back.stack, original.stack);
    assert.equal((back as Error & { field: string }).field, 'email');
    assert.equal((back as Error & { status: number }).status, 422);
  });
  it('a property that cannot be cloned is left behind, not fatal', () => {
    const error = Object.assign(new Error('x'), { callback: () => 1, code: 'E_X' });
    const back = roundTrip(error) as Error & { callback?: unknown; code: string };
    assert.equal(back.code, 'E_X');
    assert.equal(back.callback, undefined);
  });
  it('our TaskError comes back as a TaskError with its code', () => {
    const back = roundTrip(new TaskError('E_TASK_TIMEOUT', 'too long'));
    assert.ok(back instanceof TaskError);
    assert.equal(back.code, 'E_TASK_TIMEOUT');
  });
  it('a thrown non-Error comes back as itself, or as its string when it cannot be cloned', () => {
    assert.deepEqual(roundTrip({ reason: 'nope' }), { reason: 'nope' });
    assert.equal(roundTrip(42), 42);
    assert.match(String(roundTrip(() => 0)), /=>/);
  });
});

describe('transfer()', () => {
  it('marks a value and what to move with it; an unmarked value moves nothing', () => {
    const buffer = new ArrayBuffer(8);
    const marked = transfer({ buffer }, [buffer]);
    assert.deepEqual(marked[TRANSFER_KEY], [buffer]);
    assert.deepEqual(unwrapMoved(marked), { value: { buffer }, transfer: [buffer] });
    assert.deepEqual(unwrapMoved({ buffer }), { value: { buffer }, transfer: [] });
    assert.deepEqual(unwrapMoved(null), { value: null, transfer: [] });
  });
});
