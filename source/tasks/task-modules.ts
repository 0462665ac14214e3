/**
 * `--tasks MODULE[:THREADS]`, resolved: which file each task module is, what calls name it by, and how many
 * threads it gets. Pure but for the existence check, so that a wrong path fails at start-up with one line.
 */
import { availableParallelism } from 'node:os';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { GrainbowsError } from '../../shared/errors.js';

export interface TaskModuleSpec {
  /** What calls name it by: the file name (`tasks.js`). */
  name: string;
  /** file: URL, what each task thread imports. */
  url: string;
  /** As given, for messages. */
  display: string;
  threads: number;
}

/** Splits `MODULE[:THREADS]`: the count is what follows the last colon when it is a whole number. */
export function splitTaskSpec(text: string): { modulePath: string; threads: number | undefined } {
  const match = /^(.+):(\d+)$/.exec(text);
  return match ? { modulePath: match[1], threads: Number(match[2]) } : { modulePath: text, threads: undefined };
}

/** `--task-threads 0`: one thread per core the process may use. */
export function defaultTaskThreads(taskThreads: number): number {
  return taskThreads > 0 ? taskThreads : availableParallelism();
}

export function resolveTaskModules(specs: readonly string[], taskThreads: number, cwd: string = process.cwd()): TaskModuleSpec[] {
  const modules = specs.map((text): TaskModuleSpec => {
    const { modulePath, threads } = splitTaskSpec(text);
    const absolute = path.isAbsolute(modulePath) || /^[A-Za-z]:[\\/]/.test(modulePath) ? modulePath : path.resolve(cwd, modulePath);
    if (!existsSync(absolute) || !statSync(absolute).isFile())
      throw new GrainbowsError('E_TASK_LOAD', `task module not found: ${modulePath} (looked at ${absolute})`);
    if (threads === 0) throw new GrainbowsError('E_USAGE', `--tasks ${text}: a task module needs at least 1 thread`);
    return { name: path.basename(absolute), url: pathToFileURL(absolute).href, display: modulePath, threads: threads ?? defaultTaskThreads(taskThreads) };
  });
  const names = modules.map((module) => module.name);
  const twice = names.find((name, index) => names.indexOf(name) !== index);
  if (twice) throw new GrainbowsError('E_USAGE', `two task modules are named ${twice}: calls name a module by its file name, so give them different ones`);
  return modules;
}
