/* orderpulse dashboard.
 *
 * Plain ES2017, no build step. Needs ECharts (window.echarts, loaded before
 * this file from /vendor/echarts.min.js).
 *
 * Data flow: every snapshot document (DESIGN.md §5) arrives as JSON text,
 * either as an `event: snapshot` from the SSE stream /api/v1/stream or, when
 * the stream fails, from polling /api/v1/snapshot every 2 s (the stream is
 * retried in the background). Each accepted snapshot is rendered once, on the
 * next animation frame; a burst of snapshots renders only the newest.
 *
 * For tests: window.__orderpulse.last is the last snapshot object rendered
 * (window.__orderpulse.lastText its JSON text), and every panel's DOM carries
 * data-testid / data-value attributes.
 */
(function () {
  'use strict';

  const SNAPSHOT_URL = '/api/v1/snapshot';
  const STREAM_URL = '/api/v1/stream';
  const POLL_MS = 2000;             // polling period while the stream is down
  const SSE_RETRY_MIN_MS = 5000;    // first retry of the stream after a failure
  const SSE_RETRY_MAX_MS = 60000;   // backoff cap
  const SSE_STALE_MS = 15000;       // a live stream silent this long is dead
  const RATE_WINDOW_MS = 5000;      // orders/s: averaged over this much as_of time
  const MINUTES_SPAN = 60;          // metric 3: last 60 minutes
  const CATEGORY_BARS = 12;         // metric 4: at most this many categories
  const BRAND_BARS = 15;            // metric 5: at most this many brands
  const SLOT_BARS = 24;             // metric 8: last 24 ten-minute slots (4 h)
  const DAY_MS = 86400000;
  const YESTERDAY_URL = '/api/v1/history/minutes';  // the archive (--archive)
  const YESTERDAY_REFRESH_MS = 60000;
  // ?animation=0 turns chart transitions off (weak kiosk hardware, stills).
  const ANIMATE = new URLSearchParams(window.location.search).get('animation') !== '0';

  const COLORS = {
    text: '#d7e0ee',
    muted: '#7f8ca3',
    grid: 'rgba(255,255,255,0.07)',
    amount: '#ffc53d',
    orders: '#36cfc9',
    palette: ['#4c9aff', '#ff6b9a', '#ffc53d', '#73d13d', '#9254de', '#ff7a45', '#36cfc9']
  };
  // Conventional colours for the two usual genders; any other name gets the
  // next palette colour, stable for the page's lifetime.
  const genderColors = { '男': '#4c9aff', '女': '#ff6b9a' };
  let nextGenderColor = 2;

  const $ = (id) => document.getElementById(id);

  // State shared with tests (read-only for them).
  const pub = window.__orderpulse = {
    last: null,        // last snapshot object rendered
    lastText: null,    // its JSON text as received
    renders: 0,        // how many snapshots have been rendered
    state: 'connecting',
    brandsBy: 'quantity',
    rendered: {},      // per panel: what was drawn (names, values)
    charts: {}         // the ECharts instances by panel
  };

  /* ---------------------------------------------------------------------
   * Formatting. Integers group with ",", money adds "¥" and two decimals.
   * Never toLocaleString: the output must not depend on the screen's locale.
   * ------------------------------------------------------------------- */

  function groupDigits(digits) {
    return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  }

  function formatInt(n) {
    if (typeof n !== 'number' || !isFinite(n)) return '—';
    const s = String(Math.trunc(Math.abs(n)));
    return (n < 0 ? '-' : '') + groupDigits(s);
  }

  // "12345.6" -> "12,345.60" from the decimal text itself, so the total is
  // exact whatever its size. Returns null for text it does not handle.
  function moneyFromText(text) {
    const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(text);
    if (!m || (m[3] && m[3].length > 2)) return null;
    return m[1] + groupDigits(m[2].replace(/^0+(?=\d)/, '')) + '.' + ((m[3] || '') + '00').slice(0, 2);
  }

  // Amounts below 2^53 / 100 (~90 trillion) survive the double exactly
  // enough for toFixed(2) to give back the printed cents.
  function formatMoney(n) {
    if (typeof n !== 'number' || !isFinite(n)) return '—';
    return moneyFromText(n.toFixed(2)) || n.toFixed(2);
  }

  // Axis labels: 1234567 -> "1.23M".
  function compact(n) {
    const a = Math.abs(n);
    if (a >= 1e9) return +(n / 1e9).toFixed(2) + 'B';
    if (a >= 1e6) return +(n / 1e6).toFixed(2) + 'M';
    if (a >= 1e3) return +(n / 1e3).toFixed(1) + 'K';
    return String(+n.toFixed(2));
  }

  const pad2 = (n) => (n < 10 ? '0' : '') + n;

  // Times are epoch ms (UTC); they are shown in the screen's local time.
  function hhmm(ms) {
    const d = new Date(ms);
    return pad2(d.getHours()) + ':' + pad2(d.getMinutes());
  }
  function hhmmss(ms) {
    const d = new Date(ms);
    return hhmm(ms) + ':' + pad2(d.getSeconds());
  }
  function dateTime(ms) {
    const d = new Date(ms);
    return d.getFullYear() + '-' + pad2(d.getMonth() + 1) + '-' + pad2(d.getDate()) + ' ' + hhmmss(ms);
  }

  // The JSON number text of totals.amount, taken from the raw document
  // (JSON.parse would turn it into a double first). Null if not found, or
  // if it is in a form moneyFromText does not take (e.g. exponent).
  const TOTAL_AMOUNT_RE = /"totals"\s*:\s*\{[^{}]*?"amount"\s*:\s*(-?\d+(?:\.\d+)?)\s*[,}]/;
  function totalAmountText(raw) {
    const m = TOTAL_AMOUNT_RE.exec(raw);
    return m ? m[1] : null;
  }

  // Rankings tie-break by name bytewise ascending (DESIGN.md §5); UTF-8 byte
  // order is code point order, which differs from JS's UTF-16 comparison.
  function compareNames(a, b) {
    let i = 0;
    let j = 0;
    while (i < a.length && j < b.length) {
      const ca = a.codePointAt(i);
      const cb = b.codePointAt(j);
      if (ca !== cb) return ca < cb ? -1 : 1;
      i += ca > 0xffff ? 2 : 1;
      j += cb > 0xffff ? 2 : 1;
    }
    return (i < a.length ? 1 : 0) - (j < b.length ? 1 : 0);
  }

  const toCents = (x) => Math.round(x * 100);

  function genderColor(name) {
    if (!genderColors[name]) {
      genderColors[name] = COLORS.palette[nextGenderColor++ % COLORS.palette.length];
    }
    return genderColors[name];
  }

  /* ---------------------------------------------------------------------
   * Charts.
   * ------------------------------------------------------------------- */

  // Sizes are designed for 1920x1080 and scaled with the screen, like the
  // CSS (style.css sizes in rem, and the root font size follows the viewport).
  const screenScale = () => Math.min(2.5, Math.max(0.6, Math.min(window.innerWidth / 1920, window.innerHeight / 1080)));
  let scale = screenScale();
  const fs = (px) => Math.round(px * scale * 10) / 10;
  let charts = {};

  const baseText = () => ({ color: COLORS.text, fontSize: fs(14), fontFamily: getComputedStyle(document.body).fontFamily });
  const axisLabel = () => ({ color: COLORS.muted, fontSize: fs(13) });
  const splitLine = { lineStyle: { color: COLORS.grid } };
  const tooltip = () => ({
    backgroundColor: 'rgba(14,22,38,0.95)',
    borderColor: '#1c2a44',
    textStyle: { color: COLORS.text, fontSize: fs(14) }
  });

  function makeChart(elId, option) {
    const chart = echarts.init($(elId), null, { renderer: 'canvas' });
    chart.setOption(Object.assign({
      backgroundColor: 'transparent',
      textStyle: baseText(),
      animation: ANIMATE,
      animationDuration: 400,
      animationDurationUpdate: 300
    }, option));
    return chart;
  }

  // A "no data yet" text over an empty chart; removed once data arrives.
  function emptyGraphic(empty) {
    return {
      graphic: [{
        id: 'empty',
        type: 'text',
        left: 'center',
        top: 'middle',
        invisible: !empty,
        style: { text: 'no data yet', fill: COLORS.muted, fontSize: fs(16) }
      }]
    };
  }

  function barRankingOption(color) {
    return {
      grid: { left: fs(8), right: fs(70), top: fs(6), bottom: fs(4), containLabel: true },
      tooltip: Object.assign({ trigger: 'axis', axisPointer: { type: 'shadow' } }, tooltip()),
      xAxis: { type: 'value', axisLabel: Object.assign({ formatter: compact }, axisLabel()), splitLine: splitLine },
      // inverse: rank 1 at the top
      yAxis: {
        type: 'category', inverse: true, data: [],
        axisLabel: { color: COLORS.text, fontSize: fs(14), width: fs(110), overflow: 'truncate' },
        axisTick: { show: false }, axisLine: { lineStyle: { color: COLORS.grid } }
      },
      series: [{
        type: 'bar', data: [], barMaxWidth: fs(22),
        itemStyle: {
          borderRadius: [0, 4, 4, 0],
          color: new echarts.graphic.LinearGradient(0, 0, 1, 0, [
            { offset: 0, color: color[1] }, { offset: 1, color: color[0] }])
        },
        label: { show: true, position: 'right', color: COLORS.text, fontSize: fs(13) }
      }]
    };
  }

  function buildCharts() {
    Object.keys(charts).forEach((k) => charts[k].dispose());
    charts = {
      minutes: makeChart('chart-minutes', Object.assign({
        grid: { left: fs(12), right: fs(12), top: fs(40), bottom: fs(8), containLabel: true },
        legend: { top: 0, left: 'center', textStyle: { color: COLORS.text, fontSize: fs(14) }, data: ['amount', 'orders'] },
        tooltip: Object.assign({
          trigger: 'axis',
          formatter: (ps) => {
            if (!ps.length) return '';
            const lines = [hhmm(ps[0].value[0])];
            ps.forEach((p) => lines.push(p.marker + p.seriesName + ': ' +
              (p.seriesName !== 'orders' ? '¥' + formatMoney(p.value[1]) : formatInt(p.value[1]))));
            return lines.join('<br>');
          }
        }, tooltip()),
        xAxis: {
          type: 'time',
          axisLabel: Object.assign({ formatter: (v) => hhmm(v), hideOverlap: true }, axisLabel()),
          axisLine: { lineStyle: { color: COLORS.grid } },
          splitLine: { show: false }
        },
        // Left axis amount, right axis orders; each coloured like its line.
        yAxis: [
          { type: 'value', axisLabel: { color: COLORS.amount, fontSize: fs(13), formatter: (v) => '¥' + compact(v) }, splitLine: splitLine },
          { type: 'value', axisLabel: { color: COLORS.orders, fontSize: fs(13), formatter: compact }, splitLine: { show: false } }
        ],
        series: [
          {
            name: 'amount', type: 'line', yAxisIndex: 0, showSymbol: false, data: [], z: 3,
            lineStyle: { width: fs(2.5), color: COLORS.amount }, itemStyle: { color: COLORS.amount },
            areaStyle: {
              color: new echarts.graphic.LinearGradient(0, 0, 0, 1, [
                { offset: 0, color: 'rgba(255,197,61,0.35)' }, { offset: 1, color: 'rgba(255,197,61,0)' }])
            },
            // The minutes that are not final yet (still open to late orders)
            markArea: { silent: true, itemStyle: { color: 'rgba(255,255,255,0.05)' }, data: [] }
          },
          // Orders as bars: amount and orders are nearly proportional, so two
          // lines on their own axes would lie on top of each other.
          {
            name: 'orders', type: 'bar', yAxisIndex: 1, data: [], barMaxWidth: fs(12), z: 1,
            itemStyle: { color: 'rgba(54,207,201,0.35)', borderRadius: [2, 2, 0, 0] }
          },
          // The same minutes of the previous day, from the archive, drawn on
          // today's time axis.
          {
            name: 'yesterday', type: 'line', yAxisIndex: 0, showSymbol: false, data: [], z: 2,
            lineStyle: { width: fs(1.5), type: 'dashed', color: COLORS.muted }, itemStyle: { color: COLORS.muted }
          }
        ]
      }, emptyGraphic(true))),

      categories: makeChart('chart-categories',
        Object.assign(barRankingOption([COLORS.orders, '#1d5f7e']), emptyGraphic(true))),

      brands: makeChart('chart-brands',
        Object.assign(barRankingOption(['#597ef7', '#2a3f8f']), emptyGraphic(true))),

      gender: makeChart('chart-gender', Object.assign({
        tooltip: Object.assign({
          trigger: 'item',
          formatter: (p) => p.marker + p.name + ' · ' + p.seriesName + '<br>' +
            (p.seriesName === 'amount' ? '¥' + formatMoney(p.value) : formatInt(p.value)) +
            ' (' + (p.data.share * 100).toFixed(1) + '%)'
        }, tooltip()),
        legend: { bottom: 0, data: [], textStyle: { color: COLORS.text, fontSize: fs(14) } },
        series: [
          {
            name: 'amount', type: 'pie', showEmptyCircle: false, radius: ['52%', '72%'], center: ['50%', '46%'], data: [],
            itemStyle: { borderColor: '#0e1626', borderWidth: 2 },
            label: {
              color: COLORS.text, fontSize: fs(15), lineHeight: fs(20),
              formatter: (p) => p.name + '\n' + (p.data.share * 100).toFixed(1) + '%'
            },
            labelLine: { length: fs(10), length2: fs(8) }
          },
          {
            name: 'quantity', type: 'pie', showEmptyCircle: false, radius: ['0%', '40%'], center: ['50%', '46%'], data: [],
            itemStyle: { borderColor: '#0e1626', borderWidth: 2, opacity: 0.75 },
            label: {
              position: 'inside', color: '#04121a', fontSize: fs(13), fontWeight: 600,
              formatter: (p) => (p.data.share * 100).toFixed(1) + '%'
            }
          }
        ]
      }, emptyGraphic(true))),

      genderSlots: makeChart('chart-gender-slots', Object.assign({
        grid: { left: fs(12), right: fs(12), top: fs(36), bottom: fs(8), containLabel: true },
        legend: { top: 0, right: 8, textStyle: { color: COLORS.text, fontSize: fs(14) } },
        tooltip: Object.assign({ trigger: 'axis', axisPointer: { type: 'shadow' } }, tooltip()),
        xAxis: {
          type: 'category', data: [],
          axisLabel: Object.assign({ hideOverlap: true }, axisLabel()),
          axisLine: { lineStyle: { color: COLORS.grid } }, axisTick: { show: false }
        },
        yAxis: { type: 'value', axisLabel: Object.assign({ formatter: compact }, axisLabel()), splitLine: splitLine },
        series: []
      }, emptyGraphic(true)))
    };
    pub.charts = charts;
  }
  buildCharts();

  // Resizing: charts follow their boxes; when the scale itself changes
  // (another screen size), rebuild them with the new font sizes and redraw.
  let resizeTimer = 0;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      if (Math.abs(screenScale() - scale) > 0.04) {
        scale = screenScale();
        buildCharts();
        if (pub.last) drawCharts(pub.last);
      } else {
        Object.keys(charts).forEach((k) => charts[k].resize());
      }
    }, 150);
  });

  /* ---------------------------------------------------------------------
   * Rendering one snapshot.
   * ------------------------------------------------------------------- */

  function setText(id, text, value) {
    const el = $(id);
    if (el.textContent !== text) el.textContent = text;
    if (value !== undefined) el.setAttribute('data-value', String(value));
  }

  function renderTotals(snap, raw) {
    const t = snap.totals || {};
    // Exact from the number text; toFixed(2) of the double only as fallback.
    const text = totalAmountText(raw);
    const amount = (text && moneyFromText(text)) || formatMoney(t.amount);
    setText('total-amount', '¥' + amount, text || (typeof t.amount === 'number' ? t.amount.toFixed(2) : ''));
    setText('total-orders', formatInt(t.orders), t.orders);
    setText('total-quantity', formatInt(t.quantity), t.quantity);
    pub.rendered.totals = { amount: amount, orders: t.orders, quantity: t.quantity };
  }

  // Metric 3's "yesterday": the archive's minutes of the previous day,
  // fetched when the shown hour moves (at most once a minute) and shifted by
  // a day; only from an engine with an archive (stats.archive).
  const yesterday = { latest: 0, fetchedAt: 0, busy: false, off: false, rows: [] };

  function refreshYesterday(snap, latest) {
    const y = yesterday;
    if (!(snap.stats && snap.stats.archive) || y.off || y.busy || !latest ||
      (latest === y.latest && Date.now() - y.fetchedAt < YESTERDAY_REFRESH_MS)) return;
    y.busy = true;
    const from = latest - DAY_MS - (MINUTES_SPAN - 1) * 60000;
    const url = YESTERDAY_URL + '?from=' + from + '&to=' + (latest - DAY_MS + 60000);
    fetch(url, { cache: 'no-store', headers: { Accept: 'application/json' } })
      .then((res) => {
        if (res.status === 404) y.off = true;
        return res.ok ? res.json() : null;
      })
      .then((rows) => {
        if (rows) {
          y.rows = rows;
          y.latest = latest;
          y.fetchedAt = Date.now();
          if (pub.last) renderMinutes(pub.last);
        }
      })
      .catch(() => {})
      .then(() => { y.busy = false; });
  }

  // Metric 3: the minutes within the 60 minutes that end at the latest one.
  function renderMinutes(snap) {
    const all = snap.minutes || [];
    const latest = all.length ? all[all.length - 1].minute : 0;
    const rows = all.filter((m) => m.minute > latest - MINUTES_SPAN * 60000);
    const open = rows.filter((m) => !m.final);
    refreshYesterday(snap, latest);
    const before = yesterday.rows.filter((m) => m.minute + DAY_MS > latest - MINUTES_SPAN * 60000 &&
      m.minute + DAY_MS <= latest);
    charts.minutes.setOption({
      legend: { data: before.length ? ['amount', 'orders', 'yesterday'] : ['amount', 'orders'] },
      // Always the whole 60-minute window, so the axis does not jump around
      // while it fills up.
      xAxis: rows.length ? { min: latest - (MINUTES_SPAN - 0.5) * 60000, max: latest + 30000 } : {},
      series: [
        {
          showSymbol: rows.length < 3,   // a lone point needs a dot to be seen
          data: rows.map((m) => [m.minute, m.amount]),
          markArea: {
            data: open.length ? [[{ xAxis: open[0].minute }, { xAxis: latest + 60000 }]] : []
          }
        },
        { data: rows.map((m) => [m.minute, m.orders]) },
        { data: before.map((m) => [m.minute + DAY_MS, m.amount]) }
      ],
      graphic: [{ id: 'empty', invisible: rows.length > 0 }]
    });
    pub.rendered.minutes = {
      minutes: rows.map((m) => m.minute),
      amount: rows.map((m) => m.amount),
      orders: rows.map((m) => m.orders),
      yesterday: before.map((m) => [m.minute, m.amount])
    };
  }

  // Metric 4: the latest final minute's ranking, else the latest minute's.
  function pickCategoryMinute(snap) {
    const cats = snap.categories || [];
    const final = new Set((snap.minutes || []).filter((m) => m.final).map((m) => m.minute));
    for (let i = cats.length - 1; i >= 0; i--) {
      if (final.has(cats[i].minute)) return { entry: cats[i], final: true };
    }
    return cats.length ? { entry: cats[cats.length - 1], final: false } : null;
  }

  function renderCategories(snap) {
    const pick = pickCategoryMinute(snap);
    const ranking = pick ? (pick.entry.ranking || []).slice(0, CATEGORY_BARS) : [];
    charts.categories.setOption({
      yAxis: { data: ranking.map((r) => r.name) },
      series: [{ data: ranking.map((r) => r.quantity), label: { formatter: (p) => formatInt(p.value) } }],
      graphic: [{ id: 'empty', invisible: ranking.length > 0 }]
    });
    setText('categories-minute', pick ? 'minute ' + hhmm(pick.entry.minute) + (pick.final ? ' · final' : ' · open') : '—',
      pick ? pick.entry.minute : '');
    pub.rendered.categories = {
      minute: pick ? pick.entry.minute : null,
      final: pick ? pick.final : null,
      names: ranking.map((r) => r.name),
      quantity: ranking.map((r) => r.quantity)
    };
  }

  // Metric 5: the API sorts by quantity; by amount is re-sorted here with the
  // same tie-break (value descending, then name bytewise ascending).
  function renderBrands(snap) {
    const by = pub.brandsBy;
    let brands = (snap.brands || []).slice();
    if (by === 'amount') {
      brands.sort((a, b) => (toCents(b.amount) - toCents(a.amount)) || compareNames(a.name, b.name));
    }
    brands = brands.slice(0, BRAND_BARS);
    const fmt = by === 'amount' ? (p) => '¥' + compact(p.value) : (p) => formatInt(p.value);
    charts.brands.setOption({
      xAxis: { axisLabel: { formatter: by === 'amount' ? (v) => '¥' + compact(v) : compact } },
      yAxis: { data: brands.map((b) => b.name) },
      series: [{ data: brands.map((b) => b[by]), label: { formatter: fmt } }],
      graphic: [{ id: 'empty', invisible: brands.length > 0 }]
    });
    $('panel-brands').setAttribute('data-by', by);
    pub.rendered.brands = { by: by, names: brands.map((b) => b.name), values: brands.map((b) => b[by]) };
  }

  // Metric 6: a plain table (names are text, and must match the API exactly).
  function renderTopUsers(snap) {
    const users = snap.top_users || [];
    const body = $('top-users-body');
    const top = users.length ? users[0].amount : 0;
    const frag = document.createDocumentFragment();
    users.forEach((u, i) => {
      const tr = document.createElement('tr');
      tr.setAttribute('data-testid', 'top-user');
      tr.setAttribute('data-name', u.name);
      tr.setAttribute('data-value', u.amount.toFixed(2));
      const cells = [
        ['rank', String(i + 1)],
        ['name', u.name],
        ['num amount', '¥' + formatMoney(u.amount)],
        ['num orders', formatInt(u.orders)]
      ];
      cells.forEach((c) => {
        const td = document.createElement('td');
        td.className = c[0];
        td.textContent = c[1];
        tr.appendChild(td);
      });
      const bar = document.createElement('span');
      bar.className = 'bar';
      bar.style.width = (top > 0 ? Math.max(2, 85 * u.amount / top) : 0) + '%';
      tr.children[1].appendChild(bar);
      frag.appendChild(tr);
    });
    if (!users.length) {
      const tr = document.createElement('tr');
      tr.className = 'empty';
      tr.innerHTML = '<td colspan="4">no data yet</td>';
      frag.appendChild(tr);
    }
    body.replaceChildren(frag);
    pub.rendered.topUsers = { names: users.map((u) => u.name), amounts: users.map((u) => u.amount) };
  }

  // Metric 7: outer ring amount, inner ring quantity; the percentages are the
  // API's own shares, not ECharts' recomputation.
  function renderGender(snap) {
    const g = snap.gender || [];
    const item = (x, key, share) => ({ name: x.name, value: x[key], share: x[share], itemStyle: { color: genderColor(x.name) } });
    charts.gender.setOption({
      legend: { data: g.map((x) => x.name) },
      series: [
        { data: g.map((x) => item(x, 'amount', 'amount_share')) },
        { data: g.map((x) => item(x, 'quantity', 'quantity_share')) }
      ],
      graphic: [{ id: 'empty', invisible: g.length > 0 }]
    });
    pub.rendered.gender = {
      names: g.map((x) => x.name),
      amountShare: g.map((x) => x.amount_share),
      quantityShare: g.map((x) => x.quantity_share)
    };
  }

  // Metric 8: one stacked series per gender seen in the shown slots, in the
  // order of the gender panel (then by name for genders only seen here).
  function renderGenderSlots(snap) {
    const slots = (snap.gender_slots || []).slice(-SLOT_BARS);
    const order = (snap.gender || []).map((x) => x.name);
    const seen = new Set();
    slots.forEach((s) => Object.keys(s.quantity || {}).forEach((k) => seen.add(k)));
    const names = order.filter((n) => seen.has(n))
      .concat(Array.from(seen).filter((n) => order.indexOf(n) < 0).sort(compareNames));
    charts.genderSlots.setOption({
      xAxis: { data: slots.map((s) => hhmm(s.slot)) },
      series: names.map((n) => ({
        id: 'g:' + n,
        name: n,
        type: 'bar',
        stack: 'quantity',
        barMaxWidth: 42,
        itemStyle: { color: genderColor(n) },
        emphasis: { focus: 'series' },
        data: slots.map((s) => (s.quantity && s.quantity[n]) || 0)
      })),
      graphic: [{ id: 'empty', invisible: slots.length > 0 }]
    }, { replaceMerge: ['series'] });
    pub.rendered.genderSlots = { slots: slots.map((s) => s.slot), names: names };
  }

  /* Orders/s from consecutive snapshots: orders added over as_of time,
   * across the snapshots of the last RATE_WINDOW_MS. */
  const rateSamples = [];
  function updateRate(snap) {
    const t = snap.as_of;
    const orders = snap.totals ? snap.totals.orders : NaN;
    const lastS = rateSamples[rateSamples.length - 1];
    if (lastS && (orders < lastS.orders || t <= lastS.t)) rateSamples.length = 0; // engine restart
    rateSamples.push({ t: t, orders: orders });
    while (rateSamples.length > 2 && t - rateSamples[1].t >= RATE_WINDOW_MS) rateSamples.shift();
    if (rateSamples.length < 2) return null;
    const first = rateSamples[0];
    return (orders - first.orders) * 1000 / (t - first.t);
  }

  function renderStatus(snap) {
    setText('status-asof', typeof snap.as_of === 'number' ? hhmmss(snap.as_of) : '—', snap.as_of);
    setText('status-watermark', typeof snap.watermark === 'number' && snap.watermark > 0 ? dateTime(snap.watermark) : '—',
      snap.watermark);
    setText('status-tick', formatInt(snap.tick), snap.tick);
    const rate = updateRate(snap);
    setText('status-rate', rate === null ? '—' : formatInt(Math.round(rate)), rate === null ? '' : rate.toFixed(1));
    const s = snap.stats;
    setText('status-stats', s ? 'bad ' + formatInt(s.bad_records) + ' · late ' + formatInt(s.late_records) +
      ' · lag ' + formatInt(s.lag) : '');
  }

  // Each panel is rendered on its own: one bad member must not blank the rest.
  const CHART_PANELS = [renderMinutes, renderCategories, renderBrands, renderGender, renderGenderSlots];
  const PANELS = [renderTotals, renderTopUsers, renderStatus].concat(CHART_PANELS);

  function drawPanels(list, snap, raw) {
    list.forEach((fn) => {
      try {
        fn(snap, raw);
      } catch (e) {
        console.error('orderpulse: rendering ' + fn.name + ' failed', e);
      }
    });
  }

  // Redraws the charts alone (after they were rebuilt for a new scale).
  function drawCharts(snap) {
    drawPanels(CHART_PANELS, snap, pub.lastText);
  }

  function render(snap, raw) {
    drawPanels(PANELS, snap, raw);
    pub.last = snap;
    pub.lastText = raw;
    pub.renders++;
    document.body.setAttribute('data-tick', String(snap.tick));
  }

  let pending = null;     // newest accepted snapshot not yet drawn
  let frameQueued = false;

  // Takes the JSON text of one snapshot from either transport.
  function accept(raw) {
    let snap;
    try {
      snap = JSON.parse(raw);
    } catch (e) {
      console.error('orderpulse: snapshot is not valid JSON', e);
      return;
    }
    if (!snap || typeof snap !== 'object' || !snap.totals) {
      console.error('orderpulse: not a snapshot document', raw.slice(0, 200));
      return;
    }
    const prev = pending ? pending.snap : pub.last;
    if (prev) {
      if (snap.tick === prev.tick && snap.as_of === prev.as_of) return;  // seen (polling)
      if (snap.tick < prev.tick && snap.as_of <= prev.as_of) return;     // an older reply
    }
    pending = { snap: snap, raw: raw };
    if (!frameQueued) {
      frameQueued = true;
      // Hidden pages get no animation frames: fall back to a timer there.
      const draw = () => {
        frameQueued = false;
        const p = pending;
        pending = null;
        if (p) render(p.snap, p.raw);
      };
      if (document.hidden) setTimeout(draw, 0); else requestAnimationFrame(draw);
    }
  }

  /* ---------------------------------------------------------------------
   * Brand toggle.
   * ------------------------------------------------------------------- */

  Array.prototype.forEach.call(document.querySelectorAll('#panel-brands .toggle button'), (btn) => {
    btn.addEventListener('click', () => {
      pub.brandsBy = btn.getAttribute('data-by');
      document.querySelectorAll('#panel-brands .toggle button').forEach((b) =>
        b.setAttribute('aria-pressed', String(b === btn)));
      if (pub.last) renderBrands(pub.last);
    });
  });

  /* ---------------------------------------------------------------------
   * Connection: SSE first; on failure poll every POLL_MS and retry the
   * stream with backoff. We close the EventSource on error ourselves rather
   * than let it reconnect, so that polling covers the gap.
   * ------------------------------------------------------------------- */

  const CONN_LABELS = { connecting: 'connecting…', live: 'live · SSE', polling: 'polling', disconnected: 'disconnected' };

  const conn = {
    es: null,
    lastEventAt: 0,
    polling: false,
    pollGen: 0,        // bumped on every start/stop: a stale poll loop ends itself
    pollTimer: 0,
    retryTimer: 0,
    retryMs: SSE_RETRY_MIN_MS
  };

  function setState(state) {
    if (pub.state === state) return;
    pub.state = state;
    const el = $('status-conn');
    el.setAttribute('data-state', state);
    $('status').setAttribute('data-state', state);
    el.querySelector('.label').textContent = CONN_LABELS[state] || state;
  }

  async function fetchSnapshot() {
    const res = await fetch(SNAPSHOT_URL, { cache: 'no-store', headers: { Accept: 'application/json' } });
    if (!res.ok) throw new Error('HTTP ' + res.status);
    return res.text();
  }

  async function pollOnce(gen) {
    let raw = null;
    try {
      raw = await fetchSnapshot();
    } catch (e) {
      raw = null;
    }
    if (gen !== conn.pollGen) return;   // stopped (the stream came back) meanwhile
    if (raw === null) {
      setState('disconnected');
    } else {
      setState('polling');
      accept(raw);
    }
    conn.pollTimer = setTimeout(() => pollOnce(gen), POLL_MS);
  }

  function startPolling() {
    if (conn.polling) return;
    conn.polling = true;
    pollOnce(++conn.pollGen);
  }

  function stopPolling() {
    conn.polling = false;
    conn.pollGen++;
    clearTimeout(conn.pollTimer);
  }

  function closeStream() {
    if (conn.es) {
      conn.es.close();
      conn.es = null;
    }
  }

  function streamFailed() {
    closeStream();
    startPolling();
    clearTimeout(conn.retryTimer);
    conn.retryTimer = setTimeout(openStream, conn.retryMs);
    conn.retryMs = Math.min(conn.retryMs * 2, SSE_RETRY_MAX_MS);
  }

  function streamUp() {
    conn.lastEventAt = Date.now();
    conn.retryMs = SSE_RETRY_MIN_MS;
    stopPolling();
    setState('live');
  }

  function openStream() {
    if (typeof EventSource !== 'function') {
      startPolling();
      return;
    }
    closeStream();
    const es = new EventSource(STREAM_URL);
    conn.es = es;
    es.addEventListener('open', () => { if (conn.es === es) streamUp(); });
    es.addEventListener('snapshot', (ev) => {
      if (conn.es !== es) return;
      if (pub.state !== 'live') streamUp();
      conn.lastEventAt = Date.now();
      accept(ev.data);
    });
    es.addEventListener('error', () => { if (conn.es === es) streamFailed(); });
  }

  // The engine publishes a snapshot every tick: a stream that has been quiet
  // for SSE_STALE_MS is stuck (e.g. a proxy holding it), so reconnect.
  setInterval(() => {
    if (conn.es && pub.state === 'live' && Date.now() - conn.lastEventAt > SSE_STALE_MS) streamFailed();
  }, 1000);

  // First paint from one plain GET (the stream's first event may be a tick
  // away), then the stream.
  fetchSnapshot().then(accept, () => {});
  openStream();
})();
