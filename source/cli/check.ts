/**
 * `--check-config`: everything start-up would do short of listening. The settings are already valid
 * (resolving them validates); this boots one actor to prove the app loads, then stops it.
 */
import { ActorPool } from '../lifecycle/actor-pool.js';
import { parseBind } from '../accept/bind.js';
import { createLogger } from '../../shared/log.js';
import { generationFrom } from '../server.js';
import type { SettingsValues } from '../config/settings.js';
import type { AppKind } from '../../shared/actor-protocol.js';

export async function checkApp(app: string, settings: SettingsValues): Promise<AppKind> {
  for (const bind of settings.bind) parseBind(bind);
  const pool = new ActorPool({
    ...generationFrom({ ...settings, app, logLevel: 'critical', accessLogfile: '' }),
    size: 1,
    log: createLogger('critical'),
    timeout: 0,
    gracefulTimeout: 0,
  });
  try {
    await pool.start();
    return pool.kinds()[0];
  } finally {
    await pool.close();
  }
}
