// Chart.js (vendored, window.Chart) with the page's colours; charts are updated in place.

const Chart = window.Chart;

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

export function palette() {
  return ["--accent", "--accent-2", "--accent-3", "--accent-4", "--accent-5", "--muted"].map(cssVar);
}

function applyTheme() {
  Chart.defaults.color = cssVar("--muted");
  Chart.defaults.borderColor = cssVar("--border");
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
}

/** Draw `config` on `canvas`, or update the chart already there (no flicker on live refresh).
 *  The number of data points drawn is exposed as `data-points` on the canvas (tests read it). */
export function render(canvas, config) {
  applyTheme();
  const points = config.data.datasets.reduce((sum, set) => sum + set.data.filter((v) => v !== null).length, 0);
  let chart = Chart.getChart(canvas);
  if (chart && chart.config.type === config.type) {
    chart.data = config.data;
    chart.options = config.options;
    chart.update("none");
  } else {
    if (chart) chart.destroy();
    chart = new Chart(canvas, config);
  }
  canvas.dataset.points = String(points);
  return chart;
}

/** Redraw every chart with the new colours when the system switches light/dark. */
export function onThemeChange(callback) {
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
    document.querySelectorAll("canvas").forEach((canvas) => Chart.getChart(canvas)?.destroy());
    callback();
  });
}
