// Drives the console's tenants view in Debian's headless Chromium and writes
// what it saw as JSON, for spec/browser/console_tenants_spec.lua:
//
//   node spec/browser/console_tenants.js ADMIN_URL TOKEN OUT.json SHOTS_DIR
//
// The store holds acme (two origins), globex (switched off) and 60 tenants
// page01..page60, loaded by the spec.
'use strict';
const path = require('path');
const { drive } = require('./console_page');

const [admin, token, out, shots] = process.argv.slice(2);

// 404 and 400 are answers here (an origin nobody owns, a path in an origin)
drive(admin, /status of (401|404|400)/, out, async (page, report) => {
    await page.waitForSelector('#token-form:not([hidden])', { timeout: 10000 });
    await page.fill('#token', token);
    await page.click('#token-form button');
    await page.waitForSelector('#tenants:not([hidden])', { timeout: 10000 });
    report.note = await page.textContent('#tenant-note');
    const search = async (q) => {
      await page.evaluate(() => { document.getElementById('tenant-note').textContent = 'waiting'; });
      await page.fill('#tenant-search [name=q]', q);
      await page.click('#tenant-search button');
      await page.waitForFunction(() => document.getElementById('tenant-note').textContent !== 'waiting', null, { timeout: 10000 });
    };
    const rows = (sel) => page.$$eval(sel + ' tbody tr', (trs) => trs.map((tr) =>
      Array.from(tr.querySelectorAll('td')).map((td) => td.textContent)));
    // by name: a page of 50, then More
    await search('page');
    report.page_first = (await rows('#tenant-list')).length;
    report.more_visible = await page.isVisible('#tenant-more');
    await page.click('#tenant-more');
    await page.waitForFunction(() => document.querySelectorAll('#tenant-list tbody tr').length > 50, null, { timeout: 10000 });
    report.page_all = (await rows('#tenant-list')).map((r) => r[0]);
    report.more_after = await page.isVisible('#tenant-more');
    await search('glob');
    report.globex = await rows('#tenant-list');
    // one tenant: its origins and policy
    await search('acme');
    report.acme_row = await rows('#tenant-list');
    await page.click('#tenant-list a.tenant-link');
    await page.waitForSelector('#tenant-detail:not([hidden])', { timeout: 10000 });
    report.detail = { name: await page.textContent('#tenant-name'), policy: await page.textContent('#tenant-policy'),
      origins: (await rows('#tenant-origins')).map((r) => r[0]) };
    await page.screenshot({ path: path.join(shots, 'console-tenants.png'), fullPage: true });
    // purge the tenant's cached decisions
    await page.evaluate(() => { document.getElementById('tenant-note').textContent = 'waiting'; });
    await page.click('#tenant-purge');
    await page.waitForFunction(() => document.getElementById('tenant-note').textContent !== 'waiting', null, { timeout: 10000 });
    report.purge_tenant = await page.textContent('#tenant-note');
    // who owns an origin, and purging that origin
    await search('HTTPS://App.Acme.test');
    report.owner = await page.textContent('#tenant-note');
    report.owner_buttons = await page.$$eval('#tenant-note button', (bs) => bs.map((b) => b.textContent));
    await page.evaluate(() => { window.__before = document.getElementById('tenant-note').textContent; });
    await page.click('#tenant-note button:nth-of-type(2)');
    await page.waitForFunction(() => document.getElementById('tenant-note').textContent !== window.__before, null, { timeout: 10000 });
    report.purge_origin = await page.textContent('#tenant-note');
    await search('https://nobody.test');
    report.nobody = await page.textContent('#tenant-note');
    await search('https://bad.test/path');
    report.bad = await page.textContent('#tenant-note');
});
