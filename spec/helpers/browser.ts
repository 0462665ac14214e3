/**
 * A real headless Chromium (Debian's) driven by playwright-core. The flags keep it off the network: this
 * machine reaches nothing but loopback, and Chromium's background services would otherwise retry forever.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export function browserAvailable(): boolean {
  return existsSync(CHROMIUM);
}

/** `extraArgs`: more Chromium switches, e.g. `--ignore-certificate-errors` for the tests' own certificates. */
export function launchBrowser(extraArgs: string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      ...extraArgs,
    ],
  });
}

/** Outside CI a missing browser skips the test; in CI (CI=true) it is a failure, so it cannot hide. */
export function browserSkipReason(): string | false {
  if (browserAvailable()) return false;
  if (process.env.CI) return false;
  return `no Chromium at ${CHROMIUM} (apt-get install chromium)`;
}
