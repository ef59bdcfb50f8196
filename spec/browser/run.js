// Real-browser scenarios: headless Chromium (Debian's) loads a page from one
// loopback origin and calls corsgate on another with fetch() and
// XMLHttpRequest. What is asserted is what the browser decides: readable or
// blocked, which headers JavaScript sees, whether a preflight went out
// (Chrome DevTools Protocol network events), whether a cached preflight is
// reused, whether a cookie was sent.
//
//   node spec/browser/run.js RESULTS.json [tls]
//
// With "tls" the gateway listens in HTTPS (a certificate for localhost made
// for the run, which Chromium is told to accept) and every scenario calls it
// there: the same answers must come through corsgate's TLS, and over HTTP/2,
// which Chromium picks by ALPN (the last scenario checks it did).
//
// CORSGATE_BROWSER_VERBOSE=1 prints each scenario and the cookies of each request.
// Writes [{ name, ok, detail }] to RESULTS.json; spec/browser/browser_spec.lua
// turns each into a busted test. Environment: CORSGATE_BIN (default
// build/corsgate), CHROMIUM (default /usr/bin/chromium).
'use strict';

const http = require('http');
const https = require('https');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn, execFileSync } = require('child_process');
const { chromium } = require('playwright-core');

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = process.env.CORSGATE_BIN || path.join(ROOT, 'build', 'corsgate');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OUT = process.argv[2] || '-';
const TLS = process.argv[3] === 'tls';

function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server.address().port));
  });
}

// a port free now, for corsgate to bind (closed before it starts)
function freePort() {
  const server = http.createServer();
  return listen(server).then((port) => new Promise((resolve) => server.close(() => resolve(port))));
}

// The API behind corsgate: echoes what it received (cookie included) and
// sends headers a page may or may not be allowed to read.
function startUpstream() {
  const calls = {};
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    calls[url.pathname] = (calls[url.pathname] || 0) + 1;
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      if (url.pathname.endsWith('/hang')) return; // never answers: the gateway times out
      res.setHeader('Content-Type', 'application/json');
      res.setHeader('X-Total', '42');
      res.setHeader('X-Secret', 'not for pages');
      res.setHeader('Access-Control-Allow-Origin', '*'); // the gateway must replace this
      res.end(JSON.stringify({ method: req.method, path: url.pathname, cookie: req.headers.cookie || null,
        authorization: req.headers.authorization || null, bodyBytes: body.length }));
    });
  });
  return listen(server).then((port) => ({ server, port, calls }));
}

function startPage() {
  const server = http.createServer((req, res) => {
    res.setHeader('Content-Type', 'text/html');
    res.end('<!doctype html><title>corsgate browser spec</title><p>page</p>');
  });
  return listen(server).then((port) => ({ server, port }));
}

const PLUGIN = `
local _M = {}
function _M.origin(ctx)
  if ctx.host == "127.0.0.1" then
    return { allow = true, tenant = "page", expose_headers = { "X-Total" }, credentials = true, max_age = 60 }
  end
  return false
end
return _M
`;

const PLUGIN_BROKEN = `
local _M = {}
function _M.origin(ctx) error("the tenant store is on fire") end
return _M
`;

