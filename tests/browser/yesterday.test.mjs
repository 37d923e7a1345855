// Browser test of the dashboard's "yesterday" line (sales per minute) against
// an engine started with --archive whose archive holds the previous day:
//   OP_DASHBOARD_URL=http://127.0.0.1:PORT/ node tests/browser/yesterday.test.mjs
// Driven by tests/e2e/test_archive.py (ArchiveHistory), which compares the
// drawn points with the simulator's truth. Checks: no console or page
// errors; the line appears with its legend entry; its points are
// /api/v1/history/minutes of the shown hour a day earlier, shifted by a day.
// The last line of stdout is the drawn points, [[minute, amount], ...], as
// JSON. Exit code 0 when every check passed, else 1.

import { chromium } from 'playwright-core';

const URL_ = process.env.OP_DASHBOARD_URL;
const CHROMIUM = process.env.OP_CHROMIUM || '/usr/bin/chromium';
const DAY_MS = 86400000;
const MINUTES_SPAN = 60; // app.js

function fail(msg) {
  console.log(`FAIL ${msg}`);
  process.exit(1);
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-background-networking', '--disable-dev-shm-usage']
});
const guard = setTimeout(() => fail('the browser test took longer than 90 s'), 90000);
let code = 1;
try {
  const page = await (await browser.newContext({ viewport: { width: 1920, height: 1080 } })).newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console error: ${msg.text()}`);
  });
  const res = await page.goto(URL_, { waitUntil: 'load', timeout: 20000 });
  if (!res || !res.ok()) fail(`GET ${URL_}: HTTP ${res && res.status()}`);
  await page.waitForFunction(() => {
    const m = window.__orderpulse && window.__orderpulse.rendered.minutes;
    return m && m.yesterday && m.yesterday.length > 0;
  }, null, { timeout: 30000 }).catch(() => fail('no yesterday line within 30 s'));
  const drawn = await page.evaluate(() => {
    const pub = window.__orderpulse;
    const opt = pub.charts.minutes.getOption();
    return {
      latest: pub.rendered.minutes.minutes[pub.rendered.minutes.minutes.length - 1],
      points: pub.rendered.minutes.yesterday,
      series: opt.series.find((s) => s.name === 'yesterday').data,
      legend: opt.legend[0].data
    };
  });
  if (!drawn.legend.includes('yesterday')) fail(`legend ${JSON.stringify(drawn.legend)}`);
  const from = drawn.latest - DAY_MS - (MINUTES_SPAN - 1) * 60000;
  const api = await (await fetch(new URL(
    `/api/v1/history/minutes?from=${from}&to=${drawn.latest - DAY_MS + 60000}`, URL_))).json();
  const want = api.map((m) => [m.minute, m.amount]);
  if (JSON.stringify(drawn.points) !== JSON.stringify(want)) {
    fail(`drawn ${JSON.stringify(drawn.points).slice(0, 300)}\n  api ${JSON.stringify(want).slice(0, 300)}`);
  }
  const shifted = want.map(([m, a]) => [m + DAY_MS, a]);
  if (JSON.stringify(drawn.series) !== JSON.stringify(shifted)) fail('the series is not shifted by a day');
  if (problems.length) fail(problems.join('\n'));
  console.log(`ok   ${drawn.points.length} minutes of yesterday drawn`);
  console.log(JSON.stringify(drawn.points));
  code = 0;
} finally {
  clearTimeout(guard);
  await browser.close();
}
process.exit(code);
