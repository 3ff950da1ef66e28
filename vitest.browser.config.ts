import { defineConfig } from 'vitest/config';

/**
 * `npm run test:browser`: the report pages opened in a real headless Chromium
 * (Debian's `chromium`; CHROMIUM=/path overrides /usr/bin/chromium). Kept out
 * of `npm test`, which needs nothing beyond Node.
 */
export default defineConfig({
  test: {
    include: ['test/browser/**/*.browser.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    globalSetup: ['test/helpers/global-setup.ts'],
  },
});
