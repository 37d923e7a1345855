// Browser test of the orderpulse dashboard (http/static/).
//
// Drives Debian's Chromium through playwright-core against a running engine:
//   OP_DASHBOARD_URL=http://127.0.0.1:PORT/ node tests/browser/dashboard.test.mjs
// Optional environment:
//   OP_SCREENSHOT=path.png  save a 1920x1080 screenshot at the end
//   OP_EXPECT_CONN=live     connection state the page must reach: live (SSE,
//                           the default), polling, or any
//   OP_EXPECT_CHANGE=0      skip the "numbers change" check (static data)
//   OP_SKIP_FALLBACK=1      skip the SSE-failure / polling fallback check
//   OP_CHROMIUM=/usr/bin/chromium
//
// It checks: no console errors or page errors; every panel renders data and
// matches GET /api/v1/snapshot of the same tick, with times in the engine's
// display zone (the browser runs in another zone); the open minute is drawn
// dashed and labelled partial, revised minutes carry a marker; cut lists say
// "top N of M"; the gender ring shows amounts; the rate is there from the
// first snapshot; the brand toggle re-sorts; the numbers move when orders
// arrive; ?lang=zh has Chinese labels and 万/亿 units; ?stream=0 is a still
// that opens no stream; the full-screen control works; with the stream
// blocked the page falls back to polling, shows "disconnected" and the stale
// banner when the API is gone too, and goes live again once it is back.
// (tests/browser/liveness.test.mjs checks the banner against a real engine
// stopping and coming back.) Exit code 0 when every check passed, else 1.

import { chromium } from 'playwright-core';

const URL_ = process.env.OP_DASHBOARD_URL;
const SCREENSHOT = process.env.OP_SCREENSHOT || '';
const EXPECT_CONN = process.env.OP_EXPECT_CONN || 'live';
const EXPECT_CHANGE = process.env.OP_EXPECT_CHANGE !== '0';
const SKIP_FALLBACK = process.env.OP_SKIP_FALLBACK === '1';
const EXPECT_REVISED = process.env.OP_EXPECT_REVISED !== '0';
const DISPLAY_TZ_MIN = 8 * 60;  // the engine's default --timezone, +08:00
const BROWSER_TZ = 'America/New_York';  // a zone the page must not use
const CHROMIUM = process.env.OP_CHROMIUM || '/usr/bin/chromium';

// What the page draws at most (app.js: MINUTES_SPAN, CATEGORY_BARS, BRAND_BARS, SLOT_BARS).
const MINUTES_SPAN = 60;
const CATEGORY_BARS = 12;
const BRAND_BARS = 15;
const SLOT_BARS = 24;

const CHART_IDS = ['chart-minutes', 'chart-categories', 'chart-brands', 'chart-gender', 'chart-gender-slots'];
const PANEL_IDS = ['panel-totals', 'panel-minutes', 'panel-categories', 'panel-brands', 'panel-top-users',
  'panel-gender', 'panel-gender-slots', 'status'];

if (!URL_) {
  console.error('OP_DASHBOARD_URL is not set');
  process.exit(1);
}

// ---------------------------------------------------------------------------
// A minimal runner: named checks, a summary line, exit code.

