/**
 * Coded errors: every failure a user can cause has a code, a one-line message and, at the CLI, an exit
 * status. docs/errors.md lists them; spec/ tests each one.
 */
export const ExitStatus = {
  ok: 0,
  /** Something failed at run time that is not one of the below. */
  failure: 1,
  /** The command line is wrong: unknown flag, bad value. */
  usage: 2,
  /** The config file (or GRAINBOWS_CMD_ARGS) is wrong: it throws, has a syntax error, an unknown key, a bad value. */
  config: 3,
  /** The app module, or a task module, could not be found, loaded or used (gunicorn's APP_LOAD_ERROR is 4 too). */
  appLoad: 4,
  /** `grainbows ctl status`: the server answers but is not ready (no actor serving yet, or stopping). */
  notReady: 5,
} as const;

export type ErrorCode =
  | 'E_USAGE'
  | 'E_CONFIG'
  | 'E_BIND'
  | 'E_APP_SPEC'
  | 'E_APP_NOT_FOUND'
  | 'E_APP_LOAD'
  | 'E_NOT_AN_APP'
  | 'E_HANDOFF_UNAVAILABLE'
  | 'E_LISTEN'
  | 'E_TLS'
  | 'E_TASK_LOAD';

export class GrainbowsError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'GrainbowsError';
  }

  get exitStatus(): number {
    switch (this.code) {
      case 'E_USAGE':
      case 'E_BIND':
      case 'E_APP_SPEC':
      case 'E_HANDOFF_UNAVAILABLE':
      case 'E_TLS':
        return ExitStatus.usage;
      case 'E_CONFIG':
        return ExitStatus.config;
      case 'E_APP_NOT_FOUND':
      case 'E_APP_LOAD':
      case 'E_NOT_AN_APP':
      case 'E_TASK_LOAD':
        return ExitStatus.appLoad;
      default:
        return ExitStatus.failure;
    }
  }
}
