// Browser test of the dashboard's liveness signals against a real engine
// that stops and comes back (driven by tests/e2e/test_browser.py).
//
//   OP_DASHBOARD_URL=http://127.0.0.1:PORT/ node tests/browser/liveness.test.mjs
//
// The driver and this script talk in lines: this script writes "ready" once
// the page shows fresh figures; the driver then freezes the engine (SIGSTOP)
// and writes "frozen <epoch ms>"; this script checks that the stale banner
// (role="alert") is up within three ticks of that moment and writes
// "stale <ms>"; the driver thaws the engine ("thawed"), the banner must go
// ("fresh"). Then the same with the engine stopped for good ("stopped <epoch
// ms>", SIGTERM) and started again ("started"). "done" ends the script.
// Optional: OP_SCREENSHOT=path.png saves the page while the engine is down
// (1920x1080, no animation). Exit code 0 when every check passed, else 1.

import { chromium } from 'playwright-core';
import readline from 'node:readline';

const URL_ = process.env.OP_DASHBOARD_URL;
const SCREENSHOT = process.env.OP_SCREENSHOT || '';
const CHROMIUM = process.env.OP_CHROMIUM || '/usr/bin/chromium';
const TICKS = 3; // the banner must be up within this many ticks of the engine stopping

const lines = readline.createInterface({ input: process.stdin });
const pending = [];
const waiters = [];
lines.on('line', (l) => (waiters.length ? waiters.shift()(l) : pending.push(l)));
const nextLine = () => new Promise((resolve) => (pending.length ? resolve(pending.shift()) : waiters.push(resolve)));
const say = (msg) => console.log(msg);

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function expectLine(word) {
  const line = await nextLine();
  assert(line.split(' ')[0] === word, `expected "${word}" from the driver, got "${line}"`);
  return line.split(' ').slice(1);
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-background-networking', '--disable-dev-shm-usage']
});
const guard = setTimeout(() => {
  say('FAIL the liveness test took longer than 180 s');
  process.exit(1);
}, 180000);

let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1920, height: 1080 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (msg) => {
    // While the engine is down, failed requests are expected.
    if (msg.type() === 'error' && !/Failed to load resource|net::/.test(msg.text())) problems.push(msg.text());
  });
  const u = new URL(URL_);
  u.searchParams.set('animation', '0');
  await page.goto(u.href, { waitUntil: 'load' });
  await page.waitForFunction(() => window.__orderpulse.state === 'live' && window.__orderpulse.renders > 1 &&
    !window.__orderpulse.stale, null, { timeout: 30000 });
  const tickMs = await page.evaluate(() => window.__orderpulse.last.tick_ms);
  assert(tickMs > 0, `tick_ms ${tickMs}`);
  assert(!(await page.isVisible('[role="alert"]')), 'a banner while the engine is live');
  say(`ready tick_ms=${tickMs}`);

  // Waits for the banner; returns how long after `since` (epoch ms) it was
  // up. Then waits for its reason to become `reason` (an engine that is
  // shutting down first stops publishing, then closes its connections).
  async function bannerUp(since, reason) {
    await page.waitForSelector('[role="alert"]', { state: 'visible', timeout: TICKS * tickMs + 10000 });
    // When the page put it up (the test's own polling adds its latency).
    const at = Number(await page.getAttribute('[role="alert"]', 'data-shown-at'));
    await page.waitForFunction((r) => document.getElementById('stale-banner').getAttribute('data-reason') === r,
      reason, { timeout: 15000 });
    const st = await page.evaluate(() => ({
      reason: document.getElementById('stale-banner').getAttribute('data-reason'),
      text: document.getElementById('stale-banner').textContent,
      dim: document.body.getAttribute('data-stale'),
      filter: getComputedStyle(document.getElementById('grid')).filter,
      age: document.getElementById('status-age').textContent
    }));
    assert(st.reason === reason, `banner reason ${st.reason}, want ${reason}`);
    assert(/^No update for \d+ s: .* The figures are from \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\+08:00 /.test(st.text),
      `banner text: ${st.text}`);
    assert(st.dim === 'true' && st.filter.includes('grayscale'), `figures not greyed out: ${JSON.stringify(st)}`);
    assert(/ago$/.test(st.age), `no age in the status line: ${st.age}`);
    return at - since;
  }

  async function bannerGone() {
    await page.waitForSelector('[role="alert"]', { state: 'hidden', timeout: 20000 });
    const dim = await page.getAttribute('body', 'data-stale');
    assert(dim === 'false', 'figures still greyed out');
  }

  // 1. Frozen: the connection stays open, nothing more comes.
  const [frozenAt] = await expectLine('frozen');
  let dt = await bannerUp(Number(frozenAt), 'staleSlow');
  assert(dt <= TICKS * tickMs, `banner ${dt} ms after the engine froze, more than ${TICKS} ticks of ${tickMs} ms`);
  say(`stale ${dt}`);
  await expectLine('thawed');
  await bannerGone();
  say('fresh');

  // 2. Stopped: the connection goes, the API cannot be reached.
  const [stoppedAt] = await expectLine('stopped');
  dt = await bannerUp(Number(stoppedAt), 'staleGone');
  assert(dt <= TICKS * tickMs, `banner ${dt} ms after the engine stopped, more than ${TICKS} ticks of ${tickMs} ms`);
  const conn = await page.getAttribute('[data-testid="status-conn"]', 'data-state');
  assert(conn === 'disconnected', `connection shows ${conn}`);
  if (SCREENSHOT) {
    await new Promise((r) => setTimeout(r, 4000)); // an age the room can read
    await page.screenshot({ path: SCREENSHOT, fullPage: false });
  }
  say(`stale ${dt}`);
  await expectLine('started');
  await bannerGone();
  say('fresh');
  await expectLine('done');
  assert(problems.length === 0, `console/page errors: ${problems.join('; ')}`);
  say('ok');
} catch (e) {
  failed = true;
  say(`FAIL ${e && e.stack || e}`);
} finally {
  clearTimeout(guard);
  lines.close();
  await browser.close().catch(() => {});
}
process.exit(failed ? 1 : 0);
