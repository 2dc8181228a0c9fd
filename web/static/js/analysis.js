// Analysis charts of one evaluation, drawn on <canvas> from the garage's analysis.json:
// racing line over the track coloured by speed with the off-tracks and the trial's obstacle
// boxes, speed and steering along the track (one line per lap), the spread of lap times
// across trials and, for a discrete action space, how often each action was chosen.
(function () {
  "use strict";

  var LAP_COLORS = ["#1d4ed8", "#d97706", "#059669", "#db2777", "#7c3aed", "#0891b2",
                    "#65a30d", "#dc2626"];
  var INK = "#14213d", MUTED = "#5c6478", GRID = "#e3e6ee";
  var MAX_STEER_DEG = 30;
  var BOX_FILL = "#c4a06c", BOX_EDGE = "#6e502d";  // cardboard, as the replay viewer draws it
  var MIN_BOX_PX = 5;

  var section = document.querySelector("[data-analysis-url]");
  if (!section) return;
  var select = section.querySelector("[data-analysis-trial]");
  var controls = section.querySelector("[data-analysis-controls]");
  var summary = section.querySelector("[data-analysis-summary]");
  var statusLine = section.querySelector("[data-analysis-status]");
  var data = null;

  function say(text) {
    statusLine.hidden = !text;
    statusLine.textContent = text || "";
  }

  function raceTime(seconds) {
    var millis = Math.round(seconds * 1000);
    var minutes = Math.floor(millis / 60000);
    var rest = (millis - minutes * 60000) / 1000;
    return minutes + ":" + (rest < 10 ? "0" : "") + rest.toFixed(3);
  }

  // The chart's canvas, ready to draw (charts.js).
  function surface(name) {
    return window.paddockCharts.surface(section.querySelector('[data-chart="' + name + '"]'));
  }

  // Speed colour: blue (slow) through green and yellow to red (fast).
  function speedColor(v, lo, hi) {
    var f = hi > lo ? Math.min(1, Math.max(0, (v - lo) / (hi - lo))) : 0.5;
    return "hsl(" + Math.round(220 * (1 - f)) + ", 80%, 45%)";
  }

  function niceStep(span, count) {
    var raw = span / Math.max(1, count);
    var mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) {
      if (steps[i] * mag >= raw) return steps[i] * mag;
    }
    return 10 * mag;
  }

  // Axes with a grid: returns {x(v), y(v)} mapping data to pixels inside the plot area.
  function axes(s, xr, yr, xLabel, yLabel, xTicks) {
    var ctx = s.ctx, left = 58, right = s.w - 24, top = 14, bottom = s.h - 36;
    var x = function (v) { return left + (v - xr[0]) / (xr[1] - xr[0]) * (right - left); };
    var y = function (v) { return bottom - (v - yr[0]) / (yr[1] - yr[0]) * (bottom - top); };
    ctx.strokeStyle = GRID;
    ctx.fillStyle = MUTED;
    ctx.lineWidth = 1;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    var ys = niceStep(yr[1] - yr[0], 5);
    for (var v = Math.ceil(yr[0] / ys) * ys; v <= yr[1] + 1e-9; v += ys) {
      ctx.beginPath(); ctx.moveTo(left, y(v)); ctx.lineTo(right, y(v)); ctx.stroke();
      ctx.fillText(String(Math.round(v * 100) / 100), left - 6, y(v));
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    (xTicks || []).forEach(function (t) {
      ctx.beginPath(); ctx.moveTo(x(t.v), top); ctx.lineTo(x(t.v), bottom); ctx.stroke();
      ctx.fillText(t.label, x(t.v), bottom + 4);
    });
    ctx.strokeStyle = INK;
    ctx.strokeRect(left, top, right - left, bottom - top);
    ctx.fillText(xLabel, (left + right) / 2, s.h - 16);
    ctx.save();
    ctx.translate(11, (top + bottom) / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textBaseline = "middle";
    ctx.fillText(yLabel, 0, 0);
    ctx.restore();
    return { x: x, y: y, left: left, right: right, top: top, bottom: bottom };
  }

  function progressTicks() {
    var ticks = [];
    for (var p = 0; p <= 100; p += 20) ticks.push({ v: p, label: p + " %" });
    return ticks;
  }

  // Consecutive driven frames of one lap, as runs of sample indices (breaks at gaps).
  function lapRuns(samples) {
    var runs = [], current = [];
    for (var i = 0; i < samples.frame.length; i++) {
      var joined = i > 0 && samples.frame[i] === samples.frame[i - 1] + 1 &&
        samples.lap[i] === samples.lap[i - 1];
      if (!joined && current.length) { runs.push(current); current = []; }
      current.push(i);
    }
    if (current.length) runs.push(current);
    return runs;
  }

  function legend(s, laps, right) {
    var ctx = s.ctx, x = right;
    ctx.textAlign = "right";
    ctx.textBaseline = "top";
    laps.slice().reverse().forEach(function (lap) {
      var label = "lap " + (lap + 1);
      ctx.fillStyle = LAP_COLORS[lap % LAP_COLORS.length];
      ctx.fillText(label, x, 20);
      x -= ctx.measureText(label).width + 12;
    });
  }

  function drawAlongTrack(name, trial, key, yr, yLabel) {
    var s = surface(name), samples = trial.samples;
    var a = axes(s, [0, 100], yr, "lap progress", yLabel, progressTicks());
    var ctx = s.ctx, laps = [];
    if (key === "steering_deg") {
      ctx.strokeStyle = MUTED;
      ctx.beginPath(); ctx.moveTo(a.left, a.y(0)); ctx.lineTo(a.right, a.y(0)); ctx.stroke();
    }
    ctx.lineWidth = 1.5;
    lapRuns(samples).forEach(function (run) {
      var lap = samples.lap[run[0]];
      if (laps.indexOf(lap) < 0) laps.push(lap);
      ctx.strokeStyle = LAP_COLORS[lap % LAP_COLORS.length];
      ctx.beginPath();
      run.forEach(function (i, k) {
        var px = a.x(samples.progress[i]), py = a.y(samples[key][i]);
        if (k === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
      });
      ctx.stroke();
    });
    legend(s, laps, a.right - 6);
    if (!samples.frame.length) emptyNote(s, "the car did not drive in this trial");
  }

  function emptyNote(s, text) {
    s.ctx.fillStyle = MUTED;
    s.ctx.textAlign = "center";
    s.ctx.textBaseline = "middle";
    s.ctx.fillText(text, s.w / 2, s.h / 2);
  }

  function drawLine(trial) {
    var s = surface("line"), ctx = s.ctx, track = data.track, samples = trial.samples;
    var pts = track.left_border.concat(track.right_border);
    var minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;
    pts.forEach(function (p) {
      minX = Math.min(minX, p[0]); maxX = Math.max(maxX, p[0]);
      minY = Math.min(minY, p[1]); maxY = Math.max(maxY, p[1]);
    });
    var pad = 16, legendH = 34;
    var scale = Math.min((s.w - 2 * pad) / (maxX - minX), (s.h - 2 * pad - legendH) / (maxY - minY));
    var ox = (s.w - scale * (maxX - minX)) / 2, oy = (s.h - legendH + scale * (maxY - minY)) / 2;
    var X = function (x) { return ox + (x - minX) * scale; };
    var Y = function (y) { return oy - (y - minY) * scale; };
    function path(points) {
      points.forEach(function (p, i) { if (i) ctx.lineTo(X(p[0]), Y(p[1])); else ctx.moveTo(X(p[0]), Y(p[1])); });
      ctx.closePath();
    }
    ctx.beginPath();  // the track surface: the ring between the two borders
    path(track.left_border);
    path(track.right_border);
    ctx.fillStyle = "#3b3f48";
    ctx.fill("evenodd");
    ctx.strokeStyle = "#f2f2f2";
    ctx.lineWidth = 1.5;
    ctx.beginPath(); path(track.left_border); ctx.stroke();
    ctx.beginPath(); path(track.right_border); ctx.stroke();
    ctx.setLineDash([6, 6]);
    ctx.strokeStyle = "rgba(255, 255, 255, 0.6)";
    ctx.lineWidth = 1;
    ctx.beginPath(); path(track.centerline); ctx.stroke();
    ctx.setLineDash([]);

    var lo = Math.min.apply(null, samples.speed.length ? samples.speed : [0]);
    var hi = Math.max.apply(null, samples.speed.length ? samples.speed : [1]);
    ctx.lineWidth = 2.5;
    ctx.lineCap = "round";
    for (var i = 1; i < samples.frame.length; i++) {
      if (samples.frame[i] !== samples.frame[i - 1] + 1) continue;  // a penalty in between
      ctx.strokeStyle = speedColor((samples.speed[i] + samples.speed[i - 1]) / 2, lo, hi);
      ctx.beginPath();
      ctx.moveTo(X(samples.x[i - 1]), Y(samples.y[i - 1]));
      ctx.lineTo(X(samples.x[i]), Y(samples.y[i]));
      ctx.stroke();
    }
    var boxes = trial.obstacles || [];
    boxes.forEach(function (o) {
      var half = Math.max(o.radius * scale, MIN_BOX_PX / 2);
      box(ctx, X(o.x), Y(o.y), half);
    });
    trial.off_tracks.forEach(function (o) {
      var cx = X(o.x), cy = Y(o.y), r = 6;
      [["#fff", 4], ["#dc2626", 2]].forEach(function (style) {
        ctx.strokeStyle = style[0];
        ctx.lineWidth = style[1];
        ctx.beginPath();
        ctx.moveTo(cx - r, cy - r); ctx.lineTo(cx + r, cy + r);
        ctx.moveTo(cx + r, cy - r); ctx.lineTo(cx - r, cy + r);
        ctx.stroke();
      });
    });
    // speed scale
    var barX = pad, barY = s.h - 30, barW = Math.min(240, s.w / 3);
    for (var k = 0; k < barW; k++) {
      ctx.fillStyle = speedColor(lo + (hi - lo) * k / barW, lo, hi);
      ctx.fillRect(barX + k, barY, 1, 10);
    }
    ctx.fillStyle = INK;
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    ctx.fillText(lo.toFixed(2) + " m/s", barX, barY + 12);
    ctx.textAlign = "right";
    ctx.fillText(hi.toFixed(2) + " m/s", barX + barW, barY + 12);
    ctx.textAlign = "left";
    var offLabel = "× off track (" + trial.off_tracks.length + ")";
    ctx.fillText(offLabel, barX + barW + 24, barY);
    if (boxes.length) {
      var boxX = barX + barW + 24 + ctx.measureText(offLabel).width + 20;
      box(ctx, boxX + 5, barY + 7, 5);
      ctx.fillStyle = INK;
      ctx.fillText("obstacle (" + boxes.length + ")", boxX + 16, barY);
    }
  }

  // An obstacle: a cardboard box centred at (cx, cy), half its side `half` pixels.
  function box(ctx, cx, cy, half) {
    ctx.fillStyle = BOX_FILL;
    ctx.fillRect(cx - half, cy - half, 2 * half, 2 * half);
    ctx.strokeStyle = BOX_EDGE;
    ctx.lineWidth = 1.5;
    ctx.strokeRect(cx - half, cy - half, 2 * half, 2 * half);
  }

  function drawLaps() {
    var s = surface("laps"), laps = data.laps, trials = data.trials.map(function (t) { return t.trial; });
    if (!laps.length) {
      axes(s, [0.5, trials.length + 0.5], [0, 1], "trial", "lap time (s)", []);
      emptyNote(s, "no completed laps");
      return;
    }
    var times = laps.map(function (l) { return l.time_s; });
    var lo = Math.min.apply(null, times), hi = Math.max.apply(null, times);
    var margin = Math.max(0.5, (hi - lo) * 0.15);
    var ticks = trials.map(function (t, i) { return { v: i + 1, label: "trial " + t }; });
    var a = axes(s, [0.5, trials.length + 0.5], [Math.max(0, lo - margin), hi + margin],
                 "trial", "lap time (s)", ticks);
    var ctx = s.ctx;
    trials.forEach(function (t, i) {
      var mine = laps.filter(function (l) { return l.trial === t; });
      mine.forEach(function (l, k) {
        var jitter = mine.length > 1 ? (k / (mine.length - 1) - 0.5) * 0.3 : 0;
        ctx.fillStyle = LAP_COLORS[(l.lap - 1) % LAP_COLORS.length];
        ctx.beginPath();
        ctx.arc(a.x(i + 1 + jitter), a.y(l.time_s), 5, 0, 2 * Math.PI);
        ctx.fill();
      });
      if (mine.length) {
        var sorted = mine.map(function (l) { return l.time_s; }).sort(function (p, q) { return p - q; });
        var mid = sorted.length % 2 ? sorted[(sorted.length - 1) / 2]
          : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
        ctx.strokeStyle = INK;
        ctx.lineWidth = 2;
        ctx.beginPath();
        ctx.moveTo(a.x(i + 0.7), a.y(mid)); ctx.lineTo(a.x(i + 1.3), a.y(mid));
        ctx.stroke();
      }
    });
    var spread = data.lap_time_spread;
    ctx.fillStyle = INK;
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    ctx.fillText("best " + raceTime(spread.min) + " · median " + raceTime(spread.median) +
                 " · worst " + raceTime(spread.max) + " · σ " + spread.stdev.toFixed(3) + " s",
                 a.left + 6, a.top + 4);
  }

  function drawActions(trial) {
    var figure = section.querySelector("[data-actions-figure]");
    figure.hidden = data.action_space !== "discrete";
    if (figure.hidden) return;
    var rows = trial.actions ? trial.actions.length : 0, top = 12, rowH = 24;
    var canvas = section.querySelector('[data-chart="actions"]');
    canvas.dataset.w = canvas.dataset.w || canvas.width;
    canvas.dataset.h = Math.max(120, top * 2 + rows * rowH); // a row per action, up to 30
    var s = surface("actions"), ctx = s.ctx;
    if (!trial.actions) {
      emptyNote(s, "this trial's replay was kept before the actions were recorded");
      return;
    }
    var total = trial.actions.reduce(function (n, a) { return n + a.count; }, 0);
    var most = Math.max.apply(null, trial.actions.map(function (a) { return a.count; }).concat([1]));
    var labelW = 150, barX = labelW + 8, barMax = s.w - barX - 70;
    ctx.textBaseline = "middle";
    trial.actions.forEach(function (a, i) {
      var y = top + i * rowH, mid = y + rowH / 2;
      ctx.fillStyle = INK;
      ctx.textAlign = "right";
      ctx.fillText("#" + a.index + "  " + a.steering_deg.toFixed(1) + "°, " + a.speed.toFixed(2) +
                   " m/s", labelW, mid);
      ctx.fillStyle = GRID;
      ctx.fillRect(barX, y + 3, barMax, rowH - 6);
      ctx.fillStyle = LAP_COLORS[0];
      ctx.fillRect(barX, y + 3, barMax * a.count / most, rowH - 6);
      ctx.fillStyle = a.count ? INK : MUTED;
      ctx.textAlign = "left";
      ctx.fillText(total ? (100 * a.count / total).toFixed(1) + " %" : "–", barX + barMax + 6, mid);
    });
  }

  function show(number) {
    var trial = data.trials.filter(function (t) { return t.trial === number; })[0];
    if (!trial) return;
    var speeds = trial.samples.speed;
    var top = speeds.length ? Math.max.apply(null, speeds) : 0;
    var best = trial.lap_times_s.length ? Math.min.apply(null, trial.lap_times_s) : null;
    summary.textContent = "trial " + trial.trial + ": " + trial.status.replace("_", " ") + ", " +
      trial.lap_times_s.length + " laps" + (best !== null ? ", best " + raceTime(best) : "") +
      ", " + trial.off_tracks.length + " off-track" + (trial.off_tracks.length === 1 ? "" : "s") +
      ", top speed " + top.toFixed(2) + " m/s";
    drawLine(trial);
    drawAlongTrack("speed", trial, "speed", [0, Math.max(1, Math.ceil(top))], "speed (m/s)");
    drawAlongTrack("steering", trial, "steering_deg", [-MAX_STEER_DEG, MAX_STEER_DEG],
                   "steering (°)");
    drawActions(trial);
  }

  say("Loading the analysis…");
  fetch(section.dataset.analysisUrl, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
    .then(function (response) {
      if (!response.ok) throw new Error("the analysis could not be loaded (HTTP " + response.status + ")");
      return response.json();
    })
    .then(function (json) {
      data = json;
      if (!data.trials.length || !data.track) { say("No replays to analyse."); return; }
      data.trials.forEach(function (t) {
        var option = document.createElement("option");
        option.value = String(t.trial);
        option.textContent = "Trial " + t.trial + (t.trial === data.ranked_trial ? " (ranked)" : "");
        select.appendChild(option);
      });
      var first = data.ranked_trial || data.trials[0].trial;
      select.value = String(first);
      select.addEventListener("change", function () { show(Number(select.value)); });
      controls.hidden = false;
      say("");
      show(first);
      drawLaps();
    })
    .catch(function (err) { say(err.message); });
})();
