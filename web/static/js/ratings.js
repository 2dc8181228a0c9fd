// A racer's rating over a head-to-head race, drawn on <canvas> from the JSON in the figure's
// data-rating-chart attribute (league.read.matchups.Matchups.chart): per round μ (line), the
// band μ ± σ, the displayed rating μ − 3σ (dashed), and a dotted line where a new model
// version was entered. Each version's line is drawn on its own: a new version starts afresh.
// Every such figure on the page is drawn (the matchups page has one, a racer's profile one per
// head-to-head race).
(function () {
  "use strict";

  var MU = "#1d4ed8", BAND = "rgba(29, 78, 216, 0.15)", LOW = "#d97706", MARK = "#7c3aed";
  var INK = "#14213d", MUTED = "#5c6478", GRID = "#e3e6ee";
  var PAD = { left: 44, right: 12, top: 18, bottom: 28 };
  var TICKS = 5;

  function niceStep(span, count) {
    var raw = span / Math.max(1, count);
    var mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var steps = [1, 2, 5, 10];
    for (var i = 0; i < steps.length; i++) {
      if (raw <= steps[i] * mag) return steps[i] * mag;
    }
    return 10 * mag;
  }

  // Runs of point indices, one per version: [start, end) pairs.
  function runs(n, marks) {
    var starts = marks.map(function (m) { return m.point; })
      .filter(function (p) { return p > 0 && p < n; });
    starts.sort(function (a, b) { return a - b; });
    var out = [], from = 0;
    starts.forEach(function (s) { if (s > from) { out.push([from, s]); from = s; } });
    out.push([from, n]);
    return out;
  }

  function draw(data, canvas) {
    var points = data.points;
    if (!points.length) return;
    var s = window.paddockCharts.surface(canvas), ctx = s.ctx, w = s.w, h = s.h;

    var lo = Infinity, hi = -Infinity;
    points.forEach(function (p) {
      lo = Math.min(lo, p.low, p.mu - p.sigma);
      hi = Math.max(hi, p.mu + p.sigma);
    });
    var step = niceStep(hi - lo || 1, TICKS);
    lo = Math.floor(lo / step) * step;
    hi = Math.ceil(hi / step) * step;
    if (hi === lo) hi = lo + step;
    var plotW = w - PAD.left - PAD.right, plotH = h - PAD.top - PAD.bottom;
    function x(i) {
      return PAD.left + (points.length > 1 ? i / (points.length - 1) : 0.5) * plotW;
    }
    function y(v) { return PAD.top + (hi - v) / (hi - lo) * plotH; }

    // grid and axis labels
    ctx.strokeStyle = GRID;
    ctx.fillStyle = MUTED;
    ctx.lineWidth = 1;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (var v = lo; v <= hi + step / 2; v += step) {
      ctx.beginPath();
      ctx.moveTo(PAD.left, y(v));
      ctx.lineTo(w - PAD.right, y(v));
      ctx.stroke();
      ctx.fillText(String(Math.round(v * 100) / 100), PAD.left - 6, y(v));
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    var every = Math.max(1, Math.ceil(points.length / 12));
    points.forEach(function (p, i) {
      if (i % every === 0 || i === points.length - 1) ctx.fillText(p.label, x(i), h - PAD.bottom + 6);
    });

    runs(points.length, data.versions).forEach(function (run) {
      var a = run[0], b = run[1], i;
      // band mu ± sigma
      ctx.fillStyle = BAND;
      ctx.beginPath();
      for (i = a; i < b; i++) ctx.lineTo(x(i), y(points[i].mu + points[i].sigma));
      for (i = b - 1; i >= a; i--) ctx.lineTo(x(i), y(points[i].mu - points[i].sigma));
      ctx.closePath();
      ctx.fill();
      if (b - a === 1) {  // a lone point: its band as a short bar
        ctx.fillRect(x(a) - 4, y(points[a].mu + points[a].sigma), 8,
                     y(points[a].mu - points[a].sigma) - y(points[a].mu + points[a].sigma));
      }
      line(a, b, "mu", MU, []);
      line(a, b, "low", LOW, [6, 4]);
    });

    function line(a, b, key, color, dash) {
      ctx.strokeStyle = color;
      ctx.fillStyle = color;
      ctx.lineWidth = 2;
      ctx.setLineDash(dash);
      ctx.beginPath();
      for (var i = a; i < b; i++) ctx.lineTo(x(i), y(points[i][key]));
      ctx.stroke();
      ctx.setLineDash([]);
      for (i = a; i < b; i++) {
        ctx.beginPath();
        ctx.arc(x(i), y(points[i][key]), 2.5, 0, 2 * Math.PI);
        ctx.fill();
      }
    }

    // version marks
    ctx.strokeStyle = MARK;
    ctx.fillStyle = MARK;
    ctx.lineWidth = 1;
    ctx.setLineDash([2, 3]);
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    data.versions.forEach(function (m) {
      if (m.point === null || m.point >= points.length) return;
      var at = x(m.point);
      ctx.beginPath();
      ctx.moveTo(at, PAD.top);
      ctx.lineTo(at, h - PAD.bottom);
      ctx.stroke();
      ctx.fillText(m.model, Math.min(at + 3, w - PAD.right - ctx.measureText(m.model).width), 2);
    });
    ctx.setLineDash([]);
    ctx.fillStyle = INK;
  }

  function chart(figure) {
    var data = JSON.parse(figure.dataset.ratingChart);
    var legend = figure.querySelector("[data-rating-legend]");
    legend.textContent = "Blue: μ with the band μ ± σ. Orange, dashed: rating μ − 3σ." +
      (data.versions.length > 1 ? " Purple, dotted: a new version entered." : "");
    draw(data, figure.querySelector("[data-rating-canvas]"));
    figure.dataset.drawn = "true";
  }

  document.querySelectorAll("[data-rating-chart]").forEach(chart);
}());
