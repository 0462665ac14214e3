/** The command's one way out on an error a user caused: one line on stderr and the error's exit status (docs/errors.md). */
import { ExitStatus, GrainbowsError } from '../../shared/errors.js';
import { describeError } from '../../shared/log.js';
import { reportToStarter } from './process-settings.js';

export function fail(error: unknown, verbose: boolean): never {
  const status = error instanceof GrainbowsError ? error.exitStatus : ExitStatus.failure;
  const message = describeError(error, verbose).replace(/^GrainbowsError: /, '');
  process.stderr.write(`grainbows: ${message}\n`);
  reportToStarter({ kind: 'failed', message, status });
  process.exit(status);
}
