/**
 * `--check-config`: everything start-up would do short of listening. The settings are already valid
 * (resolving them validates); this boots one actor to prove the app loads, then stops it.
 */
import { parseAppSpec } from './app-spec.js';
import { ActorPool } from './actor-pool.js';
import { parseBind } from './bind.js';
import { createLogger } from './log.js';
import { DEFAULTS } from './server.js';
import type { SettingsValues } from './settings.js';
import type { AppKind } from '../actors/app-loader.js';

export async function checkApp(app: string, settings: SettingsValues): Promise<AppKind> {
  for (const bind of settings.bind) parseBind(bind);
  const pool = new ActorPool({
    size: 1,
    app: parseAppSpec(app),
    log: createLogger('critical'),
    resourceLimits: DEFAULTS.actorResourceLimits,
    settings: {
      keepAliveTimeoutMs: settings.keepAlive * 1000,
      headLimits: { requestLine: settings.limitRequestLine, fields: settings.limitRequestFields, fieldSize: settings.limitRequestFieldSize },
      headerMap: settings.headerMap,
      closeAfterResponse: settings.use === 'sync',
      accessLogFormat: null,
      logLevel: 'critical',
    },
  });
  try {
    await pool.start();
    return pool.kinds()[0];
  } finally {
    await pool.close();
  }
}
