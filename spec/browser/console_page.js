// Headless Chromium (Debian's) on the console's page, for the console's
// drivers: the page, and the errors it shows (script errors, and console
// errors but for the answers a driver expects, such as the 401s before the
// token is given).
'use strict';
const { chromium } = require('playwright-core');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

// expected: a RegExp of console error texts that are answers, not errors
async function openConsole(admin, expected) {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  const page = await browser.newPage({ viewport: { width: 1200, height: 1100 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error' && !expected.test(m.text())) errors.push(m.text()); });
  await page.goto(admin + '/');
  return { browser, page, errors };
}

// Opens the console, runs fn(page, report, errors), and writes report as
// JSON to out whatever happens: a failure in report.failure, the page's
// errors in report.errors.
async function drive(admin, expected, out, fn) {
  const fs = require('fs');
  const report = {};
  let browser;
  try {
    const c = await openConsole(admin, expected);
    browser = c.browser;
    await fn(c.page, report);
    report.errors = c.errors;
  } catch (e) {
    report.failure = String(e && e.stack || e);
  } finally {
    if (browser) await browser.close();
  }
  fs.writeFileSync(out, JSON.stringify(report));
}

module.exports = { openConsole, drive };
