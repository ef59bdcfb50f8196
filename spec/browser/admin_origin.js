// A page of another origin tries the admin API (no token: loopback only) from
// Debian's headless Chromium, the way a page the operator happens to open
// could: a fetch POST /reload (a simple request, sent without a preflight)
// and a form posted to it. Then the console itself, on the admin listener's
// own origin, sends a DELETE /cache from its page. Writes what it saw as JSON:
//
//   node spec/browser/admin_origin.js ADMIN_URL OTHER_HOST OUT.json
'use strict';
const http = require('http');
const fs = require('fs');
const { chromium } = require('playwright-core');

const [admin, otherHost, out] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

// the other origin: one page that posts to the admin API two ways
const page = `<!doctype html><title>elsewhere</title><body>
<form id="f" method="POST" action="${admin}/reload" target="sink"></form><iframe name="sink"></iframe>
<script>
window.tried = fetch(${JSON.stringify(admin + '/reload')}, { method: 'POST', mode: 'no-cors' })
  .then(() => 'sent', (e) => 'failed: ' + e);
</script></body>`;

(async () => {
  const report = {};
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end(page);
  });
  await new Promise((ok) => server.listen(0, otherHost, ok));
  let browser;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
    const tab = await browser.newPage();
    await tab.goto(`http://${otherHost}:${server.address().port}/`);
    report.fetch = await tab.evaluate(() => window.tried);
    // the form's post is a navigation of the frame: wait for its answer
    const answered = tab.waitForResponse((r) => r.url().endsWith('/reload'), { timeout: 10000 });
    await tab.evaluate(() => document.getElementById('f').submit());
    report.form_status = (await answered).status();
    // the console on its own origin: its page may act
    const own = await browser.newPage();
    await own.goto(admin + '/');
    // no token to ask for: the numbers come at once
    await own.waitForFunction(() => /up/.test(document.getElementById('workers').textContent), null, { timeout: 10000 });
    report.own_workers = await own.textContent('#workers');
    report.own_asks_token = await own.isVisible('#token-form');
    report.own_delete = await own.evaluate(async () => (await fetch('/cache', { method: 'DELETE' })).status);
  } catch (e) {
    report.failure = String(e && e.stack || e);
  } finally {
    if (browser) await browser.close();
    server.close();
  }
  fs.writeFileSync(out, JSON.stringify(report));
})();