const results = [];
async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    results.push({ name, ok: false });
    console.log(`FAIL ${name} (${Date.now() - t0} ms)\n     ${String(e && e.stack || e).split('\n').join('\n     ')}`);
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}
function eq(got, want, what) {
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  if (g !== w) throw new Error(`${what}:\n  got  ${g.slice(0, 600)}\n  want ${w.slice(0, 600)}`);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// Expected values, computed here independently of app.js.

function commas(digits) {
  let out = '';
  for (let i = 0; i < digits.length; i++) {
    if (i > 0 && (digits.length - i) % 3 === 0) out += ',';
    out += digits[i];
  }
  return out;
}
const intText = (n) => (n < 0 ? '-' : '') + commas(String(Math.abs(n)));

// The totals.amount number exactly as the API printed it.
function amountTextOf(raw) {
  const totals = raw.indexOf('"totals"');
  const at = raw.indexOf('"amount"', totals);
  const m = /^"amount"\s*:\s*(-?[0-9]+(?:\.[0-9]+)?)/.exec(raw.slice(at));
  assert(totals >= 0 && m, 'no totals.amount in the API document');
  return m[1];
}
function moneyText(numText) {
  const neg = numText.startsWith('-');
  const [i, f = ''] = (neg ? numText.slice(1) : numText).split('.');
  return (neg ? '-' : '') + '¥' + commas(i) + '.' + (f + '00').slice(0, 2);
}

// UTF-8 byte order (= code point order), the API's tie-break.
function byteCmp(a, b) {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return Buffer.compare(x, y);
}

function expectedCategoryMinute(doc) {
  const final = new Set(doc.minutes.filter((m) => m.final).map((m) => m.minute));
  const cats = doc.categories;
  for (let i = cats.length - 1; i >= 0; i--) if (final.has(cats[i].minute)) return cats[i];
  return cats[cats.length - 1];
}

function expectedMinutes(doc) {
  if (!doc.minutes.length) return [];
  const latest = doc.minutes[doc.minutes.length - 1].minute;
  return doc.minutes.filter((m) => m.minute > latest - MINUTES_SPAN * 60000);
}

// "00:05" of a time in the display zone, computed here on its own.
function hhmmIn(ms, offsetMin) {
  const d = new Date(ms + offsetMin * 60000);
  return String(d.getUTCHours()).padStart(2, '0') + ':' + String(d.getUTCMinutes()).padStart(2, '0');
}

const withoutRunMembers = (doc) => {
  const c = Object.assign({}, doc);
  delete c.as_of;
  delete c.stats;
  return c;
};

async function apiSnapshot() {
  const res = await fetch(new URL('/api/v1/snapshot', URL_), { headers: { accept: 'application/json' } });
  assert(res.ok, `GET /api/v1/snapshot: HTTP ${res.status}`);
  const ct = res.headers.get('content-type') || '';
  assert(ct.startsWith('application/json'), `GET /api/v1/snapshot: content-type ${ct}`);
  const raw = await res.text();
  return { raw, doc: JSON.parse(raw) };
}

// ---------------------------------------------------------------------------
// What the page shows, read from its DOM and its ECharts instances.

function readPage() {
  const $ = (id) => document.getElementById(id);
  const op = window.__orderpulse;
  const opt = (id) => echarts.getInstanceByDom($(id)).getOption();
  const m = opt('chart-minutes');
  const c = opt('chart-categories');
  const b = opt('chart-brands');
  const g = opt('chart-gender');
  const s = opt('chart-gender-slots');
  const canvases = {};
  for (const id of ['chart-minutes', 'chart-categories', 'chart-brands', 'chart-gender', 'chart-gender-slots']) {
    const cv = $(id).querySelector('canvas');
    canvases[id] = cv ? [cv.width, cv.height] : null;
  }
  const testids = {};
  for (const el of document.querySelectorAll('[data-testid]')) testids[el.getAttribute('data-testid')] = true;
  const pie = (ser) => ser.data.map((d) => ({ name: d.name, value: d.value, share: d.share }));
  const xy = (d) => (Array.isArray(d) ? d : d.value);
  return {
    state: op.state,
    renders: op.renders,
    tick: op.last ? op.last.tick : null,
    lastText: op.lastText,
    testids,
    text: {
      amount: $('total-amount').textContent,
      amountValue: $('total-amount').getAttribute('data-value'),
      orders: $('total-orders').textContent,
      quantity: $('total-quantity').textContent,
      tick: $('status-tick').textContent,
      conn: $('status-conn').getAttribute('data-state'),
      categoryMinute: $('categories-minute').getAttribute('data-value'),
      categoryState: $('categories-minute').getAttribute('data-state'),
      categoryNote: $('categories-minute').textContent,
      brandsCount: $('brands-count').textContent,
      asOf: $('status-asof').textContent,
      rate: $('status-rate').getAttribute('data-value')
    },
    canvases,
    minutes: {
      amount: m.series[0].data.map(xy),
      open: m.series[1].data.map(xy),
      openDashed: m.series[1].lineStyle.type,
      openLabel: m.series[1].data.length ? (m.series[1].data[m.series[1].data.length - 1].label || {}).formatter : null,
      revised: m.series[2].data.map(xy),
      orders: m.series[3].data.map(xy),
      openBars: m.series[3].data.filter((d) => !Array.isArray(d)).map((d) => ({ x: d.value[0], opacity: d.itemStyle.opacity })),
      xLabels: op.rendered.minutes ? op.rendered.minutes.minutes.map((t) => m.xAxis[0].axisLabel.formatter(t)) : []
    },
    genderLabels: op.rendered.gender ? op.rendered.gender.labels : [],
    categories: { names: c.yAxis[0].data, values: c.series[0].data },
    brands: { by: $('panel-brands').getAttribute('data-by'), names: b.yAxis[0].data, values: b.series[0].data },
    gender: { outer: pie(g.series[0]), inner: pie(g.series[1]), legend: g.legend[0].data },
    slots: { x: s.xAxis[0].data, series: s.series.map((x) => ({ name: x.name, stack: x.stack, data: x.data })) },
    topUsers: Array.from(document.querySelectorAll('#top-users-body tr[data-testid="top-user"]')).map((tr) => ({
      name: tr.getAttribute('data-name'),
      cells: Array.from(tr.cells).map((td) => td.textContent)
    }))
  };
}

// Reads the page and the API until both show the same tick (the engine ticks
// while we look), so that they can be compared exactly.
async function samePageAndApi(page, attempts = 60) {
  let last = '';
  for (let i = 0; i < attempts; i++) {
    const view = await page.evaluate(readPage);
    const api = await apiSnapshot();
    if (view.tick === api.doc.tick) return { view, api };
    last = `page tick ${view.tick}, API tick ${api.doc.tick}`;
    await sleep(120);
  }
  throw new Error(`page and API never showed the same tick (${last})`);
}

// ---------------------------------------------------------------------------

function compareToApi(view, api) {
  const doc = api.doc;

  // The rendered snapshot is the API's snapshot of that tick.
  eq(withoutRunMembers(JSON.parse(view.lastText)), withoutRunMembers(doc), 'page snapshot vs API snapshot');

  // (1)(2) totals, the amount exact from its number text.
  const amountText = amountTextOf(api.raw);
  eq(view.text.amount, moneyText(amountText), 'total amount text');
  eq(view.text.amountValue, amountText, 'total amount data-value');
  eq(view.text.orders, intText(doc.totals.orders), 'total orders text');
  eq(view.text.quantity, intText(doc.totals.quantity), 'total quantity text');
  eq(view.text.tick, intText(doc.tick), 'status tick');

  // Times in the engine's display zone, labelled with it, whatever the
  // browser's zone (this context runs in America/New_York).
  eq(doc.display_timezone, '+08:00', 'the engine\'s display zone');
  assert(view.text.asOf.endsWith(' UTC+08:00'), `as of without its zone: ${view.text.asOf}`);
  assert(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d /.test(view.text.asOf), `as of without a date: ${view.text.asOf}`);

  // (3) sales per minute: the last 60 minutes; closed ones solid, the open
  // ones dashed from the last closed minute, revised ones marked.
  const mins = expectedMinutes(doc);
  assert(mins.length > 0, 'the API has no minutes');
  const closed = mins.filter((m) => m.state !== 'open');
  const open = mins.filter((m) => m.state === 'open');
  eq(mins.map((m) => m.final), mins.map((m) => m.state !== 'open'), 'API: final agrees with state');
  eq(view.minutes.amount, closed.map((m) => [m.minute, m.amount]), 'minutes: closed amount series');
  const anchor = closed.length && open.length ? [[closed[closed.length - 1].minute, closed[closed.length - 1].amount]] : [];
  eq(view.minutes.open, anchor.concat(open.map((m) => [m.minute, m.amount])), 'minutes: open (dashed) series');
  eq(view.minutes.revised, mins.filter((m) => m.state === 'revised').map((m) => [m.minute, m.amount]),
    'minutes: revised markers');
  eq(view.minutes.orders, mins.map((m) => [m.minute, m.orders]), 'minutes: orders series');
  eq(view.minutes.openBars.map((b) => b.x), open.map((m) => m.minute), 'minutes: open minutes\' bars marked');
  eq(view.minutes.xLabels, mins.map((m) => hhmmIn(m.minute, DISPLAY_TZ_MIN)), 'minutes: axis times in +08:00');
  if (open.length) {
    eq(view.minutes.openDashed, 'dashed', 'minutes: the open minute is dashed');
    eq(view.minutes.openLabel, 'partial', 'minutes: the open minute is labelled');
    assert(view.minutes.openBars.every((b) => b.opacity < 1), 'minutes: open bars are pale');
  }

  // (4) category ranking of the latest final minute (else the latest).
  const cat = expectedCategoryMinute(doc);
  const ranking = cat.ranking.slice(0, CATEGORY_BARS);
  assert(ranking.length > 0, 'the API has an empty category ranking');
  eq(view.text.categoryMinute, String(cat.minute), 'categories: minute shown');
  eq(view.text.categoryState, cat.state, 'categories: state shown');
  assert(view.text.categoryNote.includes(`minute ${hhmmIn(cat.minute, DISPLAY_TZ_MIN)} · ${cat.state === 'open' ? 'open' : cat.state}`),
    `categories note: ${view.text.categoryNote}`);
  eq(view.categories.names, ranking.map((r) => r.name), 'categories: names');
  eq(view.categories.values, ranking.map((r) => r.quantity), 'categories: quantities');

  // (5) brands by quantity, as the API sorts them.
  const brands = doc.brands.slice(0, BRAND_BARS);
  eq(view.brands.by, 'quantity', 'brands: default order');
  eq(view.brands.names.length, Math.min(BRAND_BARS, doc.brands.length), 'brands: number of bars');
  eq(view.brands.names, brands.map((b) => b.name), 'brands: names by quantity');
  eq(view.brands.values, brands.map((b) => b.quantity), 'brands: quantities');
  eq(view.text.brandsCount, doc.brands.length > BRAND_BARS ? `top ${BRAND_BARS} of ${doc.brands.length}` : `all ${doc.brands.length}`,
    'brands: how many of how many');

  // (6) top-10 users, names in order, amounts to the cent.
  assert(doc.top_users.length > 0, 'the API has no top users');
  eq(view.topUsers.map((u) => u.name), doc.top_users.map((u) => u.name), 'top users: names in order');
  eq(view.topUsers.map((u) => u.cells[2]), doc.top_users.map((u) => moneyText(u.amount.toFixed(2))),
    'top users: amounts');
  eq(view.topUsers.map((u) => u.cells[3]), doc.top_users.map((u) => intText(u.orders)), 'top users: orders');

  // (7) gender: names, values and the API's own shares.
  assert(doc.gender.length > 0, 'the API has no gender rows');
  eq(view.gender.outer, doc.gender.map((x) => ({ name: x.name, value: x.amount, share: x.amount_share })),
    'gender: amount ring');
  eq(view.gender.inner, doc.gender.map((x) => ({ name: x.name, value: x.quantity, share: x.quantity_share })),
    'gender: quantity ring');
  eq(view.gender.legend, doc.gender.map((x) => x.name), 'gender: legend');
  view.genderLabels.forEach((label, i) => {
    const g = doc.gender[i];
    assert(label.startsWith(g.name + '\n¥') && label.endsWith('\n' + (g.amount_share * 100).toFixed(1) + '%'),
      `gender label without its amount: ${JSON.stringify(label)}`);
  });
  assert(view.text.rate !== '' && Number(view.text.rate) >= 0, `no rate: ${view.text.rate}`);
  eq(view.text.rate, doc.stats.orders_per_s.toFixed(1), 'orders/s is the engine\'s figure');

  // (8) 10-minute slots: one stacked series per gender, the last 24 slots.
  const slots = doc.gender_slots.slice(-SLOT_BARS);
  assert(slots.length > 0, 'the API has no gender slots');
  eq(view.slots.x.length, slots.length, 'gender slots: number of slots');
  const names = new Set();
  slots.forEach((s) => Object.keys(s.quantity).forEach((k) => names.add(k)));
  eq(view.slots.series.map((s) => s.name).sort(), Array.from(names).sort(), 'gender slots: series');
  for (const ser of view.slots.series) {
    eq(ser.stack, 'quantity', `gender slots: ${ser.name} stacked`);
    eq(ser.data, slots.map((s) => s.quantity[ser.name] || 0), `gender slots: ${ser.name} quantities`);
  }
}

// ---------------------------------------------------------------------------

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-background-networking', '--disable-dev-shm-usage']
});

