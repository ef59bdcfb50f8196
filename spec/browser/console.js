// Drives corsgate's console (the admin listener's page) in Debian's headless
// Chromium and writes what it saw as JSON, for spec/browser/console_spec.lua
// to assert on:
//
//   node spec/browser/console.js ADMIN_URL TOKEN GATEWAY_URL OUT.json SHOTS_DIR CASES_JSON
//
// CASES_JSON: [{ origin, method, header, path, host }] for the explain form.
'use strict';
const path = require('path');
const { drive } = require('./console_page');

const [admin, token, gwUrl, out, shots, casesJson] = process.argv.slice(2);
const cases = JSON.parse(casesJson);

async function traffic(n) {
  // requests through the gateway: some allowed, some refused
  for (let i = 0; i < n; i++) {
    await fetch(gwUrl + '/api/x', { method: 'OPTIONS', headers: { Origin: i % 2 ? 'https://evil.test' : 'https://app.example.com',
      'Access-Control-Request-Method': 'PUT' } }).catch(() => {});
  }
}

// (the 401s before the token is given are the point, not errors)
drive(admin, /status of 401/, out, async (page, report) => {
    // no token yet: the page asks for one
    await page.waitForSelector('#token-form:not([hidden])', { timeout: 10000 });
    report.asks_token = true;
    await page.fill('#token', 'not-the-token');
    await page.click('#token-form button');
    await page.waitForFunction(() => document.getElementById('token-error').textContent !== '', null, { timeout: 10000 });
    report.wrong_token_message = await page.textContent('#token-error');
    await page.screenshot({ path: path.join(shots, 'console-token.png') });
    // the right one: the numbers come
    await page.fill('#token', token);
    await page.click('#token-form button');
    await page.waitForSelector('#token-form[hidden]', { state: 'attached', timeout: 10000 });
    await page.waitForFunction(() => document.querySelector('#refused tbody tr'), null, { timeout: 10000 });
    report.refused_rows = await page.$$eval('#refused tbody tr', (trs) => trs.map((tr) =>
      Array.from(tr.querySelectorAll('td')).map((td) => td.textContent)));
    report.workers = await page.textContent('#workers');
    // traffic flowing across several reads: the rates move, and the
    // screenshot shows a console under load (the README's picture)
    let flowing = true;
    const flow = (async () => { while (flowing) await traffic(20); })();
    try {
      await page.waitForFunction(() => {
        const v = Number(document.getElementById('rps').textContent.replace(/,/g, ''));
        return v > 0;
      }, null, { timeout: 15000 });
      report.rps = await page.textContent('#rps');
      report.refusals = await page.textContent('#refusals');
      report.cache = await page.textContent('#cache');
      // a line needs two rates (a third read); four rates make a picture
      await page.waitForFunction(() => Array.from(document.querySelectorAll('#charts path.req'))
        .some((p) => ((p.getAttribute('d') || '').match(/L/g) || []).length >= 3), null, { timeout: 30000 });
      report.charts = await page.$$eval('#charts .chart', (cs) => cs.map((c) => c.firstChild.textContent));
      report.chart_line = true;
      await page.screenshot({ path: path.join(shots, 'console.png'), fullPage: true });
    } finally {
      flowing = false;
      await flow;
    }
    // the explain form
    report.explain = [];
    for (const c of cases) {
      for (const k of ['origin', 'method', 'header', 'path', 'host']) await page.fill(`#explain-form [name=${k}]`, c[k] || '');
      await page.evaluate(() => { document.getElementById('verdict').textContent = ''; });
      await page.click('#explain-form button');
      await page.waitForFunction(() => document.getElementById('verdict').textContent !== '', null, { timeout: 10000 });
      report.explain.push({
        verdict: await page.textContent('#verdict .allowed, #verdict .blocked'),
        text: await page.textContent('#verdict'),
        headers: await page.$$eval('#verdict pre', (ps) => ps.map((p) => p.textContent)),
      });
    }
    // a refused row's link, on a fresh page (the form as it starts): the
    // refused-header row's request explained again
    await page.reload();
    await page.waitForFunction(() => document.querySelector('#refused tbody tr'), null, { timeout: 10000 });
    const rows = await page.$$('#refused tbody tr');
    for (const row of rows) {
      if (!(await row.textContent()).includes('refused-header')) continue;
      await (await row.$('a.explain-link')).click();
      break;
    }
    await page.waitForFunction(() => document.getElementById('verdict').textContent !== '', null, { timeout: 10000 });
    report.linked = { origin: await page.inputValue('#explain-form [name=origin]'),
      path: await page.inputValue('#explain-form [name=path]'), text: await page.textContent('#verdict') };
    await page.screenshot({ path: path.join(shots, 'console-explain.png'), fullPage: true });
});
