// The StreamTrack dashboard: every panel polls its JSON endpoint every few seconds while the
// tab is visible; the live feed is pushed (live.js), and polled only while its stream is down.
// Panels fail on their own: an error shows in the panel, the others go on.

import { getJSON, sendJSON, timeRange } from "./api.js";
import { onThemeChange, palette, render } from "./charts.js";
import { follow } from "./live.js";

const REFRESH_MS = 3000;
const FEED_SIZE = 20;
const number = new Intl.NumberFormat();
const decimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const percent = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 });
const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 }); // 12.3K: fits its card

const $ = (selector, root = document) => root.querySelector(selector);

const state = {
  range: Number($("#range").value),
  interval: $("#interval").value,
  groupBy: $("#group-by").value,
  dimension: $("#dimension").value,
  steps: parseSteps($("#funnel-steps").value),
  retentionPeriod: $("#retention-period").value,
  feedMode: "connecting", // stream (pushed) | poll (fallback)
  loadgen: document.body.dataset.loadgen === "true",
  seen: new Set(), // event ids already in the feed, to highlight the new ones
  refreshes: 0,
  busy: false,
  again: false,
};
// For people debugging in the console, and for the browser test.
window.streamtrack = { state, refresh };

function parseSteps(text) {
  return text.split(",").map((step) => step.trim()).filter(Boolean);
}