function gatewayConfig(gwPort, upPort, pageOrigin, dir) {
  const o = JSON.stringify(pageOrigin);
  const listen = TLS
    ? `{ { address = "127.0.0.1:${gwPort}", tls = { certificates = { { cert = ${JSON.stringify(path.join(dir, 'cert.pem'))}, key = ${JSON.stringify(path.join(dir, 'key.pem'))} } } } } }`
    : `"127.0.0.1:${gwPort}"`;
  return `return {
  listen = ${listen}, workers = 1, log_level = "warn", access_log = false,
  plugin_paths = { ${JSON.stringify(dir)} },
  limits = { max_body_bytes = 1000 },
  timeouts = { upstream_read = 1 },
  upstreams = { up = { targets = { "127.0.0.1:${upPort}" } }, dead = { targets = { "127.0.0.1:9" } } },
  routes = {
    { name = "list", prefix = "/list", upstream = "up", cors = { origins = { ${o} },
      methods = { "GET", "PUT", "DELETE" }, headers = { "X-Req", "Content-Type" }, expose_headers = { "X-Total" },
      max_age = 60 } },
    { name = "short", prefix = "/short", upstream = "up", cors = { origins = { ${o} }, methods = { "PUT" }, max_age = 0 } },
    { name = "other", prefix = "/other", upstream = "up", cors = { origins = { "https://elsewhere.example" } } },
    { name = "plain", prefix = "/plain", upstream = "up" },
    { name = "cred", prefix = "/cred", upstream = "up", cors = { origins = { ${o} }, credentials = true,
      methods = { "GET", "PUT" }, expose_headers = { "X-Total" } } },
    { name = "star", prefix = "/star", upstream = "up", cors = { origins = "*", headers = "*",
      methods = { "GET", "PUT" }, expose_headers = { "X-Total" } } },
    { name = "dead", prefix = "/dead", upstream = "dead", cors = { origins = { ${o} } } },
    { name = "missing", prefix = "/missing", static = { status = 404, body = "{\\"error\\":\\"no such thing\\"}",
      headers = { ["content-type"] = "application/json" } }, cors = { origins = { ${o} } } },
    { name = "plugin", prefix = "/plugin", upstream = "up", cors = { plugin = "page_tenant",
      methods = { "GET", "PUT" }, headers = { "X-Req" } } },
    { name = "broken", prefix = "/broken", upstream = "up", cors = { plugin = "broken_tenant" } },
    { name = "dbg", prefix = "/dbg", upstream = "up", debug = true, cors = { origins = { ${o} },
      methods = { "GET", "PUT" }, headers = { "X-Req" }, credentials = true } },
    { name = "dbgother", prefix = "/dbgother", upstream = "up", debug = true,
      cors = { origins = { "https://elsewhere.example" }, methods = { "GET", "PUT" } } },
  },
}
`;
}

function startGateway(cfgPath, logPath, port) {
  const log = fs.openSync(logPath, 'a');
  const child = spawn(BIN, ['run', '-c', cfgPath], { stdio: ['ignore', log, log] });
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + 10000;
    const tryConnect = () => {
      const get = TLS ? https.get : http.get;
      const req = get({ host: '127.0.0.1', port, path: '/plain/ping', timeout: 2000, servername: 'localhost',
        rejectUnauthorized: false }, (res) => {
        res.resume();
        resolve(child);
      });
      req.on('error', () => {
        if (child.exitCode !== null || Date.now() > deadline) {
          reject(new Error('corsgate did not start:\n' + fs.readFileSync(logPath, 'utf8')));
        } else {
          setTimeout(tryConnect, 50);
        }
      });
    };
    tryConnect();
  });
}

// In the page: one fetch, reduced to what JavaScript can see.
async function pageFetch(page, url, init, readHeaders) {
  return page.evaluate(async ([url, init, readHeaders]) => {
    try {
      const res = await fetch(url, init);
      const headers = {};
      for (const h of readHeaders) headers[h] = res.headers.get(h);
      return { ok: true, status: res.status, body: await res.text(), headers };
    } catch (e) {
      return { ok: false, error: String(e) };
    }
  }, [url, init || {}, readHeaders || []]);
}

async function pageXhr(page, method, url, opts) {
  return page.evaluate(([method, url, opts]) => new Promise((resolve) => {
    const x = new XMLHttpRequest();
    x.open(method, url);
    if (opts.withCredentials) x.withCredentials = true;
    for (const [k, v] of Object.entries(opts.headers || {})) x.setRequestHeader(k, v);
    x.onload = () => resolve({ ok: true, status: x.status, body: x.responseText,
      all: x.getAllResponseHeaders().toLowerCase(), total: x.getResponseHeader('X-Total') });
    x.onerror = () => resolve({ ok: false, status: x.status });
    x.send(opts.body || null);
  }), [method, url, opts || {}]);
}

