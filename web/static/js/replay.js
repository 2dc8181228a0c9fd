/* Paddock replay viewer: a top-down canvas of the track and every car of one race run.
 *
 * The page (templates/replays/view.html) holds a #replay-viewer element whose data-src is
 * the replay file; replay_format.js decodes it. Playback interpolates between the 15 Hz
 * frames on requestAnimationFrame; the address keeps the moment (#t=12.34) while paused so
 * it can be shared. The run's obstacles (format 3 on) are drawn as boxes under the cars; a box
 * a car runs into flashes for a moment. With a ghost (data-ghost-src: another run of the same
 * race) the ghost's car is drawn translucent beside this run's, with the live delta and the
 * sector table of compare.js. window.paddockReplay is a small read-only hook for tests and the
 * benchmark: stats(), state(), sample(frame, car), incidents(), obstacles() and compare().
 */
(function () {
  "use strict";

  const root = document.getElementById("replay-viewer");
  const Format = window.PaddockReplayFormat;
  const Compare = window.PaddockCompare;
  if (!root || !Format) return;

  const FLAGS = Format.FLAGS;
  const SPEEDS = [0.25, 0.5, 1, 2, 4, 8];
  const PALETTE = ["#e5383b", "#2d7ff9", "#ffc300", "#2ec27e", "#b15cf0", "#ff7b1c",
    "#19c3d6", "#f15bb5", "#9bd12f", "#c8a27a", "#8e9aaf", "#ffffff"];
  const GRASS = "#2f5a35";
  const ASPHALT = "#4b5058";
  const BODY = { rear: 0.06, front: 0.24, half: 0.10, wheelbase: 0.165 }; // metres
  // evaluator/car.py: the body is two discs of this radius, this far ahead of the rear axle.
  const CONTACT = { radius: 0.10, discs: [0.03, 0.15] }; // metres
  const CONTACT_SLACK_M = 0.01; // the replay's millimetre grid, and then some
  const BOX_FILL = "#c4a06c"; // cardboard, as evaluator/render.py draws obstacles
  const BOT_COLOR = "#b0b4ba"; // a head-to-bot race's bot cars: grey, named by the replay
  const BOX_EDGE = "#6e502d";
  const BOX_HIT = "#ff3b30"; // the outline of a box a car has just run into
  const BOX_HIT_S = 2.0; // ... for this long
  const GHOST_FILL = "rgba(255, 255, 255, 0.5)"; // the ghost's car: translucent white
  const GHOST_EDGE = "#ffffff"; // ... with a dashed outline
  const MIN_BOX_PX = 6; // at any zoom a box is drawn at least this wide (CSS pixels)
  const MIN_CAR_PX = 16; // at any zoom a car is drawn at least this long (CSS pixels)
  const FOLLOW_SPAN_M = 4; // following a car: metres across the shorter side of the view
  const FOLLOW_MIN_ZOOM = 2.5; // ... and at least this much closer than the whole track
  const FIT_MARGIN = 1.06; // whole track: a little room around the borders
  const INCIDENT_LEAD_S = 1.0; // a jump lands this long before the incident
  const HIGHLIGHT_S = 3.0; // how long the car of an incident is ringed after a jump
  const LEGEND_INTERVAL_MS = 100; // the standings table updates at most this often
  const HASH_INTERVAL_MS = 250; // the address is rewritten at most this often
  const SEEK_STEP_S = 5;
  const MAX_RUN_SAMPLES = 20000;
  const KIND_LABEL = { off_track: "Off track", collision: "Collision", overtake: "Overtake" };

  const $ = (sel) => root.querySelector(sel);
  const el = {
    canvas: $(".replay-canvas"), message: $(".replay-message"), note: $(".replay-note"),
    play: $("[data-action=play]"), slider: $(".replay-slider"), time: $(".replay-time"),
    speed: $(".replay-speed"), follow: $(".replay-follow"),
    standings: $(".replay-standings tbody"),
    delta: $(".replay-delta-value"), sectors: $(".replay-sectors tbody"),
  };
  const ctx = el.canvas.getContext("2d");

  const state = {
    replay: null, ghost: null, duration: 0, time: 0, playing: false, speed: 1, follow: -1,
    laps: null, deltaText: null,
    positions: null, incidents: [], finish: [], paths: null, bounds: null, hits: [],
    lastTick: 0, raf: 0, lastIncident: null, highlight: null, error: null,
    legendAt: 0, legendCache: [], rowOrder: "", hashTimer: 0, hashAt: 0,
  };
  const stats = {
    scriptMs: performance.now(), firstFrameMs: null, fetchMs: null, decodeMs: null, draws: 0, drawTotalMs: 0,
    drawMaxMs: 0, run: null,
  };

  root.hidden = false;
  load();

  // ------------------------------------------------------------------------------ loading
  async function fetchBytes(src) {
    const response = await fetch(src, { credentials: "same-origin" });
    if (!response.ok) throw new Error(`the server answered HTTP ${response.status}`);
    return response.arrayBuffer();
  }

  async function load() {
    let data, ghostData = null;
    const t0 = performance.now();
    const ghostSrc = Compare ? root.dataset.ghostSrc : null;
    try {
      [data, ghostData] = await Promise.all([fetchBytes(root.dataset.src),
        ghostSrc ? fetchBytes(ghostSrc) : Promise.resolve(null)]);
    } catch (err) {
      fail(`Could not load the replay: ${err.message}.`);
      return;
    }
    const t1 = performance.now();
    try {
      const [run, ghost] = await Promise.all([Format.decode(data),
        ghostData ? Format.decode(ghostData) : Promise.resolve(null)]);
      state.replay = run;
      if (ghost) state.ghost = { replay: ghost };
    } catch (err) {
      const why = err instanceof Format.ReplayFormatError ? err.message : String(err);
      fail(`This replay cannot be shown: ${why}.`);
      return;
    }
    stats.fetchMs = t1 - t0;
    stats.decodeMs = performance.now() - t1;
    setup();
  }

  function fail(message) {
    state.error = message;
    el.message.textContent = message;
    el.message.classList.add("error");
    el.message.hidden = false;
    root.classList.add("failed");
  }

  function setup() {
    const started = performance.now();
    const r = state.replay;
    const laps = r.meta && r.meta.race && r.meta.race.laps;
    state.laps = Number.isInteger(laps) ? laps : (parseInt(root.dataset.laps, 10) || null);
    state.labels = carLabels(r);
    state.paths = trackPaths(r.track);
    state.bounds = trackBounds(r.track);
    state.positions = Format.racePositions(r);
    state.hits = obstacleHits(r);
    state.finish = r.cars.map((c) => {
      for (let f = 0; f < r.frames; f++) if (c.flags[f] & FLAGS.PARKED) return f * r.dt;
      return null;
    });
    state.incidents = Format.incidents(r, state.positions);
    state.duration = r.duration;
    if (state.ghost) setupGhost(state.ghost, r);
    buildControls(r);
    buildStandings(r);
    new ResizeObserver(resize).observe(el.canvas.parentElement);
    resize();
    el.message.hidden = true;
    const fromHash = hashTime();
    seek(fromHash !== null ? fromHash : parseFloat(root.dataset.start) || 0, { hash: false });
    stats.setupMs = performance.now() - started;
    drawNow();
    stats.firstFrameMs = performance.now();
    stats.firstDrawMs = stats.firstFrameMs - started - stats.setupMs;
    window.addEventListener("hashchange", () => {
      const t = hashTime();
      if (t !== null && Math.abs(t - state.time) > 0.005) seek(t, { hash: false });
    });
  }

  function setupGhost(g, r) {
    let label = {};
    try {
      label = JSON.parse(root.dataset.ghost || "{}");
    } catch (err) {
      label = {};
    }
    g.label = { name: label.name || "ghost", model: label.model || "" };
    g.line = Compare.distanceLine(g.replay, 0, FLAGS.PARKED);
    g.run = Compare.distanceLine(r, 0, FLAGS.PARKED);
    state.duration = Math.max(r.duration, g.replay.duration);
    const laps = state.laps || 1;
    g.sectors = Compare.sectors(g.run, g.line, laps);
    buildSectors(g.sectors);
  }

  function carLabels(r) {
    let server = [];
    try {
      server = JSON.parse(root.dataset.cars || "[]");
    } catch (err) {
      server = [];
    }
    return r.cars.map((c, i) => {
      const s = server[i] || {};
      if (c.bot) return { name: c.name || `bot ${i}`, model: "built-in bot", color: BOT_COLOR };
      return { name: s.name || c.name || `car ${i + 1}`, model: s.model || c.name,
        color: PALETTE[((c.color % PALETTE.length) + PALETTE.length) % PALETTE.length] };
    });
  }

  // ----------------------------------------------------------------------- derived data
  function polyline(pts, closed) {
    const p = new Path2D();
    p.moveTo(pts.x[0], pts.y[0]);
    for (let i = 1; i < pts.x.length; i++) p.lineTo(pts.x[i], pts.y[i]);
    if (closed) p.closePath();
    return p;
  }

  function trackPaths(track) {
    const surface = new Path2D();
    surface.addPath(polyline(track.left, true));
    surface.addPath(polyline(track.right, true));
    const start = new Path2D();
    start.moveTo(track.left.x[0], track.left.y[0]);
    start.lineTo(track.right.x[0], track.right.y[0]);
    return { surface, left: polyline(track.left, true), right: polyline(track.right, true),
      center: polyline(track.center, true), start };
  }

  function trackBounds(track) {
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    for (const side of [track.left, track.right, track.center]) {
      for (let i = 0; i < side.x.length; i++) {
        minX = Math.min(minX, side.x[i]); maxX = Math.max(maxX, side.x[i]);
        minY = Math.min(minY, side.y[i]); maxY = Math.max(maxY, side.y[i]);
      }
    }
    return { cx: (minX + maxX) / 2, cy: (minY + maxY) / 2, w: maxX - minX, h: maxY - minY };
  }

  /**
   * Which car ran into which box when: {obstacle, car, frame, time} for every frame where a
   * car carries the collision flag and one of its contact discs reaches the box (the flag
   * alone does not say whether the car touched a box or another car).
   */
  function obstacleHits(r) {
    const hits = [];
    (r.obstacles || []).forEach((box, k) => {
      const reach = CONTACT.radius + box.radius + CONTACT_SLACK_M;
      r.cars.forEach((c, i) => {
        for (let f = 0; f < r.frames; f++) {
          if (!(c.flags[f] & FLAGS.COLLISION)) continue;
          const touches = CONTACT.discs.some((d) => Math.hypot(
            c.x[f] + d * Math.cos(c.yaw[f]) - box.x, c.y[f] + d * Math.sin(c.yaw[f]) - box.y,
          ) < reach);
          if (touches) hits.push({ obstacle: k, car: i, frame: f, time: f * r.dt });
        }
      });
    });
    return hits;
  }

  // --------------------------------------------------------------------------- sampling
  function wrapAngle(a) {
    return a - 2 * Math.PI * Math.round(a / (2 * Math.PI));
  }

  /** A car's pose at time t, interpolated between frames (never across a reset). */
  function pose(i, t) {
    const r = state.replay;
    const p = poseIn(r, i, t);
    p.position = state.positions[p.frame * r.cars.length + i];
    return p;
  }

  /** Car i of replay r at time t (its last frame once its run is over). */
  function poseIn(r, i, t) {
    const c = r.cars[i];
    let f = Math.max(0, Math.min(t / r.dt, r.frames - 1));
    let a0 = Math.floor(f);
    let a = f - a0;
    let a1 = Math.min(a0 + 1, r.frames - 1);
    if (a > 0 && (c.flags[a1] & FLAGS.RESET)) {
      if (a >= 0.5) a0 = a1;
      a = 0;
    }
    if (a === 0) a1 = a0;
    const near = a >= 0.5 ? a1 : a0;
    return {
      x: c.x[a0] + (c.x[a1] - c.x[a0]) * a,
      y: c.y[a0] + (c.y[a1] - c.y[a0]) * a,
      yaw: c.yaw[a0] + wrapAngle(c.yaw[a1] - c.yaw[a0]) * a,
      steering: c.steering[a0] + (c.steering[a1] - c.steering[a0]) * a,
      speed: c.speed[a0] + (c.speed[a1] - c.speed[a0]) * a,
      frame: near, flags: c.flags[near], laps: c.laps[near],
    };
  }

  // ---------------------------------------------------------------------------- drawing
  function resize() {
    const box = el.canvas.parentElement.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(box.width * dpr));
    const h = Math.max(1, Math.round(box.height * dpr));
    if (el.canvas.width !== w || el.canvas.height !== h) {
      el.canvas.width = w;
      el.canvas.height = h;
    }
    requestDraw();
  }

  function camera(W, H, poses) {
    const b = state.bounds;
    const whole = Math.min(W / (b.w * FIT_MARGIN || 1), H / (b.h * FIT_MARGIN || 1));
    if (state.follow >= 0) {
      const p = poses[state.follow];
      const ahead = BODY.wheelbase / 2;
      return { cx: p.x + Math.cos(p.yaw) * ahead, cy: p.y + Math.sin(p.yaw) * ahead,
        scale: Math.max(Math.min(W, H) / FOLLOW_SPAN_M, whole * FOLLOW_MIN_ZOOM) };
    }
    return { cx: b.cx, cy: b.cy, scale: whole };
  }

  function drawNow() {
    const started = performance.now();
    const r = state.replay;
    const W = el.canvas.width, H = el.canvas.height;
    const dpr = window.devicePixelRatio || 1;
    const poses = r.cars.map((c, i) => pose(i, state.time));
    const cam = camera(W, H, poses);
    const s = cam.scale;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = GRASS;
    ctx.fillRect(0, 0, W, H);
    ctx.setTransform(s, 0, 0, -s, W / 2 - cam.cx * s, H / 2 + cam.cy * s);
    drawTrack(s, dpr);
    drawObstacles(s, dpr);
    const carScale = Math.max(1, (MIN_CAR_PX * dpr) / ((BODY.front + BODY.rear) * s));
    const ghostPose = state.ghost ? poseIn(state.ghost.replay, 0, state.time) : null;
    if (ghostPose) drawGhost(ghostPose, s, dpr, carScale);
    const order = poses.map((p, i) => i).filter((i) => i !== state.follow);
    if (state.follow >= 0) order.push(state.follow);
    for (const i of order) drawCar(i, poses[i], s, dpr, carScale);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    const carPx = carScale * s * (BODY.front + BODY.rear);
    if (r.cars.length > 1) {
      for (const i of order) drawTag(poses[i], String(poses[i].position),
        state.labels[i].color, cam, W, H, dpr, carPx);
    }
    if (ghostPose) drawTag(ghostPose, "G", GHOST_EDGE, cam, W, H, dpr, carPx);
    drawHud(poses, dpr);
    const took = performance.now() - started;
    stats.draws += 1;
    stats.drawTotalMs += took;
    stats.drawMaxMs = Math.max(stats.drawMaxMs, took);
    if (stats.run && state.playing && stats.run.drawMs.length < MAX_RUN_SAMPLES) {
      stats.run.drawMs.push(took);
    }
  }

  function drawTrack(s, dpr) {
    const p = state.paths;
    ctx.fillStyle = ASPHALT;
    ctx.fill(p.surface, "evenodd");
    ctx.strokeStyle = "#f2f2f2";
    ctx.lineWidth = (2 * dpr) / s;
    ctx.stroke(p.left);
    ctx.stroke(p.right);
    ctx.setLineDash([(8 * dpr) / s, (8 * dpr) / s]);
    ctx.strokeStyle = "rgba(255, 214, 10, 0.55)";
    ctx.lineWidth = dpr / s;
    ctx.stroke(p.center);
    ctx.setLineDash([]);
    ctx.strokeStyle = "#ffffff";
    ctx.lineWidth = Math.max(0.05, (4 * dpr) / s);
    ctx.stroke(p.start);
  }

  function drawObstacles(s, dpr) {
    const boxes = state.replay.obstacles;
    if (!boxes) return;
    boxes.forEach((box, k) => {
      const half = Math.max(box.radius, (MIN_BOX_PX * dpr) / (2 * s));
      const hit = state.hits.some((h) => h.obstacle === k && state.time >= h.time &&
        state.time <= h.time + BOX_HIT_S);
      ctx.fillStyle = BOX_FILL;
      ctx.fillRect(box.x - half, box.y - half, 2 * half, 2 * half);
      ctx.beginPath(); // the tape across the lid, so a box never reads as a car
      ctx.moveTo(box.x - half, box.y); ctx.lineTo(box.x + half, box.y);
      ctx.moveTo(box.x, box.y - half); ctx.lineTo(box.x, box.y + half);
      ctx.strokeStyle = BOX_EDGE;
      ctx.lineWidth = dpr / s;
      ctx.stroke();
      ctx.strokeStyle = hit ? BOX_HIT : BOX_EDGE;
      ctx.lineWidth = ((hit ? 3 : 1.5) * dpr) / s;
      ctx.strokeRect(box.x - half, box.y - half, 2 * half, 2 * half);
    });
  }

  function drawGhost(p, s, dpr, k) {
    ctx.save();
    ctx.translate(p.x, p.y);
    ctx.rotate(p.yaw);
    ctx.scale(k, k);
    ctx.beginPath();
    ctx.roundRect(-BODY.rear, -BODY.half * 0.8, BODY.rear + BODY.front, BODY.half * 1.6, 0.04);
    ctx.fillStyle = GHOST_FILL;
    ctx.fill();
    ctx.setLineDash([(3 * dpr) / (s * k), (2 * dpr) / (s * k)]);
    ctx.lineWidth = (1.5 * dpr) / (s * k);
    ctx.strokeStyle = GHOST_EDGE;
    ctx.stroke();
    ctx.restore();
  }

  function drawCar(i, p, s, dpr, k) {
    const color = state.labels[i].color;
    const hl = state.highlight;
    ctx.save();
    ctx.translate(p.x, p.y);
    if (p.flags & FLAGS.OFF_TRACK || (hl && hl.car === i && state.time <= hl.until)) {
      ctx.beginPath();
      ctx.arc(BODY.front / 2 * Math.cos(p.yaw) * k, BODY.front / 2 * Math.sin(p.yaw) * k,
        0.32 * k, 0, 2 * Math.PI);
      ctx.strokeStyle = p.flags & FLAGS.OFF_TRACK ? "#ff3b30" : "#ffffff";
      ctx.lineWidth = (2.5 * dpr) / s;
      ctx.stroke();
    }
    ctx.rotate(p.yaw);
    ctx.scale(k, k);
    ctx.globalAlpha = p.flags & FLAGS.PENALTY ? 0.45 : p.flags & FLAGS.GHOST ? 0.6 : 1;
    const lw = (1.2 * dpr) / (s * k);
    ctx.fillStyle = "#15171a"; // wheels: rear fixed, front turned by the steering angle
    for (const side of [-1, 1]) {
      ctx.fillRect(-0.025, side * 0.08 - 0.012, 0.05, 0.024);
      ctx.save();
      ctx.translate(BODY.wheelbase, side * 0.08);
      ctx.rotate(p.steering);
      ctx.fillRect(-0.025, -0.012, 0.05, 0.024);
      ctx.restore();
    }
    ctx.beginPath();
    ctx.roundRect(-BODY.rear, -BODY.half * 0.8, BODY.rear + BODY.front, BODY.half * 1.6, 0.04);
    ctx.fillStyle = color;
    ctx.fill();
    ctx.lineWidth = lw;
    ctx.strokeStyle = p.flags & FLAGS.COLLISION ? "#ff9500" : "rgba(0, 0, 0, 0.75)";
    if (p.flags & FLAGS.COLLISION) ctx.lineWidth = lw * 3;
    ctx.stroke();
    ctx.fillStyle = "rgba(20, 24, 30, 0.8)"; // cockpit, towards the front
    ctx.fillRect(0.07, -0.045, 0.07, 0.09);
    ctx.restore();
  }

  function drawTag(p, text, color, cam, W, H, dpr, carPx) {
    const sx = W / 2 + (p.x - cam.cx) * cam.scale;
    const sy = H / 2 - (p.y - cam.cy) * cam.scale;
    ctx.font = `600 ${Math.round(11 * dpr)}px system-ui, sans-serif`;
    const w = ctx.measureText(text).width + 8 * dpr;
    const h = 15 * dpr;
    const x = sx - w / 2, y = sy - carPx * 0.7 - h;
    ctx.fillStyle = "rgba(12, 16, 24, 0.78)";
    ctx.fillRect(x, y, w, h);
    ctx.fillStyle = color;
    ctx.fillRect(x, y + h - 2 * dpr, w, 2 * dpr);
    ctx.fillStyle = "#ffffff";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText(text, sx, y + h / 2 - dpr);
  }

  function drawHud(poses, dpr) {
    const r = state.replay;
    const lines = [`${clock(state.time)} / ${clock(state.duration)}  ·  ${state.speed}×`];
    if (state.follow >= 0) {
      const p = poses[state.follow];
      lines.push(state.labels[state.follow].name);
      lines.push(`${lapText(state.follow, p)}  ·  ${p.speed.toFixed(2)} m/s  ·  ` +
        `P${p.position}/${r.cars.length}`);
    } else if (r.cars.length === 1) {
      lines.push(`${lapText(0, poses[0])}  ·  ${poses[0].speed.toFixed(2)} m/s`);
    }
    if (state.ghost) lines.push(`${deltaText(currentDelta())} vs ghost ${state.ghost.label.name}`);
    const size = Math.round(13 * dpr);
    ctx.font = `600 ${size}px system-ui, sans-serif`;
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    const pad = 8 * dpr;
    const width = Math.max(...lines.map((l) => ctx.measureText(l).width)) + 2 * pad;
    const height = lines.length * size * 1.35 + 2 * pad - size * 0.35;
    ctx.fillStyle = "rgba(12, 16, 24, 0.72)";
    ctx.fillRect(pad, pad, width, height);
    ctx.fillStyle = "#ffffff";
    lines.forEach((l, k) => ctx.fillText(l, 2 * pad, 2 * pad + k * size * 1.35));
  }

  function requestDraw() {
    if (!state.replay || state.raf) return;
    state.raf = requestAnimationFrame(tick);
  }

  function tick(now) {
    state.raf = 0;
    if (state.playing) {
      const run = stats.run;
      if (state.lastTick) {
        const interval = now - state.lastTick;
        state.time += (interval / 1000) * state.speed;
        if (run && run.intervals.length < MAX_RUN_SAMPLES) run.intervals.push(interval);
      } else if (run && run.startedAt === null) {
        run.startedAt = now;
      }
      if (run) run.lastAt = now;
      state.lastTick = now;
      if (state.time >= state.duration) {
        state.time = state.duration;
        setPlaying(false);
      }
    }
    drawNow();
    syncControls(now);
    if (state.playing) state.raf = requestAnimationFrame(tick);
  }

  // --------------------------------------------------------------------------- controls
  function buildControls(r) {
    el.slider.max = String(Math.round(state.duration / r.dt));
    for (const control of root.querySelectorAll("button, input, select")) {
      control.disabled = false;
    }
    for (const [i, label] of state.labels.entries()) {
      const opt = document.createElement("option");
      opt.value = String(i);
      opt.textContent = `Follow ${label.name}`;
      el.follow.appendChild(opt);
    }
    root.querySelector("[data-action=play]").addEventListener("click", togglePlay);
    root.querySelector("[data-action=back]").addEventListener("click", () => step(-1));
    root.querySelector("[data-action=forward]").addEventListener("click", () => step(1));
    root.querySelector("[data-action=incident]").addEventListener("click", nextIncident);
    el.slider.addEventListener("input", () => {
      seek(parseInt(el.slider.value, 10) * r.dt, { slider: false });
    });
    el.speed.addEventListener("change", () => setSpeed(parseFloat(el.speed.value)));
    el.follow.addEventListener("change", () => setFollow(el.follow.value === "" ? -1
      : parseInt(el.follow.value, 10)));
    document.addEventListener("keydown", onKey);
    const form = document.querySelector(".replay-compare");
    if (form && form.elements.t) {
      form.addEventListener("submit", () => { form.elements.t.value = state.time.toFixed(2); });
    }
  }

  function onKey(e) {
    if (!state.replay || e.ctrlKey || e.metaKey || e.altKey) return;
    const tag = e.target.tagName;
    const onRange = tag === "INPUT" && e.target.type === "range";
    if (tag === "TEXTAREA" || tag === "SELECT" || (tag === "INPUT" && !onRange)) return;
    const arrowsNative = onRange && ["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown"]
      .includes(e.key);
    if (arrowsNative) return; // the slider moves one frame by itself
    // Space and Enter on a focused button or link do what that control does, not play.
    const activates = tag === "BUTTON" || tag === "A" || tag === "SUMMARY";
    if (activates && (e.key === " " || e.key === "Enter")) return;
    switch (e.key) {
      case " ": togglePlay(); break;
      case "ArrowLeft": e.shiftKey ? seek(state.time - SEEK_STEP_S) : step(-1); break;
      case "ArrowRight": e.shiftKey ? seek(state.time + SEEK_STEP_S) : step(1); break;
      case "ArrowUp": changeSpeed(1); break;
      case "ArrowDown": changeSpeed(-1); break;
      case "n": case "N": nextIncident(); break;
      case "f": case "F": cycleFollow(); break;
      case "Home": seek(0); break;
      case "End": seek(state.duration); break;
      default: return;
    }
    e.preventDefault();
  }

  function togglePlay() {
    if (!state.replay) return;
    if (!state.playing && state.time >= state.duration) state.time = 0;
    setPlaying(!state.playing);
  }

  function setPlaying(on) {
    state.playing = on;
    state.lastTick = 0;
    el.play.textContent = on ? "❚❚ Pause" : "▶ Play";
    el.play.setAttribute("aria-label", on ? "Pause" : "Play");
    el.play.setAttribute("aria-pressed", on ? "true" : "false");
    if (on) {
      stats.run = { speed: state.speed, startedAt: null, lastAt: null, intervals: [],
        drawMs: [] };
      requestDraw();
    } else {
      updateHash();
      requestDraw();
    }
  }

  function seek(t, opts = {}) {
    const r = state.replay;
    if (!r) return;
    state.time = Math.max(0, Math.min(Number.isFinite(t) ? t : 0, state.duration));
    state.lastTick = 0;
    state.legendAt = 0;
    if (opts.slider !== false) el.slider.value = String(Math.round(state.time / r.dt));
    el.time.textContent = `${clock(state.time)} / ${clock(state.duration)}`;
    if (opts.hash !== false) updateHash();
    requestDraw();
  }

  function step(frames) {
    const r = state.replay;
    if (!r) return;
    if (state.playing) setPlaying(false);
    seek((Math.round(state.time / r.dt) + frames) * r.dt);
  }

  function setSpeed(v) {
    state.speed = SPEEDS.includes(v) ? v : 1;
    el.speed.value = String(state.speed);
    if (stats.run) stats.run.speed = state.speed;
    requestDraw();
  }

  function changeSpeed(dir) {
    const k = SPEEDS.indexOf(state.speed) + dir;
    setSpeed(SPEEDS[Math.max(0, Math.min(SPEEDS.length - 1, k))]);
  }

  function setFollow(i) {
    const n = state.replay.cars.length;
    state.follow = Number.isInteger(i) && i >= 0 && i < n ? i : -1;
    el.follow.value = state.follow < 0 ? "" : String(state.follow);
    state.rowOrder = ""; // refresh which row is marked as followed
    state.legendAt = 0;
    requestDraw();
  }

  function cycleFollow() {
    const n = state.replay.cars.length;
    setFollow(state.follow + 1 >= n ? -1 : state.follow + 1);
  }

  function nextIncident() {
    const r = state.replay;
    if (!r) return;
    const after = state.time + INCIDENT_LEAD_S + 1e-6;
    const inc = state.incidents.find((x) => x.time > after);
    if (!inc) {
      el.note.textContent = "No more incidents after this moment.";
      return;
    }
    state.lastIncident = inc;
    state.highlight = { car: inc.car, until: inc.time + HIGHLIGHT_S };
    const box = inc.kind === "collision" &&
      state.hits.some((h) => h.car === inc.car && h.frame === inc.frame);
    el.note.textContent = `${KIND_LABEL[inc.kind]}${box ? " with a box" : ""}: ` +
      `${state.labels[inc.car].name} at ${clock(inc.time)}`;
    seek(Math.max(0, inc.time - INCIDENT_LEAD_S));
  }

  function syncControls(now) {
    const r = state.replay;
    if (state.playing) el.slider.value = String(Math.round(state.time / r.dt));
    el.time.textContent = `${clock(state.time)} / ${clock(state.duration)}`;
    if (!state.playing || now - state.legendAt >= LEGEND_INTERVAL_MS) {
      state.legendAt = now;
      updateStandings();
      if (state.ghost) updateDelta();
    }
  }

  // --------------------------------------------------------------------------- standings
  function buildStandings(r) {
    state.rows = r.cars.map((c, i) => {
      const tr = document.createElement("tr");
      const cells = ["num", "", "num", "num", ""].map((cls) => {
        const td = document.createElement("td");
        if (cls) td.className = cls;
        tr.appendChild(td);
        return td;
      });
      const swatch = document.createElement("span");
      swatch.className = "replay-swatch";
      swatch.style.backgroundColor = state.labels[i].color; // CSSOM, allowed by the CSP
      const button = document.createElement("button");
      button.type = "button";
      button.className = "link replay-car";
      button.textContent = state.labels[i].name;
      button.title = `Follow ${state.labels[i].name} (${state.labels[i].model})`;
      button.addEventListener("click", () => setFollow(state.follow === i ? -1 : i));
      cells[1].append(swatch, button);
      if (state.labels[i].model && state.labels[i].model !== state.labels[i].name) {
        const model = document.createElement("small");
        model.className = "muted";
        model.textContent = state.labels[i].model;
        cells[1].appendChild(model);
      }
      el.standings.appendChild(tr);
      return { tr, cells: [cells[0], cells[2], cells[3], cells[4]] };
    });
    state.legendCache = r.cars.map(() => ["", "", "", ""]);
  }

  function updateStandings() {
    const r = state.replay;
    const poses = r.cars.map((c, i) => pose(i, state.time));
    poses.forEach((p, i) => {
      const values = [String(p.position), lapText(i, p), p.speed.toFixed(2),
        carState(i, p)];
      const cache = state.legendCache[i];
      values.forEach((v, k) => {
        if (cache[k] !== v) {
          cache[k] = v;
          state.rows[i].cells[k].textContent = v;
        }
      });
    });
    const order = poses.map((p, i) => i).sort((a, b) => poses[a].position - poses[b].position);
    const key = `${order.join(",")}/${state.follow}`;
    if (key !== state.rowOrder) {
      state.rowOrder = key;
      for (const i of order) {
        state.rows[i].tr.classList.toggle("following", i === state.follow);
        el.standings.appendChild(state.rows[i].tr);
      }
    }
  }

  function lapText(i, p) {
    if (state.replay.cars[i].bot) return "–"; // a bot drives on, counting no laps
    if (p.flags & FLAGS.PARKED) return "done";
    const lap = p.laps + 1;
    return state.laps ? `${Math.min(lap, state.laps)}/${state.laps}` : String(lap);
  }

  function carState(i, p) {
    if (p.flags & FLAGS.PARKED) return `Finished ${clock(state.finish[i] ?? state.time)}`;
    if (p.flags & FLAGS.PENALTY) return "Penalty";
    if (p.flags & FLAGS.OFF_TRACK) return "Off track";
    if (p.flags & FLAGS.GHOST) return "Passing through";
    return "";
  }

  // -------------------------------------------------------------------------- comparison
  function currentDelta() {
    const g = state.ghost;
    return g ? Compare.delta(g.run, g.line, state.time) : null;
  }

  function deltaText(d) {
    if (d === null) return "ghost did not get this far";
    const sign = d > 0.0005 ? "+" : d < -0.0005 ? "−" : "±";
    return `${sign}${Math.abs(d).toFixed(2)} s`;
  }

  function updateDelta() {
    if (!el.delta) return;
    const d = currentDelta();
    const text = deltaText(d);
    if (text === state.deltaText) return;
    state.deltaText = text;
    el.delta.textContent = text;
    el.delta.classList.toggle("gained", d !== null && d < -0.0005);
    el.delta.classList.toggle("lost", d !== null && d > 0.0005);
    el.delta.title = d === null ? "" : d > 0 ? "behind the ghost" : "ahead of the ghost";
  }

  function sectorTime(v) {
    return v === null ? "–" : `${v.toFixed(2)} s`;
  }

  function buildSectors(rows) {
    if (!el.sectors) return;
    const total = { sector: "Total", run: 0, ghost: 0 };
    for (const row of rows) {
      total.run = total.run === null || row.run === null ? null : total.run + row.run;
      total.ghost = total.ghost === null || row.ghost === null ? null : total.ghost + row.ghost;
    }
    for (const row of [...rows, total]) {
      const tr = document.createElement("tr");
      if (row === total) tr.className = "total";
      const better = row.run !== null && (row.ghost === null || row.run < row.ghost) ? "run"
        : row.ghost !== null && (row.run === null || row.ghost < row.run) ? "ghost" : "";
      const diff = row.run !== null && row.ghost !== null ? row.run - row.ghost : null;
      const cells = [String(row.sector), sectorTime(row.run), sectorTime(row.ghost),
        diff === null ? "–" : `${diff > 0 ? "+" : diff < 0 ? "−" : "±"}${Math.abs(diff).toFixed(2)}`];
      cells.forEach((text, k) => {
        const td = document.createElement(k === 0 ? "th" : "td");
        if (k === 0) td.scope = "row";
        else td.className = "num";
        td.textContent = text;
        if ((k === 1 && better === "run") || (k === 2 && better === "ghost")) {
          td.classList.add("better");
          td.textContent = `▲ ${text}`;
          td.title = "the faster of the two";
        }
        tr.appendChild(td);
      });
      el.sectors.appendChild(tr);
    }
  }

  // ------------------------------------------------------------------------ address (#t=)
  function hashTime() {
    const m = /(?:^#|&)t=(\d+(?:\.\d+)?)/.exec(window.location.hash);
    return m ? parseFloat(m[1]) : null;
  }

  function updateHash() {
    if (state.playing || !state.replay) return;
    const wait = state.hashAt + HASH_INTERVAL_MS - performance.now();
    if (wait > 0) {
      if (!state.hashTimer) {
        state.hashTimer = setTimeout(() => { state.hashTimer = 0; updateHash(); }, wait);
      }
      return;
    }
    state.hashAt = performance.now();
    const url = `${window.location.pathname}${window.location.search}#t=${state.time.toFixed(2)}`;
    history.replaceState(history.state, "", url);
  }

  // ----------------------------------------------------------------------------- helpers
  function clock(seconds) {
    const cs = Math.round(seconds * 100);
    const m = Math.floor(cs / 6000);
    const rest = (cs % 6000) / 100;
    return `${m}:${rest.toFixed(2).padStart(5, "0")}`;
  }

  function summary(values) {
    if (!values.length) return { mean: null, max: null, p95: null };
    const sorted = values.slice().sort((a, b) => a - b);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    return { mean, max: sorted[sorted.length - 1],
      p95: sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.95))] };
  }

  // -------------------------------------------------------------------- read-only hook
  window.paddockReplay = Object.freeze({
    /** Timings: first frame (ms since navigation), load, draws, and the current playback run. */
    stats() {
      const run = stats.run;
      let playback = null;
      if (run) {
        const frames = summary(run.intervals);
        const draws = summary(run.drawMs);
        const elapsed = run.startedAt !== null && run.lastAt !== null
          ? run.lastAt - run.startedAt : 0;
        playback = { speed: run.speed, frames: run.intervals.length, elapsedMs: elapsed,
          fps: elapsed > 0 ? (run.intervals.length * 1000) / elapsed : null,
          meanFrameMs: frames.mean, p95FrameMs: frames.p95, worstFrameMs: frames.max,
          meanDrawMs: draws.mean, worstDrawMs: draws.max };
      }
      return { scriptMs: stats.scriptMs, firstFrameMs: stats.firstFrameMs,
        fetchMs: stats.fetchMs,
        decodeMs: stats.decodeMs, setupMs: stats.setupMs, firstDrawMs: stats.firstDrawMs,
        draws: stats.draws,
        meanDrawMs: stats.draws ? stats.drawTotalMs / stats.draws : null,
        worstDrawMs: stats.drawMaxMs, devicePixelRatio: window.devicePixelRatio || 1,
        canvas: [el.canvas.width, el.canvas.height], playback };
    },
    /** Where playback is. */
    state() {
      const r = state.replay;
      return { loaded: !!r, error: state.error, time: state.time,
        frame: r ? Math.round(state.time / r.dt) : null, playing: state.playing,
        speed: state.speed, follow: state.follow, duration: r ? state.duration : null,
        ghost: !!state.ghost,
        frames: r ? r.frames : null, cars: r ? r.cars.length : null,
        lastIncident: state.lastIncident ? { ...state.lastIncident } : null,
        camera: r ? camera(el.canvas.width, el.canvas.height,
          r.cars.map((c, i) => pose(i, state.time))) : null };
    },
    /** Decoded values of car `car` at frame `frame`, and its race position. */
    sample(frame, car) {
      const r = state.replay;
      const c = r.cars[car];
      const kept = (column) => (column ? column[frame] : null); // commands: format 2 on
      return { x: c.x[frame], y: c.y[frame], yaw: c.yaw[frame], steering: c.steering[frame],
        speed: c.speed[frame], progress: c.progress[frame], laps: c.laps[frame],
        commandSteering: kept(c.commandSteering), commandSpeed: kept(c.commandSpeed),
        action: kept(c.action), flags: c.flags[frame],
        position: state.positions[frame * r.cars.length + car] };
    },
    /** The incidents "next incident" goes through. */
    incidents() {
      return state.incidents.map((x) => ({ ...x }));
    },
    /** The comparison with the ghost (null without one): the delta now (seconds behind the
     * ghost, negative ahead), its text, the sector table, and both cars' canvas positions. */
    compare() {
      const g = state.ghost;
      if (!g) return null;
      const W = el.canvas.width, H = el.canvas.height;
      const r = state.replay;
      const cam = camera(W, H, r.cars.map((c, i) => pose(i, state.time)));
      const at = (p) => ({ x: p.x, y: p.y, px: W / 2 + (p.x - cam.cx) * cam.scale,
        py: H / 2 - (p.y - cam.cy) * cam.scale });
      return { delta: currentDelta(), text: el.delta ? el.delta.textContent : null,
        ghost: { ...g.label, duration: g.replay.duration },
        sectors: g.sectors.map((x) => ({ ...x })),
        run: at(poseIn(r, 0, state.time)), ghostCar: at(poseIn(g.replay, 0, state.time)) };
    },
    /** The run's obstacles ({x, y, radius}, metres; null for a replay before format 3), each
     * with its device-pixel centre on the canvas now and the collisions with it. */
    obstacles() {
      const r = state.replay;
      if (!r || !r.obstacles) return null;
      const cam = camera(el.canvas.width, el.canvas.height,
        r.cars.map((c, i) => pose(i, state.time)));
      return r.obstacles.map((box, k) => ({ ...box,
        px: el.canvas.width / 2 + (box.x - cam.cx) * cam.scale,
        py: el.canvas.height / 2 - (box.y - cam.cy) * cam.scale,
        hits: state.hits.filter((h) => h.obstacle === k).map((h) => ({ ...h })) }));
    },
  });
})();