function formatTime(iso, interval) {
  const date = new Date(iso);
  if (interval === "day" || interval === "week") return date.toLocaleDateString(undefined, { month: "short", day: "numeric" });
  return date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

function setText(selector, text) {
  const element = $(selector);
  if (element) element.textContent = text;
}

/** Run one panel's refresh; its error shows inside the panel and does not stop the others. */
async function panel(id, work) {
  const error = $(`#${id} .error`);
  try {
    await work();
    if (error) error.hidden = true;
    return true;
  } catch (exc) {
    if (error) {
      error.textContent = exc.message;
      error.hidden = false;
    }
    return false;
  }
}

async function overview() {
  const data = await getJSON("/analytics/overview");
  for (const key of ["total_events", "unique_users", "unique_sessions", "events_last_5m"]) {
    setText(`[data-card="${key}"] .value`, number.format(data[key]));
  }
  const last = data.last_event_at ? `last event at ${new Date(data.last_event_at).toLocaleTimeString()}` : "no events yet";
  setText('[data-hint="last_event_at"]', last);
}

async function activeUsers() {
  const data = await getJSON("/analytics/active-users", { window_minutes: 5 });
  setText('[data-card="active_now"] .value', number.format(data.active_now));
  setText('[data-hint="window"]', `users in the last ${data.window_minutes} min`);
  const trio = [data.dau, data.wau, data.mau].flatMap((value, index) => {
    const figure = document.createElement("span");
    figure.textContent = compact.format(value);
    figure.title = number.format(value);
    if (!index) return [figure];
    const sep = document.createElement("span");
    sep.className = "sep";
    sep.textContent = "/";
    return [sep, figure];
  });
  $('[data-card="dau"] .value').replaceChildren(...trio);
  setText('[data-hint="date"]', `on ${data.date}`);
}

async function timeseries() {
  const params = { range: state.range, interval: state.interval, groupBy: state.groupBy };
  const data = await getJSON("/analytics/timeseries", {
    ...timeRange(params.range), interval: params.interval, group_by: params.groupBy, top: params.groupBy ? 5 : "",
  });
  const colors = palette();
  const labels = (data.series[0]?.points ?? []).map((point) => formatTime(point.t, data.interval));
  const datasets = data.series.map((series, index) => ({
    label: series.name === "all" ? "Events" : series.name,
    data: series.points.map((point) => point.events),
    borderColor: colors[index % colors.length],
    backgroundColor: colors[index % colors.length] + "33",
    fill: data.series.length === 1,
    cubicInterpolationMode: "monotone",
    pointRadius: 0,
    borderWidth: 2,
  }));
  if (data.series.length === 1) {
    datasets.push({
      label: "Users", data: data.series[0].points.map((point) => point.users), borderColor: colors[1],
      backgroundColor: colors[1], fill: false, cubicInterpolationMode: "monotone", pointRadius: 0, borderWidth: 2, borderDash: [4, 3],
    });
  }
  render($("#timeseries-chart"), {
    type: "line",
    data: { labels, datasets },
    options: {
      maintainAspectRatio: false, animation: false, interaction: { mode: "index", intersect: false },
      scales: { y: { beginAtZero: true, ticks: { precision: 0 } }, x: { ticks: { maxTicksLimit: 12 } } },
      plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
    },
  });
  // What the drawn data answers (tests wait on it after a picker changes).
  Object.assign($("#timeseries-chart").dataset, { interval: data.interval, range: String(params.range), groupBy: params.groupBy });
}

async function breakdown() {
  const dimension = state.dimension;
  const data = await getJSON("/analytics/breakdown", { ...timeRange(state.range), dimension, limit: 10 });
  const colors = palette();
  render($("#breakdown-chart"), {
    type: "bar",
    data: {
      labels: data.rows.map((row) => row.value || "(none)"),
      datasets: [
        { label: "Events", data: data.rows.map((row) => row.events), backgroundColor: colors[0], borderRadius: 4 },
        { label: "Users", data: data.rows.map((row) => row.users), backgroundColor: colors[1], borderRadius: 4 },
      ],
    },
    options: {
      indexAxis: "y", maintainAspectRatio: false, animation: false,
      scales: { x: { beginAtZero: true, ticks: { precision: 0 } }, y: { ticks: { autoSkip: false } } },
      plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
    },
  });
  $("#breakdown-chart").dataset.dimension = dimension;
}

/** A page as people read it: its path, and its host too when the rows span several hosts. */
function pageLabel(url, oneHost) {
  try {
    const parsed = new URL(url);
    const path = parsed.pathname + parsed.search + parsed.hash;
    return oneHost ? path : parsed.host + path;
  } catch {
    return url || "(no url)";
  }
}

function hostOf(url) {
  try {
    return new URL(url).host;
  } catch {
    return "";
  }
}

async function topPages() {
  const data = await getJSON("/analytics/top-pages", { ...timeRange(state.range), limit: 10 });
  const oneHost = new Set(data.rows.map((row) => hostOf(row.url))).size <= 1;
  const body = $("#top-pages");
  body.replaceChildren(...data.rows.map((row) => {
    const tr = document.createElement("tr");
    const page = document.createElement("td");
    page.textContent = pageLabel(row.url, oneHost);
    page.title = row.url;
    const views = document.createElement("td");
    views.className = "num";
    views.textContent = number.format(row.views);
    const visitors = document.createElement("td");
    visitors.className = "num";
    visitors.textContent = number.format(row.visitors);
    tr.append(page, views, visitors);
    return tr;
  }));
  if (!data.rows.length) body.innerHTML = '<tr><td colspan="3" class="muted">No page views in this range</td></tr>';
}

async function funnel() {
  if (state.steps.length < 2) throw new Error("give 2 to 10 event types, separated by commas");
  const data = await getJSON("/analytics/funnel", { ...timeRange(state.range), steps: state.steps, window_seconds: 3600 });
  const colors = palette();
  render($("#funnel-chart"), {
    type: "bar",
    data: {
      labels: data.steps.map((step) => step.step),
      datasets: [{
        label: "Users", data: data.steps.map((step) => step.users), backgroundColor: colors[0], borderRadius: 4,
        maxBarThickness: 90,
      }],
    },
    options: {
      maintainAspectRatio: false, animation: false,
      scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
      plugins: { legend: { display: false } },
    },
  });
  $("#funnel-steps-list").replaceChildren(...data.steps.map((step, index) => {
    const item = document.createElement("li");
    item.dataset.step = step.step;
    const rate = index === 0 ? "" : ` · ${percent.format(step.conversion_from_previous)} of previous, ${percent.format(step.conversion_from_first)} of first`;
    item.innerHTML = `${escapeHtml(step.step)}: <b>${number.format(step.users)}</b> users${rate}`;
    return item;
  }));
}

function escapeHtml(text) {
  const span = document.createElement("span");
  span.textContent = text;
  return span.innerHTML;
}

function feedItem(event, source, fresh) {
  const item = document.createElement("li");
  item.dataset.eventId = event.event_id;
  item.dataset.source = source;
  if (fresh) item.className = "new";
  const who = event.user_id || event.anonymous_id;
  item.innerHTML = `<time>${escapeHtml(new Date(event.timestamp).toLocaleTimeString([], { hourCycle: "h23" }))}</time>`
    + `<span class="type">${escapeHtml(event.event_type)}</span>`
    + `<span class="who">${escapeHtml(who)}${event.url ? " · " + escapeHtml(event.url) : ""}</span>`;
  return item;
}

function fadeNew(list) {
  setTimeout(() => list.querySelectorAll("li.new").forEach((item) => item.classList.remove("new")), 1500);
}

/** The feed from /activities: its first fill, and every refresh while the stream is down. */
async function feed() {
  const page = await getJSON("/activities", { limit: FEED_SIZE });
  const first = state.seen.size === 0;
  const items = page.data.map((event) => feedItem(event, "poll", !first && !state.seen.has(event.event_id)));
  page.data.forEach((event) => state.seen.add(event.event_id));
  const list = $("#feed");
  list.replaceChildren(...items);
  if (!items.length) list.innerHTML = '<li class="muted">No events yet: send one to /track</li>';
  fadeNew(list);
}

/** An event pushed by the stream: on top of the list at once. */
function pushed(event) {
  if (state.seen.has(event.event_id)) return;
  state.seen.add(event.event_id);
  const list = $("#feed");
  list.querySelector("li.muted")?.remove();
  list.prepend(feedItem(event, "stream", true));
  while (list.children.length > FEED_SIZE) list.lastElementChild.remove();
  fadeNew(list);
}

function setFeedMode(mode) {
  state.feedMode = mode;
  $("#feed-panel").dataset.mode = mode;
  setText("#feed-mode", mode === "stream" ? "pushed live, newest first" : "polling, newest first");
}

async function retention() {
  const period = state.retentionPeriod;
  const data = await getJSON("/analytics/retention", { period, periods: 8 });
  const periods = Math.max(0, ...data.cohorts.map((cohort) => cohort.rates.length));
  const name = period === "week" ? "Week" : "Day";
  const head = $("#retention thead tr");
  head.replaceChildren(...["Cohort", "Users", ...Array.from({ length: periods }, (_, k) => `${name} ${k}`)].map((text, index) => {
    const th = document.createElement("th");
    th.textContent = text;
    if (index > 0) th.className = "num";
    return th;
  }));
  const body = $("#retention tbody");
  body.replaceChildren(...data.cohorts.map((cohort) => {
    const tr = document.createElement("tr");
    const label = document.createElement("td");
    label.textContent = cohort.cohort;
    const users = document.createElement("td");
    users.className = "num";
    users.textContent = number.format(cohort.users);
    tr.append(label, users);
    for (let k = 0; k < periods; k++) {
      const cell = document.createElement("td");
      if (k < cohort.rates.length) {
        cell.className = "num rate";
        cell.textContent = percent.format(cohort.rates[k]).replace(/\s/g, "");
        cell.title = `${number.format(cohort.retained[k])} of ${number.format(cohort.users)} users`;
        cell.style.setProperty("--rate", String(cohort.rates[k]));
      }
      tr.append(cell);
    }
    return tr;
  }));
  if (!data.cohorts.length) body.innerHTML = '<tr><td colspan="2" class="muted">No users first seen in these periods</td></tr>';
  $("#retention").dataset.period = period;
}

function duration(seconds) {
  if (seconds < 60) return `${decimal.format(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

async function sessions() {
  const data = await getJSON("/analytics/sessions", timeRange(state.range));
  setText('[data-session="sessions"]', number.format(data.sessions));
  setText('[data-session="median_session_seconds"]', duration(data.median_session_seconds));
  setText('[data-session="bounce_rate"]', percent.format(data.bounce_rate));
  setText('[data-session="pages_per_session"]', decimal.format(data.pages_per_session));
}

async function deadLetters() {
  const [counts, newest] = await Promise.all([getJSON("/dead-letters/counts"), getJSON("/dead-letters", { limit: 5 })]);
  setText('[data-dead="total"]', number.format(counts.total));
  const reasons = Object.entries(counts.counts).sort((a, b) => b[1] - a[1]);
  $("#dead-letter-reasons").replaceChildren(...reasons.map(([reason, count]) => {
    const item = document.createElement("li");
    item.innerHTML = `${escapeHtml(reason)} <b>${number.format(count)}</b>`;
    return item;
  }));
  $("#dead-letter-list").replaceChildren(...newest.data.map((letter) => {
    const item = document.createElement("li");
    item.title = letter.error;
    item.innerHTML = `<time>${escapeHtml(new Date(letter.dead_at).toLocaleTimeString([], { hourCycle: "h23" }))}</time>`
      + `<span class="type">${escapeHtml(letter.reason)}</span><span class="who">${escapeHtml(letter.error)}</span>`;
    return item;
  }));
  if (!newest.data.length) $("#dead-letter-list").innerHTML = '<li class="muted">None: every record was stored</li>';
}

async function pipeline() {
  const data = await getJSON("/pipeline/status");
  const show = (value, format) => (value === null || value === undefined ? "n/a" : format.format(value));
  setText('[data-stat="ingest_rate_per_s"]', show(data.ingest_rate_per_s, decimal));
  setText('[data-stat="consumer_lag"]', show(data.consumer_lag, number));
  setText('[data-stat="dead_letters"]', show(data.dead_letters, number));
  setText('[data-stat="archive_lag"]', show(data.archive_lag, number));
  for (const key of ["broker_ok", "store_ok"]) {
    const badge = $(`[data-health="${key}"]`);
    badge.textContent = data[key] ? "ok" : "down";
    badge.className = `health ${data[key] ? "ok" : "bad"}`;
  }
  const problems = Object.entries(data.errors ?? {}).map(([source, message]) => `${source}: ${message}`);
  if (problems.length) throw new Error(problems.join("; "));
}

async function loadgenStatus() {
  const data = await getJSON("/dev/loadgen");
  showLoadgen(data);
}

function showLoadgen(data) {
  document.querySelectorAll("#loadgen [data-rate]").forEach((button) => {
    button.classList.toggle("active", Boolean(data.running) && Number(button.dataset.rate) === data.rate);
  });
  const status = $("#loadgen-status");
  status.dataset.running = String(Boolean(data.running));
  status.textContent = data.running
    ? `running at ${number.format(data.rate)}/s: achieved ${decimal.format(data.achieved_rate)}/s, ` +
      `${number.format(data.accepted)} accepted, ${number.format(data.errors)} errors, p95 ${decimal.format(data.p95_ms)} ms`
    : `stopped${data.sent ? `: ${number.format(data.accepted)} of ${number.format(data.sent)} accepted last run` : ""}`;
}

async function refresh() {
  if (document.visibilityState === "hidden") return;
  if (state.busy) {
    state.again = true; // a picker changed mid-refresh: run once more with the new choice
    return;
  }
  state.busy = true;
  const results = await Promise.all([
    panel("timeseries-panel", timeseries),
    panel("pipeline-panel", pipeline),
    panel("breakdown-panel", breakdown),
    panel("top-pages-panel", topPages),
    panel("funnel-panel", funnel),
    ...(state.feedMode === "stream" && state.seen.size ? [] : [panel("feed-panel", feed)]),
    panel("retention-panel", retention),
    panel("sessions-panel", sessions),
    panel("dead-letters-panel", deadLetters),
    panel("overview", async () => { await Promise.all([overview(), activeUsers()]); }),
    ...(state.loadgen ? [panel("loadgen", loadgenStatus)] : []),
  ]);
  state.busy = false;
  state.refreshes += 1;
  const live = $("#live");
  const ok = results.every(Boolean);
  live.className = `live ${ok ? "ok" : "bad"}`;
  setText("#updated", `${ok ? "live" : "some panels failed"} · ${new Date().toLocaleTimeString()}`);
  document.body.dataset.refreshes = String(state.refreshes);
  if (state.again) {
    state.again = false;
    refresh();
  }
}

function bindControls() {
  const onChange = (selector, key, parse = (value) => value) => {
    $(selector).addEventListener("change", (event) => {
      state[key] = parse(event.target.value);
      refresh();
    });
  };
  onChange("#range", "range", Number);
  onChange("#interval", "interval");
  onChange("#group-by", "groupBy");
  onChange("#dimension", "dimension");
  onChange("#retention-period", "retentionPeriod");
  $("#funnel-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.steps = parseSteps($("#funnel-steps").value);
    refresh();
  });
  document.addEventListener("visibilitychange", refresh);
  onThemeChange(refresh);
  if (!state.loadgen) return;
  $("#loadgen").hidden = false;
  $("#loadgen").addEventListener("click", async (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    await panel("loadgen", async () => {
      if (button.dataset.stop !== undefined) await sendJSON("DELETE", "/dev/loadgen");
      else await sendJSON("POST", "/dev/loadgen", { rate: Number(button.dataset.rate) });
      await loadgenStatus();
    });
  });
}

bindControls();
refresh();
setInterval(refresh, REFRESH_MS);
follow("/activities/stream", { onEvent: pushed, onGap: () => panel("feed-panel", feed), onMode: setFeedMode });