async function main() {
  const results = [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corsgate-browser.'));
  let browser, gw;
  const up = await startUpstream();
  const page0 = await startPage();
  const pageOrigin = `http://127.0.0.1:${page0.port}`;
  const gwPort = await freePort();
  // another site than the page's: credentialed requests carry a third-party cookie
  const api = `${TLS ? 'https' : 'http'}://localhost:${gwPort}`;
  try {
    if (TLS) {
      // the gateway's certificate for localhost, made for this run
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'), '-days', '30',
        '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost'], { stdio: 'ignore' });
    }
    fs.writeFileSync(path.join(dir, 'page_tenant.lua'), PLUGIN);
    fs.writeFileSync(path.join(dir, 'broken_tenant.lua'), PLUGIN_BROKEN);
    const cfg = path.join(dir, 'corsgate.lua');
    fs.writeFileSync(cfg, gatewayConfig(gwPort, up.port, pageOrigin, dir));
    gw = await startGateway(cfg, path.join(dir, 'corsgate.log'), gwPort);

    // Chromium blocks third-party cookies by default (always in an incognito
    // context, which is what newContext() makes): a persistent profile whose
    // preferences allow them (cookie_controls_mode 0) is the test profile.
    const profile = path.join(dir, 'profile');
    fs.mkdirSync(path.join(profile, 'Default'), { recursive: true });
    fs.writeFileSync(path.join(profile, 'Default', 'Preferences'),
      JSON.stringify({ profile: { cookie_controls_mode: 0, block_third_party_cookies: false } }));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox'].concat(TLS ? ['--ignore-certificate-errors'] : []),
    });
    browser = context;
    // a cookie of the API's site, sent on credentialed cross-site requests only
    // (SameSite=None needs Secure, which Chromium grants http://localhost)
    await context.addCookies([{ name: 'sid', value: 'c00kie', domain: 'localhost', path: '/',
      sameSite: 'None', secure: true }]);
    const page = context.pages()[0] || await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    if (process.env.CORSGATE_BROWSER_VERBOSE) cdp.on('Network.requestWillBeSentExtraInfo', (e) => {
      // why a cookie was or was not sent (blockedReasons)
      process.stderr.write('cookies: ' + JSON.stringify(e.associatedCookies) + '\n');
    });
    const seen = []; // every request the browser sent, preflights included
    const urlOf = {};
    cdp.on('Network.requestWillBeSent', (e) => {
      seen.push({ url: e.request.url, method: e.request.method, type: e.type });
      urlOf[e.requestId] = e.request.url;
    });
    // the CORS error Chromium reports for a blocked request: what its console says
    const corsFailures = [];
    // the protocol of every response from the gateway (CDP's Response.protocol: "h2", "http/1.1")
    const protocols = {};
    cdp.on('Network.responseReceived', (e) => {
      if (e.response.url.startsWith(api)) protocols[e.response.protocol] = (protocols[e.response.protocol] || 0) + 1;
    });
    cdp.on('Network.loadingFailed', (e) => {
      if (e.corsErrorStatus) corsFailures.push({ url: urlOf[e.requestId], type: e.type, ...e.corsErrorStatus });
    });
    await page.goto(pageOrigin + '/');

    const preflightsTo = (url) => seen.filter((r) => r.url === url && (r.type === 'Preflight' || r.method === 'OPTIONS')).length;
    const actualTo = (url, method) => seen.filter((r) => r.url === url && r.method === method && r.type !== 'Preflight').length;
    // CDP events arrive asynchronously: wait until the expected count shows, bounded
    const settle = async (fn, want) => {
      for (let i = 0; i < 100 && fn() < want; i++) await new Promise((r) => setTimeout(r, 20));
      return fn();
    };

    // a scenario that hangs (a page waiting on a response that never comes)
    // fails on its own instead of stalling the run
    async function scenario(name, fn) {
      if (process.env.CORSGATE_BROWSER_VERBOSE) process.stderr.write('browser: ' + name + '\n');
      let timer;
      try {
        const limit = new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('scenario timed out after 15 s')), 15000);
        });
        const detail = await Promise.race([fn(), limit]);
        results.push({ name, ok: true, detail: detail || '' });
      } catch (e) {
        results.push({ name, ok: false, detail: String(e && e.stack || e) });
      } finally {
        clearTimeout(timer);
      }
    }
    function expect(cond, msg, got) {
      if (!cond) throw new Error(msg + (got !== undefined ? ': ' + JSON.stringify(got) : ''));
    }
    // Network.loadingFailed's corsErrorStatus for url, once it has arrived
    const corsErrorFor = async (url) => {
      await settle(() => corsFailures.filter((f) => f.url === url).length, 1);
      return corsFailures.find((f) => f.url === url);
    };
    const corsError = async (url, error, param) => {
      const f = await corsErrorFor(url);
      expect(f && f.corsError === error && (param === undefined || f.failedParameter === param),
        `Chromium's CORS error ${error}${param !== undefined ? ' (' + param + ')' : ''}`, f || corsFailures);
    };
    const readable = (r, status) => expect(r.ok && r.status === (status || 200), `expected readable ${status || 200}`, r);
    const blocked = (r) => expect(!r.ok && /TypeError|Failed to fetch/.test(r.error || 'xhr'), 'expected blocked', r);

    // ---- static policy -------------------------------------------------------------
    await scenario('fetch GET from an allowed origin is readable', async () => {
      readable(await pageFetch(page, api + '/list/a'));
    });
    await scenario('only exposed headers are readable (X-Total yes, X-Secret no)', async () => {
      const r = await pageFetch(page, api + '/list/b', {}, ['x-total', 'x-secret', 'content-type']);
      readable(r);
      expect(r.headers['x-total'] === '42', 'X-Total readable', r.headers);
      expect(r.headers['x-secret'] === null, 'X-Secret hidden', r.headers);
      expect(r.headers['content-type'] === 'application/json', 'safelisted Content-Type readable', r.headers);
    });
    await scenario('a simple GET sends no preflight', async () => {
      const url = api + '/list/c';
      await pageFetch(page, url);
      await settle(() => actualTo(url, 'GET'), 1);
      expect(preflightsTo(url) === 0, 'no preflight', seen.filter((r) => r.url === url));
    });
    await scenario('a route allowing other origins is blocked', async () => {
      blocked(await pageFetch(page, api + '/other/a'));
    });
    await scenario("a route without cors passes the API's own CORS headers to the browser", async () => {
      // the upstream itself sends Access-Control-Allow-Origin: *, and a route without
      // a policy passes it untouched: the browser then reads it
      readable(await pageFetch(page, api + '/plain/a'));
    });
    await scenario('PUT sends a preflight and is readable', async () => {
      const url = api + '/list/put1';
      const r = await pageFetch(page, url, { method: 'PUT', body: 'x' });
      readable(r);
      expect(JSON.parse(r.body).method === 'PUT', 'PUT reached the API', r.body);
      expect(await settle(() => preflightsTo(url), 1) === 1, 'one preflight', seen.filter((x) => x.url === url));
    });
    await scenario('a custom request header is allowed after a preflight', async () => {
      const url = api + '/list/hdr';
      readable(await pageFetch(page, url, { headers: { 'X-Req': '1' } }));
      expect(await settle(() => preflightsTo(url), 1) === 1, 'one preflight');
    });
    await scenario('a method not allowed is blocked and never reaches the API', async () => {
      const url = api + '/list/patch1';
      blocked(await pageFetch(page, url, { method: 'PATCH' }));
      expect(await settle(() => preflightsTo(url), 1) === 1, 'a preflight went out');
      expect((up.calls['/list/patch1'] || 0) === 0, 'the API never saw it', up.calls);
    });
    await scenario('a request header not allowed is blocked', async () => {
      blocked(await pageFetch(page, api + '/list/hdr2', { headers: { 'X-Other': '1' } }));
    });
    await scenario('a second request within max-age reuses the cached preflight', async () => {
      const u1 = api + '/list/cache1', u2 = api + '/list/cache1';
      readable(await pageFetch(page, u1, { method: 'DELETE' }));
      await settle(() => actualTo(u1, 'DELETE'), 1);
      readable(await pageFetch(page, u2, { method: 'DELETE' }));
      await settle(() => actualTo(u1, 'DELETE'), 2);
      expect(preflightsTo(u1) === 1, 'one preflight for two requests', seen.filter((x) => x.url === u1));
    });
    await scenario('max_age = 0: every request is preflighted again', async () => {
      const u = api + '/short/again';
      readable(await pageFetch(page, u, { method: 'PUT' }));
      readable(await pageFetch(page, u, { method: 'PUT' }));
      expect(await settle(() => preflightsTo(u), 2) === 2, 'two preflights', seen.filter((x) => x.url === u));
    });
    await scenario('POST application/json is preflighted and allowed (Content-Type listed)', async () => {
      const u = api + '/list/json';
      readable(await pageFetch(page, u, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' }));
      expect(await settle(() => preflightsTo(u), 1) === 1, 'one preflight');
    });
    await scenario('POST text/plain needs no preflight', async () => {
      const u = api + '/list/text';
      readable(await pageFetch(page, u, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'hi' }));
      await settle(() => actualTo(u, 'POST'), 1);
      expect(preflightsTo(u) === 0, 'no preflight');
    });
    await scenario('XMLHttpRequest GET is readable, with the exposed header', async () => {
      const r = await pageXhr(page, 'GET', api + '/list/xhr');
      expect(r.ok && r.status === 200, 'readable', r);
      expect(r.total === '42', 'X-Total readable', r);
      expect(!r.all.includes('x-secret'), 'X-Secret not listed', r.all);
    });
    await scenario('XMLHttpRequest with a method not allowed fails', async () => {
      const r = await pageXhr(page, 'PATCH', api + '/list/xhr2');
      expect(!r.ok && r.status === 0, 'blocked', r);
    });
    await scenario('XMLHttpRequest PUT with a custom header is readable', async () => {
      const r = await pageXhr(page, 'PUT', api + '/list/xhr3', { headers: { 'X-Req': 'y' }, body: 'z' });
      expect(r.ok && r.status === 200, 'readable', r);
    });

    // ---- credentials ----------------------------------------------------------------
    await scenario('a credentialed fetch is readable with a reflected origin and credentials, cookie sent', async () => {
      const r = await pageFetch(page, api + '/cred/me', { credentials: 'include' }, ['x-total']);
      readable(r);
      expect(JSON.parse(r.body).cookie === 'sid=c00kie', 'the cookie reached the API', r.body);
      expect(r.headers['x-total'] === '42', 'exposed header readable', r.headers);
    });
    await scenario('a credentialed fetch is blocked without credentials = true', async () => {
      blocked(await pageFetch(page, api + '/list/me', { credentials: 'include' }));
    });
    await scenario('a credentialed fetch is blocked by Allow-Origin "*"', async () => {
      blocked(await pageFetch(page, api + '/star/me', { credentials: 'include' }));
    });
    await scenario('an uncredentialed fetch reads a "*" route', async () => {
      readable(await pageFetch(page, api + '/star/me'));
    });
    await scenario('headers = "*" allows Authorization (the names are echoed)', async () => {
      const r = await pageFetch(page, api + '/star/auth', { headers: { Authorization: 'Bearer t' } });
      readable(r);
      expect(JSON.parse(r.body).authorization === 'Bearer t', 'Authorization sent', r.body);
    });
    await scenario('a credentialed PUT passes its preflight and sends the cookie', async () => {
      const u = api + '/cred/put';
      const r = await pageFetch(page, u, { method: 'PUT', credentials: 'include' });
      readable(r);
      expect(JSON.parse(r.body).cookie === 'sid=c00kie', 'cookie sent', r.body);
      expect(await settle(() => preflightsTo(u), 1) === 1, 'one preflight');
    });
    await scenario('XMLHttpRequest withCredentials is readable on a credentialed route', async () => {
      const r = await pageXhr(page, 'GET', api + '/cred/xhr', { withCredentials: true });
      expect(r.ok && r.status === 200 && JSON.parse(r.body).cookie === 'sid=c00kie', 'readable, cookie sent', r);
    });
    await scenario('an uncredentialed fetch sends no cookie', async () => {
      const r = await pageFetch(page, api + '/cred/anon');
      readable(r);
      expect(JSON.parse(r.body).cookie === null, 'no cookie', r.body);
    });

    // ---- gateway errors -------------------------------------------------------------------
    await scenario('a 502 from a dead upstream is readable by the page', async () => {
      const r = await pageFetch(page, api + '/dead/x');
      readable(r, 502);
      expect(JSON.parse(r.body).status === 502, 'the JSON error is readable', r.body);
    });
    await scenario('a 504 from a slow upstream is readable by the page', async () => {
      readable(await pageFetch(page, api + '/list/hang'), 504);
    });
    await scenario('a 413 for a body too large is readable by the page', async () => {
      readable(await pageFetch(page, api + '/list/big', { method: 'POST', headers: { 'Content-Type': 'text/plain' },
        body: 'x'.repeat(5000) }), 413);
    });
    await scenario('a 404 of a CORS route is readable by the page', async () => {
      const r = await pageFetch(page, api + '/missing/x');
      readable(r, 404);
    });

    // ---- a Lua plugin policy --------------------------------------------------------------
    await scenario('plugin: an origin it allows is readable', async () => {
      readable(await pageFetch(page, api + '/plugin/a'));
    });
    await scenario('plugin: the decision\'s expose_headers are readable', async () => {
      const r = await pageFetch(page, api + '/plugin/b', {}, ['x-total']);
      readable(r);
      expect(r.headers['x-total'] === '42', 'X-Total readable', r.headers);
    });
    await scenario('plugin: the decision\'s credentials let a cookie through', async () => {
      const r = await pageFetch(page, api + '/plugin/c', { credentials: 'include' });
      readable(r);
      expect(JSON.parse(r.body).cookie === 'sid=c00kie', 'cookie sent', r.body);
    });
    await scenario('plugin: PUT with a header passes the preflight, reused within the decision\'s max_age', async () => {
      const u = api + '/plugin/put';
      readable(await pageFetch(page, u, { method: 'PUT', headers: { 'X-Req': '1' } }));
      readable(await pageFetch(page, u, { method: 'PUT', headers: { 'X-Req': '1' } }));
      await settle(() => actualTo(u, 'PUT'), 2);
      expect(preflightsTo(u) === 1, 'one preflight for two requests', seen.filter((x) => x.url === u));
    });
    await scenario('plugin: a method the route does not allow is blocked', async () => {
      blocked(await pageFetch(page, api + '/plugin/del', { method: 'DELETE' }));
    });
    await scenario('plugin: a failing plugin fails closed (blocked)', async () => {
      blocked(await pageFetch(page, api + '/broken/a'));
    });

    // ---- what the console says about a refused preflight (debug = true) -------------------
    await scenario('debug route: a refused method is named in the console (MethodDisallowedByPreflightResponse)', async () => {
      const u = api + '/dbg/m';
      blocked(await pageFetch(page, u, { method: 'PATCH', credentials: 'include' }));
      await corsError(u, 'MethodDisallowedByPreflightResponse', 'PATCH');
      expect((up.calls['/dbg/m'] || 0) === 0, 'the API never saw it', up.calls);
    });
    await scenario('debug route: a refused header is named in the console (HeaderDisallowedByPreflightResponse)', async () => {
      const u = api + '/dbg/h';
      blocked(await pageFetch(page, u, { method: 'PUT', headers: { 'X-Req': '1', 'X-Trace': '2' } }));
      await corsError(u, 'HeaderDisallowedByPreflightResponse', 'x-trace');
      expect((up.calls['/dbg/h'] || 0) === 0, 'the API never saw it', up.calls);
    });
    await scenario('debug route: a refused origin still gets no Allow-Origin (PreflightMissingAllowOriginHeader)', async () => {
      const u = api + '/dbgother/o';
      blocked(await pageFetch(page, u, { method: 'PUT' }));
      await corsError(u, 'PreflightMissingAllowOriginHeader');
    });
    await scenario('normal route: a refused method reads as a missing Allow-Origin (PreflightMissingAllowOriginHeader)', async () => {
      const u = api + '/list/m';
      blocked(await pageFetch(page, u, { method: 'PATCH' }));
      await corsError(u, 'PreflightMissingAllowOriginHeader');
    });
    await scenario('normal route: a refused header reads as a missing Allow-Origin (PreflightMissingAllowOriginHeader)', async () => {
      const u = api + '/list/h';
      blocked(await pageFetch(page, u, { method: 'PUT', headers: { 'X-Trace': '2' } }));
      await corsError(u, 'PreflightMissingAllowOriginHeader');
    });
    await scenario('normal route: a refused origin reads as a missing Allow-Origin (PreflightMissingAllowOriginHeader)', async () => {
      const u = api + '/other/o';
      blocked(await pageFetch(page, u, { method: 'PUT' }));
      await corsError(u, 'PreflightMissingAllowOriginHeader');
    });
    await scenario('debug route: an allowed PUT still passes its preflight', async () => {
      readable(await pageFetch(page, api + '/dbg/ok', { method: 'PUT', headers: { 'X-Req': '1' } }));
    });
    // over HTTPS the gateway offers h2 by ALPN, and every scenario above ran on it
    await scenario(TLS ? 'every response came over HTTP/2 (CDP protocol "h2")'
      : 'every response came over HTTP/1.1 (CDP protocol "http/1.1")', async () => {
      const want = TLS ? 'h2' : 'http/1.1';
      const n = Object.values(protocols).reduce((a, b) => a + b, 0);
      expect(n >= 40 && protocols[want] === n, `all ${n} responses over ${want}`, protocols);
      return JSON.stringify(protocols);
    });
  } catch (e) {
    results.push({ name: 'browser setup', ok: false, detail: String(e && e.stack || e) });
  } finally {
    if (browser) await browser.close().catch(() => {});
    if (gw) {
      gw.kill('SIGTERM');
      await new Promise((r) => { gw.once('exit', r); setTimeout(r, 5000); });
    }
    up.server.close();
    page0.server.close();
    if (results.some((r) => !r.ok)) {
      const log = path.join(dir, 'corsgate.log');
      if (fs.existsSync(log)) results.push({ name: 'gateway log', ok: true, detail: fs.readFileSync(log, 'utf8') });
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const json = JSON.stringify(results, null, 1);
  if (OUT === '-') process.stdout.write(json + '\n');
  else fs.writeFileSync(OUT, json);
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
