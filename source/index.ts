/**
 * grainbows as a library: `const server = await serve({ app: 'app.js', workers: 2 })`.
 */
import { GrainbowsServer, type ServeOptions } from './server.js';

export { GrainbowsServer, DEFAULTS, type ServeOptions, type ServerStats } from './server.js';
export { GrainbowsError, ExitStatus, type ErrorCode } from './errors.js';
export type { HandoffStrategy } from './actor-link.js';
export type { ServerHook, AppKind } from '../actors/app-loader.js';

export function serve(options: ServeOptions): Promise<GrainbowsServer> {
  return GrainbowsServer.start(options);
}
