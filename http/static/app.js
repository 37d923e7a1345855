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
 * Liveness: the snapshot says how often a new one is due (tick_ms). When
 * the newest is two ticks old (at least 1 s), or the API cannot be reached, the
 * page says so from across the room: a banner (role="alert") with the age
 * of the figures, and the figures greyed out. Times are shown in the
 * engine's display zone (display_timezone), with the date and the zone.
 *
 * Page options (query string):
 *   lang=zh|en   labels and number units (万/亿 in Chinese); default: the browser's
 *   animation=0  no chart transitions (weak kiosk hardware, stills)
 *   stream=0     one snapshot, no event stream and no polling: a still, so that
 *                `chromium --headless --virtual-time-budget=... --screenshot` ends
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
  const DEFAULT_TICK_MS = 1000;     // before a snapshot says otherwise
  const CLOCK_TRUST_MS = 300000;    // beyond this, the screen's clock is not the engine's
  const PARAMS = new URLSearchParams(window.location.search);
  const ANIMATE = PARAMS.get('animation') !== '0';
  const STREAM = PARAMS.get('stream') !== '0';
  const LANG = (PARAMS.get('lang') || navigator.language || 'en').toLowerCase().startsWith('zh') ? 'zh' : 'en';

  /* ---------------------------------------------------------------------
   * Texts. Everything the page writes goes through T(); {name} is filled in.
   * ------------------------------------------------------------------- */
  const TEXTS = {
    en: {
      subtitle: 'live sales', asOf: 'as of', watermark: 'watermark', tick: 'tick', perSecond: 'orders/s',
      fullScreen: 'Full screen', exitFullScreen: 'Exit full screen',
      totalAmount: 'Total sales amount', orders: 'Orders', quantity: 'Quantity sold',
      minutesTitle: 'Sales per minute', minutesNote: 'amount and orders · last 60 minutes',
      minutesLegend: '◆ revised after closing · dashed: open minute, still counting',
      categoriesTitle: 'Category ranking', genderTitle: 'Gender purchasing power',
      genderNote: 'outer amount · inner quantity', brandsTitle: 'Brand ranking', rankBy: 'rank brands by',
      byQuantity: 'quantity', byAmount: 'amount', topUsersTitle: 'Top 10 users', topUsersNote: 'by cumulative amount',
      user: 'user', amount: 'amount', ordersShort: 'orders', slotsTitle: 'Quantity per 10 minutes by gender',
      slotsNote: 'stacked · last 24 slots · * still open', noData: 'no data yet', seriesAmount: 'amount', seriesOpen: 'open minute',
      seriesOrders: 'orders', seriesRevised: 'revised', partial: 'partial', minute: 'minute',
      open: 'open', final: 'final', revised: 'revised', topOf: 'top {n} of {m}', allOf: 'all {m}',
      bad: 'bad', late: 'late', lag: 'lag', ago: '{age} ago', seconds: '{n} s', minutes: '{n} min', hours: '{n} h',
      staleGone: 'No update for {age}: the engine cannot be reached. The figures are from {time} and are not changing.',
      staleSlow: 'No update for {age}: the engine has stopped publishing. The figures are from {time} and are not changing.',
      staleNever: 'No data: the engine cannot be reached.',
      connecting: 'connecting…', live: 'live · SSE', polling: 'polling', disconnected: 'disconnected', still: 'still'
    },
    zh: {
      subtitle: '实时订单大屏', asOf: '数据时间', watermark: '水位线', tick: '批次', perSecond: '单/秒',
      fullScreen: '全屏', exitFullScreen: '退出全屏',
      totalAmount: '销售总额', orders: '订单数', quantity: '销售件数',
      minutesTitle: '每分钟销售', minutesNote: '金额与订单数 · 最近 60 分钟',
      minutesLegend: '◆ 关窗后修订 · 虚线：当前分钟，仍在累计',
      categoriesTitle: '品类排行', genderTitle: '性别消费力',
      genderNote: '外环金额 · 内环件数', brandsTitle: '品牌排行', rankBy: '品牌排序依据',
      byQuantity: '按件数', byAmount: '按金额', topUsersTitle: '消费榜前十', topUsersNote: '按累计金额',
      user: '用户', amount: '金额', ordersShort: '订单', slotsTitle: '每 10 分钟分性别销量',
      slotsNote: '堆叠 · 最近 24 个时段 · * 仍在累计', noData: '暂无数据', seriesAmount: '金额', seriesOpen: '当前分钟',
      seriesOrders: '订单数', seriesRevised: '已修订', partial: '未完', minute: '分钟',
      open: '进行中', final: '已定', revised: '已修订', topOf: '前 {n} / 共 {m}', allOf: '共 {m}',
      bad: '异常', late: '迟到', lag: '积压', ago: '{age}前', seconds: '{n} 秒', minutes: '{n} 分钟', hours: '{n} 小时',
      staleGone: '已 {age}未更新：无法连接引擎。以下为 {time} 的数据，不再变化。',
      staleSlow: '已 {age}未更新：引擎停止发布数据。以下为 {time} 的数据，不再变化。',
      staleNever: '暂无数据：无法连接引擎。',
      connecting: '连接中…', live: '实时 · SSE', polling: '轮询', disconnected: '已断开', still: '静态'
    }
  };
  function T(key, vars) {
    let s = TEXTS[LANG][key];
    if (s === undefined) s = TEXTS.en[key];
    if (vars) Object.keys(vars).forEach((k) => { s = s.split('{' + k + '}').join(vars[k]); });
    return s;
  }

  const COLORS = {
    text: '#d7e0ee',
    muted: '#7f8ca3',
    grid: 'rgba(255,255,255,0.07)',
    amount: '#ffc53d',
    orders: '#36cfc9',
    revised: '#ff7a45',
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
    stale: false,      // the banner is up
    lang: LANG,
    brandsBy: 'quantity',
    rendered: {},      // per panel: what was drawn (names, values)
    charts: {},        // the ECharts instances by panel
    format: null       // the formatters (set below), for tests
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

  // Axis labels and approximations: 1234567 -> "1.23M", or "123.46万" in
  // Chinese, where large numbers are read in 万 (1e4) and 亿 (1e8).
  function compact(n) {
    const a = Math.abs(n);
    if (LANG === 'zh') {
      if (a >= 1e8) return +(n / 1e8).toFixed(2) + '亿';
      if (a >= 1e4) return +(n / 1e4).toFixed(a >= 1e6 ? 0 : 1) + '万';
      return String(+n.toFixed(2));
    }
    if (a >= 1e9) return +(n / 1e9).toFixed(2) + 'B';
    if (a >= 1e6) return +(n / 1e6).toFixed(2) + 'M';
    if (a >= 1e3) return +(n / 1e3).toFixed(1) + 'K';
    return String(+n.toFixed(2));
  }
  const money = (n) => '¥' + compact(n);

  const pad2 = (n) => (n < 10 ? '0' : '') + n;

  // Times are epoch ms (UTC); they are shown in the engine's display zone
  // (snapshot.display_timezone, e.g. "+08:00"), whatever the screen's own
  // zone, and labelled with it. Before a snapshot says, the screen's zone.
  let tzOffsetMin = -new Date().getTimezoneOffset();
  let tzLabel = zoneLabel(tzOffsetMin);
  function zoneLabel(min) {
    const a = Math.abs(min);
    return 'UTC' + (min < 0 ? '-' : '+') + pad2(Math.floor(a / 60)) + ':' + pad2(a % 60);
  }
  function setZone(text) {
    const m = /^([+-])(\d\d):(\d\d)$/.exec(text || '');
    if (!m) return;
    const min = (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3]));
    if (min === tzOffsetMin && tzLabel === zoneLabel(min)) return;
    tzOffsetMin = min;
    tzLabel = zoneLabel(min);
  }
  const zoned = (ms) => new Date(ms + tzOffsetMin * 60000);
  function hhmm(ms) {
    const d = zoned(ms);
    return pad2(d.getUTCHours()) + ':' + pad2(d.getUTCMinutes());
  }
  function hhmmss(ms) {
    return hhmm(ms) + ':' + pad2(zoned(ms).getUTCSeconds());
  }
  function date(ms) {
    const d = zoned(ms);
    return d.getUTCFullYear() + '-' + pad2(d.getUTCMonth() + 1) + '-' + pad2(d.getUTCDate());
  }
  const dateTime = (ms) => date(ms) + ' ' + hhmmss(ms);

  // "12 s", "3 min", "2 h": how old the figures are.
  function duration(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 120) return T('seconds', { n: s });
    if (s < 7200) return T('minutes', { n: Math.floor(s / 60) });
    return T('hours', { n: Math.floor(s / 3600) });
  }
  pub.format = { compact, money, hhmm, dateTime, duration, zone: () => tzLabel };

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
        style: { text: T('noData'), fill: COLORS.muted, fontSize: fs(16) }
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

  // The amount ring's label: name, amount and share ("女\n¥7.67亿\n53.7%").
  function genderLabel(p) {
    return p.name + '\n' + money(p.value) + '\n' + (p.data.share * 100).toFixed(1) + '%';
  }

  function buildCharts() {
    Object.keys(charts).forEach((k) => charts[k].dispose());
    charts = {
      minutes: makeChart('chart-minutes', Object.assign({
        grid: { left: fs(12), right: fs(12), top: fs(40), bottom: fs(8), containLabel: true },
        legend: {
          top: 0, left: 'center', textStyle: { color: COLORS.text, fontSize: fs(14) },
          data: [T('seriesAmount'), T('seriesOpen'), T('seriesRevised'), T('seriesOrders')]
        },
        tooltip: Object.assign({
          trigger: 'axis',
          formatter: (ps) => {
            if (!ps.length) return '';
            const t = ps[0].value[0];
            const row = minuteRows.get(t);
            const lines = [date(t) + ' ' + hhmm(t) + (row ? ' · ' + T(row.state) : '')];
            const seen = {};
            ps.forEach((p) => {
              const amount = p.seriesIndex !== 3;
              if (p.seriesIndex === 2 || seen[amount]) return; // one amount line, one orders line
              seen[amount] = true;
              lines.push(p.marker + (amount ? T('seriesAmount') : T('seriesOrders')) + ': ' +
                (amount ? '¥' + formatMoney(p.value[1]) : formatInt(p.value[1])));
            });
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
          { type: 'value', axisLabel: { color: COLORS.amount, fontSize: fs(13), formatter: money }, splitLine: splitLine },
          { type: 'value', axisLabel: { color: COLORS.orders, fontSize: fs(13), formatter: compact }, splitLine: { show: false } }
        ],
        series: [
          // The closed minutes: a solid line.
          {
            name: T('seriesAmount'), type: 'line', yAxisIndex: 0, showSymbol: false, data: [], z: 3,
            lineStyle: { width: fs(2.5), color: COLORS.amount }, itemStyle: { color: COLORS.amount },
            areaStyle: {
              color: new echarts.graphic.LinearGradient(0, 0, 0, 1, [
                { offset: 0, color: 'rgba(255,197,61,0.35)' }, { offset: 1, color: 'rgba(255,197,61,0)' }])
            },
            // The minutes still open (the watermark has not passed them)
            markArea: { silent: true, itemStyle: { color: 'rgba(255,255,255,0.04)' }, data: [] }
          },
          // The open minute(s), from the last closed one: dashed, with a
          // "partial" label, so that a minute still counting never reads as
          // a drop in sales.
          {
            name: T('seriesOpen'), type: 'line', yAxisIndex: 0, data: [], z: 4, showSymbol: true,
            symbol: 'emptyCircle', symbolSize: fs(7),
            lineStyle: { width: fs(2), color: COLORS.amount, type: 'dashed', opacity: 0.8 },
            itemStyle: { color: COLORS.amount },
            label: { show: false }
          },
          // Closed minutes that late orders changed afterwards.
          {
            name: T('seriesRevised'), type: 'scatter', yAxisIndex: 0, data: [], z: 5,
            symbol: 'diamond', symbolSize: fs(9),
            itemStyle: { color: COLORS.revised, borderColor: '#0e1626', borderWidth: 1 }
          },
          // Orders as bars: amount and orders are nearly proportional, so two
          // lines on their own axes would lie on top of each other.
          {
            name: T('seriesOrders'), type: 'bar', yAxisIndex: 1, data: [], barMaxWidth: fs(12), z: 1,
            itemStyle: { color: 'rgba(54,207,201,0.35)', borderRadius: [2, 2, 0, 0] }
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
            (p.seriesIndex === 0 ? '¥' + formatMoney(p.value) : formatInt(p.value)) +
            ' (' + (p.data.share * 100).toFixed(1) + '%)'
        }, tooltip()),
        legend: { bottom: 0, data: [], textStyle: { color: COLORS.text, fontSize: fs(14) } },
        series: [
          {
            name: T('amount'), type: 'pie', showEmptyCircle: false, radius: ['46%', '64%'], center: ['50%', '46%'], data: [],
            itemStyle: { borderColor: '#0e1626', borderWidth: 2 },
            label: {
              color: COLORS.text, fontSize: fs(15), lineHeight: fs(20), overflow: 'none',
              formatter: genderLabel
            },
            labelLine: { length: fs(10), length2: fs(8) }
          },
          {
            name: T('quantity'), type: 'pie', showEmptyCircle: false, radius: ['0%', '36%'], center: ['50%', '46%'], data: [],
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

  // A chart follows its box when the layout changes without a window
  // resize (the liveness banner comes and goes, fonts load late).
  if (typeof ResizeObserver === 'function') {
    const boxes = new ResizeObserver((entries) => entries.forEach((e) => {
      const key = Object.keys(charts).find((k) => charts[k].getDom() === e.target);
      if (key && !charts[key].isDisposed()) charts[key].resize();
    }));
    ['chart-minutes', 'chart-categories', 'chart-brands', 'chart-gender', 'chart-gender-slots']
      .forEach((id) => boxes.observe($(id)));
  }

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

  // "≈ ¥18.17亿" under a big exact number: how a room reads it at a glance.
  function setApprox(id, n, isMoney) {
    const text = typeof n === 'number' && Math.abs(n) >= (LANG === 'zh' ? 1e4 : 1e3)
      ? '≈ ' + (isMoney ? money(n) : compact(n)) : '';
    setText(id, text);
  }

  function renderTotals(snap, raw) {
    const t = snap.totals || {};
    // Exact from the number text; toFixed(2) of the double only as fallback.
    const text = totalAmountText(raw);
    const amount = (text && moneyFromText(text)) || formatMoney(t.amount);
    setText('total-amount', '¥' + amount, text || (typeof t.amount === 'number' ? t.amount.toFixed(2) : ''));
    setText('total-orders', formatInt(t.orders), t.orders);
    setText('total-quantity', formatInt(t.quantity), t.quantity);
    setApprox('total-amount-approx', t.amount, true);
    setApprox('total-orders-approx', t.orders, false);
    setApprox('total-quantity-approx', t.quantity, false);
    pub.rendered.totals = { amount: amount, orders: t.orders, quantity: t.quantity };
  }

  // A window's state: "open", "final" or "revised" (older engines: from final).
  const stateOf = (w) => w.state || (w.final === false ? 'open' : 'final');
  const minuteRows = new Map();   // minute -> row, for the tooltip

  // Metric 3: the minutes within the 60 minutes that end at the latest one.
  // Closed minutes are a solid line; the open ones (still counting: the
  // newest is partial) a dashed one from the last closed minute, labelled,
  // so that they never read as a drop; revised minutes carry a diamond.
  function renderMinutes(snap) {
    const all = snap.minutes || [];
    const latest = all.length ? all[all.length - 1].minute : 0;
    const rows = all.filter((m) => m.minute > latest - MINUTES_SPAN * 60000);
    minuteRows.clear();
    rows.forEach((m) => minuteRows.set(m.minute, { state: stateOf(m) }));
    const closed = rows.filter((m) => stateOf(m) !== 'open');
    const open = rows.filter((m) => stateOf(m) === 'open');
    const revised = rows.filter((m) => stateOf(m) === 'revised');
    const anchor = closed.length && open.length && closed[closed.length - 1].minute < open[0].minute
      ? [[closed[closed.length - 1].minute, closed[closed.length - 1].amount]] : [];
    const openData = anchor.concat(open.map((m, i) => i === open.length - 1
      ? { value: [m.minute, m.amount], label: { show: true, position: 'left', formatter: T('partial'), color: COLORS.amount, fontSize: fs(13) } }
      : [m.minute, m.amount]));
    charts.minutes.setOption({
      // Always the whole 60-minute window, so the axis does not jump around
      // while it fills up.
      xAxis: rows.length ? { min: latest - (MINUTES_SPAN - 0.5) * 60000, max: latest + 30000 } : {},
      series: [
        {
          showSymbol: closed.length < 3,   // a lone point needs a dot to be seen
          data: closed.map((m) => [m.minute, m.amount]),
          markArea: {
            data: open.length ? [[{ xAxis: open[0].minute - 30000 }, { xAxis: latest + 30000 }]] : []
          }
        },
        { data: openData },
        { data: revised.map((m) => [m.minute, m.amount]) },
        {
          data: rows.map((m) => stateOf(m) === 'open'
            ? { value: [m.minute, m.orders], itemStyle: { opacity: 0.45, borderType: 'dashed', borderColor: COLORS.orders, borderWidth: 1 } }
            : [m.minute, m.orders])
        }
      ],
      graphic: [{ id: 'empty', invisible: rows.length > 0 }]
    });
    setText('minutes-note', T('minutesNote') + (rows.length ? ' · ' + T('minutesLegend') : ''));
    pub.rendered.minutes = {
      minutes: rows.map((m) => m.minute),
      amount: rows.map((m) => m.amount),
      orders: rows.map((m) => m.orders),
      states: rows.map(stateOf)
    };
  }

  // Metric 4: the latest closed minute's ranking, else the latest minute's.
  function pickCategoryMinute(snap) {
    const cats = snap.categories || [];
    const closed = new Set((snap.minutes || []).filter((m) => m.final).map((m) => m.minute));
    for (let i = cats.length - 1; i >= 0; i--) {
      if (closed.has(cats[i].minute)) return cats[i];
    }
    return cats.length ? cats[cats.length - 1] : null;
  }

  // "top 12 of 16" where a list is cut, else "all 9".
  const cutNote = (shown, total) => (shown < total ? T('topOf', { n: shown, m: total }) : T('allOf', { m: total }));

  function renderCategories(snap) {
    const pick = pickCategoryMinute(snap);
    const all = pick ? pick.ranking || [] : [];
    const ranking = all.slice(0, CATEGORY_BARS);
    const state = pick ? stateOf(pick) : '';
    charts.categories.setOption({
      xAxis: { axisLabel: { formatter: compact } },
      yAxis: { data: ranking.map((r) => r.name) },
      series: [{ data: ranking.map((r) => r.quantity), label: { formatter: (p) => formatInt(p.value) } }],
      graphic: [{ id: 'empty', invisible: ranking.length > 0 }]
    });
    setText('categories-minute', pick
      ? T('minute') + ' ' + hhmm(pick.minute) + ' · ' + T(state) + ' · ' + cutNote(ranking.length, all.length) : '—',
    pick ? pick.minute : '');
    $('categories-minute').setAttribute('data-state', state);
    pub.rendered.categories = {
      minute: pick ? pick.minute : null,
      state: pick ? state : null,
      final: pick ? state !== 'open' : null,
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
    const total = brands.length;
    brands = brands.slice(0, BRAND_BARS);
    const fmt = by === 'amount' ? (p) => money(p.value) : (p) => formatInt(p.value);
    setText('brands-count', total ? cutNote(brands.length, total) : '', total);
    charts.brands.setOption({
      xAxis: { axisLabel: { formatter: by === 'amount' ? money : compact } },
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
      quantityShare: g.map((x) => x.quantity_share),
      labels: g.map((x) => genderLabel({ name: x.name, value: x.amount, data: { share: x.amount_share } }))
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
      xAxis: { data: slots.map((s) => hhmm(s.slot) + (stateOf(s) === 'open' ? '*' : '')) },
      yAxis: { axisLabel: { formatter: compact } },
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
    pub.rendered.genderSlots = { slots: slots.map((s) => s.slot), names: names, states: slots.map(stateOf) };
  }

  /* Orders/s: the engine's own figure (stats.orders_per_s, there from the
   * first snapshot); from consecutive snapshots for engines without it:
   * orders added over as_of time, across the last RATE_WINDOW_MS. */
  const rateSamples = [];
  function updateRate(snap) {
    if (snap.stats && typeof snap.stats.orders_per_s === 'number') return snap.stats.orders_per_s;
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
    setText('status-asof', typeof snap.as_of === 'number' ? dateTime(snap.as_of) + ' ' + tzLabel : '—', snap.as_of);
    setText('status-watermark', typeof snap.watermark === 'number' && snap.watermark > 0 ? dateTime(snap.watermark) : '—',
      snap.watermark);
    setText('status-tick', formatInt(snap.tick), snap.tick);
    const rate = updateRate(snap);
    setText('status-rate', rate === null ? '—' : formatInt(Math.round(rate)), rate === null ? '' : rate.toFixed(1));
    const s = snap.stats;
    setText('status-stats', s ? T('bad') + ' ' + formatInt(s.bad_records) + ' · ' + T('late') + ' ' +
      formatInt(s.late_records) + ' · ' + T('lag') + ' ' + formatInt(s.lag) : '');
    checkLiveness();
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
    setZone(snap.display_timezone);
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
    noteFresh(snap);
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
   * Liveness. updatedAt is when the newest snapshot was made, on the
   * screen's clock: its as_of when the two clocks agree (NTP), else the
   * time it arrived. The figures are stale when the API cannot be reached,
   * or when the newest snapshot is two ticks old (the next one is a whole
   * tick late; at least a second, for very short ticks): with a 1 s tick
   * the banner is up 2.1 s after the last update at most, within three
   * ticks of the engine stopping.
   * ------------------------------------------------------------------- */

  const live = { updatedAt: 0, tickMs: DEFAULT_TICK_MS };
  const LIVENESS_CHECK_MS = 100;

  function noteFresh(snap) {
    const recv = Date.now();
    const lag = recv - snap.as_of;
    live.updatedAt = typeof snap.as_of === 'number' && Math.abs(lag) < CLOCK_TRUST_MS ? Math.min(recv, snap.as_of) : recv;
    if (typeof snap.tick_ms === 'number' && snap.tick_ms > 0) live.tickMs = snap.tick_ms;
  }

  function staleAfterMs() {
    return Math.max(2 * live.tickMs, 1000);
  }

  function checkLiveness() {
    const age = live.updatedAt ? Date.now() - live.updatedAt : null;
    setText('status-age', age === null ? '' : '· ' + T('ago', { age: duration(age) }));
    let reason = '';
    if (pub.state === 'disconnected') reason = pub.last ? 'staleGone' : 'staleNever';
    else if (age !== null && age > staleAfterMs()) reason = 'staleSlow';
    const stale = reason !== '';
    const banner = $('stale-banner');
    if (stale) {
      const asOf = pub.last ? pub.last.as_of : live.updatedAt;
      const text = T(reason, { age: duration(age || 0), time: dateTime(asOf) + ' ' + tzLabel });
      if (banner.textContent !== text) banner.textContent = text;
      banner.setAttribute('data-reason', reason);
    }
    if (banner.hidden === stale) {
      banner.hidden = !stale;
      if (stale) banner.setAttribute('data-shown-at', String(Date.now())); // for tests: when it went up
    }
    if (pub.stale !== stale) {
      pub.stale = stale;
      document.body.setAttribute('data-stale', String(stale));
    }
  }

  /* ---------------------------------------------------------------------
   * Language, full screen.
   * ------------------------------------------------------------------- */

  function applyTexts() {
    document.documentElement.lang = LANG === 'zh' ? 'zh-CN' : 'en';
    document.title = 'orderpulse · ' + T('subtitle');
    document.querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = T(el.getAttribute('data-i18n')); });
    document.querySelectorAll('[data-i18n-label]').forEach((el) => {
      el.setAttribute('aria-label', T(el.getAttribute('data-i18n-label')));
    });
  }
  applyTexts();

  const fsButton = $('fullscreen');
  function fullscreenChanged() {
    const on = !!document.fullscreenElement;
    fsButton.setAttribute('aria-pressed', String(on));
    fsButton.querySelector('.label').textContent = T(on ? 'exitFullScreen' : 'fullScreen');
  }
  function toggleFullscreen() {
    if (document.fullscreenElement) {
      document.exitFullscreen().catch(() => {});
    } else if (document.documentElement.requestFullscreen) {
      document.documentElement.requestFullscreen().catch(() => {});
    }
  }
  if (!document.fullscreenEnabled) fsButton.hidden = true;
  fsButton.addEventListener('click', toggleFullscreen);
  document.addEventListener('fullscreenchange', fullscreenChanged);
  document.addEventListener('keydown', (e) => {
    if ((e.key === 'f' || e.key === 'F') && !e.ctrlKey && !e.metaKey && !e.altKey) toggleFullscreen();
  });

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
    el.querySelector('.label').textContent = T(state);
    checkLiveness();
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

  if (!STREAM) {
    // ?stream=0: one snapshot, then nothing more (no timer, no open request),
    // so a headless screenshot with a virtual time budget can finish.
    fetchSnapshot().then((raw) => { setState('still'); accept(raw); }, () => setState('disconnected'));
    return;
  }

  // The engine publishes a snapshot every tick: a stream that has been quiet
  // for SSE_STALE_MS is stuck (e.g. a proxy holding it), so reconnect.
  setInterval(() => {
    if (conn.es && pub.state === 'live' && Date.now() - conn.lastEventAt > SSE_STALE_MS) streamFailed();
  }, 1000);
  setInterval(checkLiveness, LIVENESS_CHECK_MS);

  // First paint from one plain GET (the stream's first event may be a tick
  // away), then the stream.
  fetchSnapshot().then(accept, () => {});
  openStream();
})();