// Whole-run guard: never hang a CI job.
const guard = setTimeout(() => {
  console.log('FAIL the browser test took longer than 240 s');
  process.exit(1);
}, 240000);

function watch(page, problems, { ignoreNetErrors = false } = {}) {
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    // Requests the test itself aborts show up as "Failed to load resource".
    if (ignoreNetErrors && /Failed to load resource|ERR_FAILED|net::/.test(msg.text())) return;
    problems.push(`console error: ${msg.text()}`);
  });
}

try {
  const context = await browser.newContext({ viewport: { width: 1920, height: 1080 }, deviceScaleFactor: 1, timezoneId: BROWSER_TZ });
  const page = await context.newPage();
  const problems = [];
  watch(page, problems);
  let loaded = false;

  await check('page loads with ECharts and its panels', async () => {
    const res = await page.goto(URL_, { waitUntil: 'load', timeout: 20000 });
    assert(res && res.ok(), `GET ${URL_}: HTTP ${res && res.status()}`);
    eq(await page.evaluate(() => typeof echarts === 'object' && typeof echarts.init === 'function'), true,
      'ECharts loaded from /vendor/echarts.min.js');
    const ids = await page.evaluate(() =>
      Array.from(document.querySelectorAll('[data-testid]')).map((e) => e.getAttribute('data-testid')));
    for (const id of PANEL_IDS.concat(['total-amount', 'total-orders', 'total-quantity'])) {
      assert(ids.includes(id), `no element with data-testid="${id}"`);
    }
    loaded = true;
  });
  if (!loaded) throw new Error('the page did not load');

  await check('first snapshot rendered with orders', async () => {
    await page.waitForFunction(() => window.__orderpulse && window.__orderpulse.last &&
      window.__orderpulse.last.totals.orders > 0, null, { timeout: 30000 });
  });

  await check(`connection state reaches ${EXPECT_CONN}`, async () => {
    const want = EXPECT_CONN === 'any' ? ['live', 'polling'] : [EXPECT_CONN];
    await page.waitForFunction((w) => w.includes(window.__orderpulse.state), want, { timeout: 15000 })
      .catch(async () => {
        throw new Error(`state is ${await page.evaluate(() => window.__orderpulse.state)}, want ${want}`);
      });
    const conn = await page.getAttribute('[data-testid="status-conn"]', 'data-state');
    assert(want.includes(conn), `status-conn shows ${conn}`);
  });

  await check('every chart panel has a drawn canvas and non-empty series', async () => {
    // Let the first render's layout settle.
    await page.waitForFunction(() => window.__orderpulse.renders > 0);
    const v = await page.evaluate(readPage);
    for (const id of CHART_IDS) {
      const c = v.canvases[id];
      assert(c && c[0] > 100 && c[1] > 100, `${id}: no canvas (or a tiny one): ${JSON.stringify(c)}`);
    }
    assert(v.minutes.amount.length > 0 && v.minutes.orders.length > 0, 'minutes: empty series');
    assert(v.categories.values.length > 0, 'categories: no bars');
    assert(v.brands.values.length > 0, 'brands: no bars');
    assert(v.gender.outer.length > 0 && v.gender.inner.length > 0, 'gender: empty pie');
    assert(v.slots.series.length > 0 && v.slots.series[0].data.length > 0, 'gender slots: no bars');
    assert(v.topUsers.length > 0, 'top users: empty table');
  });

  await check('all eight metrics match GET /api/v1/snapshot of the same tick', async () => {
    const { view, api } = await samePageAndApi(page);
    compareToApi(view, api);
  });

  if (EXPECT_REVISED) {
    await check('a revised minute is marked on the chart and named in the category panel', async () => {
      // The simulator sends late orders: closed minutes get revised.
      let pair = null;
      for (let i = 0; i < 100 && !pair; i++) {
        const p = await samePageAndApi(page);
        if (expectedMinutes(p.api.doc).some((m) => m.state === 'revised')) pair = p;
        else await sleep(200);
      }
      assert(pair, 'no minute was ever revised');
      compareToApi(pair.view, pair.api);
      const revised = expectedMinutes(pair.api.doc).filter((m) => m.state === 'revised');
      assert(pair.view.minutes.revised.length === revised.length && revised.length > 0, 'revised markers');
      const legend = await page.evaluate(() => echarts.getInstanceByDom(document.getElementById('chart-minutes'))
        .getOption().legend[0].data);
      assert(legend.includes('revised'), `the legend names the marker: ${legend}`);
      const tip = await page.evaluate((t) => {
        const c = echarts.getInstanceByDom(document.getElementById('chart-minutes'));
        return c.getOption().tooltip[0].formatter([{ value: [t, 1], seriesIndex: 0, marker: '' }]);
      }, revised[0].minute);
      assert(tip.includes('revised'), `the tooltip names the state: ${tip}`);
    });
  }

  await check('the rate is shown from the first snapshot', async () => {
    const p = await context.newPage();
    watch(p, problems);
    // Hold the stream back: the one plain GET is the only snapshot.
    await p.route('**/api/v1/stream*', () => {});
    await p.goto(URL_, { waitUntil: 'load' });
    await p.waitForFunction(() => window.__orderpulse.renders === 1, null, { timeout: 15000 });
    const rate = await p.evaluate(() => document.getElementById('status-rate').getAttribute('data-value'));
    assert(rate !== '' && !Number.isNaN(Number(rate)), `no rate after one snapshot: '${rate}'`);
    await p.close();
  });

  await check('?lang=zh: Chinese labels, 万/亿 units, times still in +08:00', async () => {
    const p = await context.newPage();
    watch(p, problems);
    const u = new URL(URL_);
    u.searchParams.set('lang', 'zh');
    await p.goto(u.href, { waitUntil: 'load' });
    await p.waitForFunction(() => window.__orderpulse.renders > 0 && window.__orderpulse.last.totals.amount > 1e4,
      null, { timeout: 15000 });
    const z = await p.evaluate(() => {
      const op = window.__orderpulse;
      const m = echarts.getInstanceByDom(document.getElementById('chart-minutes')).getOption();
      const amounts = op.last.minutes.map((x) => x.amount);
      const top = Math.max.apply(null, amounts);
      return {
        lang: document.documentElement.lang,
        title: document.querySelector('#panel-totals h2').textContent,
        axis: [m.yAxis[0].axisLabel.formatter(top), m.yAxis[0].axisLabel.formatter(2.5e8), m.yAxis[1].axisLabel.formatter(25000)],
        approx: document.getElementById('total-amount-approx').textContent,
        amount: document.getElementById('total-amount').textContent,
        brands: document.getElementById('brands-count').textContent,
        legend: m.legend[0].data,
        hhmm: op.format.hhmm(Date.UTC(2024, 10, 10, 16, 5)),
        zone: op.format.zone()
      };
    });
    eq(z.lang, 'zh-CN', 'html lang');
    eq(z.title, '销售总额', 'a panel title in Chinese');
    assert(/[万亿]$/.test(z.axis[0]), `amount axis label without 万/亿: ${z.axis[0]}`);
    eq(z.axis.slice(1), ['¥2.5亿', '2.5万'], 'axis units');
    assert(/^≈ ¥[0-9.]+[万亿]$/.test(z.approx), `total amount approximation: ${z.approx}`);
    assert(/^¥[0-9,]+\.[0-9]{2}$/.test(z.amount), `the exact total stays: ${z.amount}`);
    assert(/^(前 \d+ \/ 共|共) \d+$/.test(z.brands), `brand count in Chinese: ${z.brands}`);
    eq(z.legend, ['金额', '当前分钟', '已修订', '订单数'], 'minutes legend');
    eq([z.hhmm, z.zone], ['00:05', 'UTC+08:00'], 'display zone');
    await p.close();
  });

  await check('?stream=0&animation=0 is a still: one snapshot, no stream, no polling', async () => {
    const p = await context.newPage();
    watch(p, problems);
    const requests = [];
    p.on('request', (r) => requests.push(new URL(r.url()).pathname));
    const u = new URL(URL_);
    u.searchParams.set('stream', '0');
    u.searchParams.set('animation', '0');
    await p.goto(u.href, { waitUntil: 'load' });
    await p.waitForFunction(() => window.__orderpulse.renders === 1, null, { timeout: 15000 });
    await sleep(2500);
    const st = await p.evaluate(() => ({ state: window.__orderpulse.state, renders: window.__orderpulse.renders,
      stale: window.__orderpulse.stale, anim: echarts.getInstanceByDom(document.getElementById('chart-minutes')).getOption().animation }));
    eq(st, { state: 'still', renders: 1, stale: false, anim: false }, 'still page');
    eq(requests.filter((r) => r.startsWith('/api/')), ['/api/v1/snapshot'], 'API requests of a still');
    await p.close();
  });

  await check('the full-screen control enters and leaves full screen', async () => {
    const btn = '[data-testid="fullscreen"]';
    eq(await page.isVisible(btn), true, 'full-screen button visible');
    eq(await page.getAttribute(btn, 'aria-pressed'), 'false', 'not pressed');
    await page.click(btn);
    await page.waitForFunction(() => !!document.fullscreenElement, null, { timeout: 5000 });
    eq(await page.getAttribute(btn, 'aria-pressed'), 'true', 'pressed in full screen');
    await page.click(btn);
    await page.waitForFunction(() => !document.fullscreenElement, null, { timeout: 5000 });
    await page.setViewportSize({ width: 1920, height: 1080 });
  });

  await check('brand toggle re-sorts by amount and back', async () => {
    await page.click('[data-testid="brands-by-amount"]');
    try {
      const { view, api } = await samePageAndApi(page);
      const want = api.doc.brands.slice()
        .sort((a, b) => (Math.round(b.amount * 100) - Math.round(a.amount * 100)) || byteCmp(a.name, b.name))
        .slice(0, BRAND_BARS);
      eq(view.brands.by, 'amount', 'brands: data-by after the click');
      eq(view.brands.names, want.map((b) => b.name), 'brands: names by amount');
      eq(view.brands.values, want.map((b) => b.amount), 'brands: amounts');
      eq(await page.getAttribute('[data-testid="brands-by-amount"]', 'aria-pressed'), 'true', 'toggle pressed');
    } finally {
      await page.click('[data-testid="brands-by-quantity"]');  // later checks expect the default
    }
    const back = await samePageAndApi(page);
    eq(back.view.brands.names, back.api.doc.brands.slice(0, BRAND_BARS).map((b) => b.name), 'brands: by quantity again');
  });

  if (EXPECT_CHANGE) {
    await check('numbers change as new orders arrive', async () => {
      const before = await page.evaluate(() => ({
        tick: Number(document.getElementById('status-tick').getAttribute('data-value')),
        orders: Number(document.getElementById('total-orders').getAttribute('data-value')),
        amount: document.getElementById('total-amount').textContent
      }));
      await page.waitForFunction((b) => {
        const tick = Number(document.getElementById('status-tick').getAttribute('data-value'));
        const orders = Number(document.getElementById('total-orders').getAttribute('data-value'));
        return tick > b.tick && orders > b.orders && document.getElementById('total-amount').textContent !== b.amount;
      }, before, { timeout: 20000 }).catch(() => {
        throw new Error(`tick/orders/amount did not move from ${JSON.stringify(before)} in 20 s`);
      });
      // orders/s is derived from consecutive snapshots: positive while orders flow.
      await page.waitForFunction(() =>
        Number(document.getElementById('status-rate').getAttribute('data-value')) > 0, null, { timeout: 10000 });
      // And it still agrees with the API after the change.
      const { view, api } = await samePageAndApi(page);
      compareToApi(view, api);
    });
  }

  await check('charts are rebuilt for another screen size and still match', async () => {
    const charts = () => window.__orderpulse.charts.minutes.id;
    const before = await page.evaluate(charts);
    await page.setViewportSize({ width: 1366, height: 768 });
    await page.waitForFunction((id) => window.__orderpulse.charts.minutes.id !== id, before, { timeout: 5000 });
    const v = await page.evaluate(readPage);
    assert(v.canvases['chart-minutes'][0] < 1366 / 2, 'minutes canvas did not shrink');
    let pair = await samePageAndApi(page);
    compareToApi(pair.view, pair.api);
    await page.setViewportSize({ width: 1920, height: 1080 });
    await page.waitForFunction(() =>
      document.querySelector('#chart-minutes canvas').width > 1920 / 3, null, { timeout: 5000 });
    pair = await samePageAndApi(page);
    compareToApi(pair.view, pair.api);
  });

  if (!SKIP_FALLBACK) {
    await check('falls back to polling, shows disconnected, goes live again', async () => {
      const p2 = await context.newPage();
      const p2problems = [];
      watch(p2, p2problems, { ignoreNetErrors: true });
      const streamBlocked = (route) => route.abort();
      await p2.route('**/api/v1/stream*', streamBlocked);
      await p2.goto(URL_, { waitUntil: 'load' });
      await p2.waitForFunction(() => window.__orderpulse.state === 'polling' && window.__orderpulse.renders > 0,
        null, { timeout: 15000 });
      // Polling keeps it current: a newer tick arrives through /api/v1/snapshot.
      const t0 = await p2.evaluate(() => window.__orderpulse.last.tick);
      await p2.waitForFunction((t) => window.__orderpulse.last.tick > t, t0, { timeout: 10000 });

      eq(await p2.isVisible('[role="alert"]'), false, 'no banner while polling works');
      const apiBlocked = (route) => route.abort();
      await p2.route('**/api/v1/snapshot*', apiBlocked);
      await p2.waitForFunction(() => document.getElementById('status-conn').getAttribute('data-state') === 'disconnected',
        null, { timeout: 10000 });
      // The API is unreachable: the whole page says so.
      await p2.waitForSelector('[role="alert"]', { state: 'visible', timeout: 2000 });
      const banner = await p2.textContent('[role="alert"]');
      assert(/^No update for \d+ s: the engine cannot be reached\. The figures are from \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\+08:00/.test(banner),
        `banner: ${banner}`);
      eq(await p2.getAttribute('body', 'data-stale'), 'true', 'figures greyed out');

      await p2.unroute('**/api/v1/snapshot*', apiBlocked);
      await p2.unroute('**/api/v1/stream*', streamBlocked);
      // Polling brings the figures back at once; the stream is retried with
      // backoff (5 s, 10 s, ...).
      await p2.waitForSelector('[role="alert"]', { state: 'hidden', timeout: 10000 });
      await p2.waitForFunction(() => window.__orderpulse.state === 'live', null, { timeout: 45000 });
      eq(await p2.getAttribute('body', 'data-stale'), 'false', 'figures bright again');
      eq(p2problems, [], 'console/page errors on the fallback page');
      await p2.close();
    });
  }

  if (SCREENSHOT) {
    await check(`screenshot saved to ${SCREENSHOT}`, async () => {
      // A page without chart transitions, so the still shows no axis or bar
      // half-way between two snapshots.
      const shot = await context.newPage();
      watch(shot, problems);
      const u = new URL(URL_);
      u.searchParams.set('animation', '0');
      await shot.goto(u.href, { waitUntil: 'load' });
      await shot.waitForFunction(() => window.__orderpulse.renders > 1 && window.__orderpulse.state === 'live',
        null, { timeout: 15000 }).catch(() => {});
      await sleep(300);
      await shot.screenshot({ path: SCREENSHOT, fullPage: false });
      await shot.close();
    });
  }

  await check('no console errors or page errors', async () => {
    eq(problems, [], 'console/page errors');
  });
} catch (e) {
  results.push({ name: 'run', ok: false });
  console.log(`FAIL ${e && e.stack || e}`);
} finally {
  clearTimeout(guard);
  await browser.close().catch(() => {});
}

const failed = results.filter((r) => !r.ok).length;
console.log(`${results.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
