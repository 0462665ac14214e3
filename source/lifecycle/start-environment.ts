/**
 * The environment the serving process must start with (`--malloc-arenas`: glibc reads MALLOC_ARENA_MAX
 * once, before node runs any JavaScript), so the CLI starts node again with it (source/cli/relaunch.ts).
 * Once serving, the process takes it out of its own environment, so that the app and the processes it
 * starts get the environment they were given; a binary upgrade's successor gets it back
 * (binary-upgrade.ts), so that it need not start node once more.
 */

/**
 * Names, set beside them, of the variables added for the start only: what forgetStartEnvironment takes
 * out again, and nothing an operator set.
 */
const SET_FOR_START = 'GRAINBOWS_SET_FOR_START';

/** What forgetStartEnvironment took out of this process's environment. */
let forgotten: Record<string, string> = {};

/** The variables the process should have started with and lacks. An operator's own MALLOC_ARENA_MAX wins. */
export function missingStartEnvironment(
  settings: { mallocArenas: number },
  env: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform,
): Record<string, string> {
  if (platform !== 'linux' || settings.mallocArenas === 0 || env.MALLOC_ARENA_MAX !== undefined) return {};
  return { MALLOC_ARENA_MAX: String(settings.mallocArenas), [SET_FOR_START]: 'MALLOC_ARENA_MAX' };
}

/** Takes what missingStartEnvironment added out of `env` (this process's, once serving). */
export function forgetStartEnvironment(env: NodeJS.ProcessEnv = process.env): void {
  const names = env[SET_FOR_START]?.split(',') ?? [];
  const taken: Record<string, string> = {};
  for (const name of names) {
    const value = env[name];
    if (value !== undefined) taken[name] = value;
    delete env[name];
  }
  if (names.length > 0) forgotten = { ...taken, [SET_FOR_START]: names.join(',') };
  delete env[SET_FOR_START];
}

/** The start environment this process took out of its own: for a successor started in its place. */
export function startEnvironment(): Record<string, string> {
  return { ...forgotten };
}
