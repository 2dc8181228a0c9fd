/* Paddock live events (docs/LIVE.md): the event page's countdown, the live view and its
 * overlays. One element carries data-live:
 *
 * - "event" (templates/live/event.html): counts down to data-starts-at, corrected by the
 *   server's clock from the index (data-index), and shows the "Watch live" link once it is live.
 * - "watch" (templates/live/watch.html) and "overlay" (templates/live/overlay.html, one part:
 *   data-part tower, ticker or car): polls the index every second, corrects the clock by its
 *   server_time (offset = server_time − the fetch's midpoint, from the recent fetch with the
 *   shortest round trip), and
 *   shows the slot on air at race time now − on_air_at, the same for every viewer: the track
 *   and cars of the slot's head and segments (data-live-base + "<n>/head.json", "<n>/<k>.json",
 *   immutable and kept once fetched), the timing tower of the segment covering the shown frame,
 *   the ticker of events up to the shown moment (never beyond it) and the bracket. The viewer
 *   may scrub back through the slot's elapsed time and return to live.
 *
 * For tests: document.body.dataset.raceTime (the shown race time, s) and dataset.liveSlot (its
 * slot) are set on every frame; the canvas gets data-ready="1" once cars are drawn on it.
 */
(function () {
  "use strict";

  const root = document.querySelector("[data-live]");
  if (!root) return;

  const POLL_MS = 1000; // the index is cached for a second: polling faster gains nothing
  const EVENT_POLL_MS = 5000; // the event page only needs the clock and the status
  const RETRY_MS = 3000; // after a failed index fetch
  const CLOCK_SAMPLES = 20; // the clock offset comes from the best of this many fetches
  const CLOCK_JUMP_S = 2; // a fetch this far outside the best one's window: a clock jumped
  // Ask for a segment this long after its publication time: a quarter of a second, plus up to
  // half a second drawn once per page, so that many viewers do not all ask at one instant.
  const PUBLISH_MARGIN_S = 0.25 + Math.random() * 0.5;
  const SEGMENT_RETRY_MS = 400; // a segment not published yet (404) is asked again after this
  const PREFETCH_SEGMENTS = 2; // published segments fetched ahead of the shown one
  const MAX_FETCHES = 6; // segment and head requests in flight at once (a browser's per-host)
  const LIVE_SNAP_S = 0.3; // a scrub this close to the live moment is live
  const SCRUB_STEP_S = 5; // Shift+← / → on the slider
  const TICKER_ROWS = { watch: 40, overlay: 5 };
  // The replay viewer's palette (replay.js): a car's color index picks its colour.
  const PALETTE = ["#e5383b", "#2d7ff9", "#ffc300", "#2ec27e", "#b15cf0", "#ff7b1c",
    "#19c3d6", "#f15bb5", "#9bd12f", "#c8a27a", "#8e9aaf", "#ffffff"];
  const FLAGS = { OFF_TRACK: 1, PENALTY: 2, COLLISION: 4, RESET: 32 }; // docs/REPLAY.md
  const GRASS = "#2f5a35";
  const ASPHALT = "#4b5058";
  const BOX_FILL = "#c4a06c";
  const BOX_EDGE = "#6e502d";
  const BODY = { rear: 0.06, front: 0.24, half: 0.08 }; // metres, around the rear axle
  const MIN_CAR_PX = 18; // a car is drawn at least this long (CSS pixels)
  const MIN_BOX_PX = 6;
  const FIT_MARGIN = 1.08;

  // ---------------------------------------------------------------------------- the clock
  const clock = { samples: [], best: null, offset: 0 };

  /** The client's clock in seconds since the epoch (monotonic within the page). */
  function clientNow() {
    return (performance.timeOrigin + performance.now()) / 1000;
  }

  /** The server's clock, as well as the recent fetches tell it. */
  function now() {
    return clientNow() + clock.offset;
  }

  /**
   * Learn the offset from one fetch: server_time (plus the Age a cache in front of the site
   * says it held the reply) − the fetch's midpoint. Of the recent fetches, the one with the
   * shortest round trip is trusted (its error is at most half that round trip): a slow reply
   * or a busy server only widens its own fetch's window, which then does not count.
   */
  function noteServerTime(serverTime, age, sent, received) {
    if (typeof serverTime !== "number") return;
    const sample = { offset: serverTime + age - (sent + received) / 2, trip: received - sent };
    // Both windows cannot hold the true offset: one of the clocks jumped (a computer that
    // slept, a clock set by hand), and the older fetches no longer tell anything.
    const held = clock.samples.length ? clock.best : null;
    if (held && Math.abs(sample.offset - held.offset) > (sample.trip + held.trip) / 2 + CLOCK_JUMP_S) {
      clock.samples = [];
    }
    clock.samples.push(sample);
    if (clock.samples.length > CLOCK_SAMPLES) clock.samples.shift();
    let best = clock.samples[0];
    for (const kept of clock.samples) if (kept.trip <= best.trip) best = kept;
    clock.best = best;
    clock.offset = best.offset;
  }

  async function fetchJSON(url, options) {
    const response = await fetch(url, { credentials: "same-origin", ...options });
    if (!response.ok) {
      const err = new Error(`HTTP ${response.status}`);
      err.status = response.status;
      throw err;
    }
    return response.json();
  }

  /** Fetch the index and correct the clock by it; null when it failed. */
  async function fetchIndex() {
    const sent = clientNow();
    try {
      const response = await fetch(root.dataset.index, { cache: "no-store",
        credentials: "same-origin" });
      if (!response.ok) return null;
      const index = await response.json();
      // A cache in front of the site may say when it served the reply (X-Served-At, see
      // docs/DEPLOY.md) or how long it held it (Age); else the reply's own server_time.
      const servedAt = parseFloat(response.headers.get("X-Served-At") || "");
      const age = parseFloat(response.headers.get("Age") || "0") || 0;
      if (Number.isFinite(servedAt)) noteServerTime(servedAt, 0, sent, clientNow());
      else noteServerTime(index.server_time, age, sent, clientNow());
      return index;
    } catch (err) {
      return null;
    }
  }

  // ------------------------------------------------------------------------- formatting
  function pad2(n) {
    return (n < 10 ? "0" : "") + n;
  }

  /** A race time as m:ss.t. */
  function raceClock(t) {
    const tenths = Math.max(0, Math.floor(t * 10 + 1e-6));
    const minutes = Math.floor(tenths / 600);
    const rest = tenths - minutes * 600;
    return `${minutes}:${pad2(Math.floor(rest / 10))}.${rest % 10}`;
  }

  /** Time left as 4:32, 1:02:03 or 2 d 3 h (rounded up to the second). */
  function countdown(seconds) {
    const s = Math.max(0, Math.ceil(seconds));
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (d >= 2) return `${d} d ${h} h`;
    if (s >= 3600) return `${Math.floor(s / 3600)}:${pad2(m)}:${pad2(sec)}`;
    return `${m}:${pad2(sec)}`;
  }

  /** A lap time as 19.87 or 1:02.34; a dash when there is none. */
  function lapTime(s) {
    if (typeof s !== "number") return "–";
    if (s < 60) return s.toFixed(2);
    const m = Math.floor(s / 60);
    return `${m}:${(s - 60 * m).toFixed(2).padStart(5, "0")}`;
  }

  function gapText(row) {
    if (row.position === 1) return "Leader";
    return typeof row.gap_s === "number" ? `+${row.gap_s.toFixed(2)}` : "–";
  }

  function colorOf(index) {
    const n = PALETTE.length;
    return PALETTE[(((index | 0) % n) + n) % n];
  }

  function make(tag, className, text) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined) el.textContent = text;
    return el;
  }

  // ----------------------------------------------------------------- the event page
  function runCountdown() {
    const out = root.querySelector("[data-countdown]");
    const watch = root.querySelector("[data-watch-live]");
    if (!out || !watch) return;
    const startsAt = parseFloat(root.dataset.startsAt);
    let status = root.dataset.status;
    let timer = 0;
    const tick = () => {
      clearTimeout(timer);
      if (status === "cancelled") {
        out.textContent = "· cancelled";
        return;
      }
      const left = startsAt - now();
      if (status !== "scheduled" || left <= 0) {
        out.hidden = true;
        watch.hidden = false;
        return;
      }
      out.textContent = `· starts in ${countdown(left)}`;
      timer = setTimeout(tick, 1000 - (left * 1000) % 1000 + 20);
    };
    const poll = async () => {
      const index = await fetchIndex();
      if (index) status = index.status;
      if (status === "scheduled") setTimeout(poll, EVENT_POLL_MS);
    };
    tick();
    poll().then(tick);
  }

  if (root.dataset.live === "event") {
    runCountdown();
    return;
  }

  // ----------------------------------------------------------------- the live view
  const OVERLAY = root.dataset.live === "overlay";
  const base = root.dataset.liveBase;
  const $ = (role) => root.querySelector(`[data-role="${role}"]`);
  const el = {
    canvas: root.querySelector(".live-canvas"), message: $("message"), clock: $("clock"),
    slot: $("slot"), next: $("next"), status: $("status"), scrub: $("scrub"),
    golive: $("golive"), tower: $("tower"), ticker: $("ticker"), bracket: $("bracket"),
    bracketBox: $("bracket-box"), after: $("after"), replays: $("replays"),
    champion: $("champion"),
  };
  const ctx = el.canvas ? el.canvas.getContext("2d") : null;

  const S = {
    index: null, records: new Map(), inFlight: 0, failures: 0,
    view: { n: null, behind: 0 }, // behind: seconds behind the live moment (0: live)
    drawn: null, keys: {}, sawLive: false,
  };

  /** What the view keeps of slot n: its head, its segments by k, its events by time. */
  function record(n) {
    let rec = S.records.get(n);
    if (!rec) {
      rec = { n, head: null, segs: new Map(), waiting: new Map(), events: [], track: null };
      S.records.set(n, rec);
    }
    return rec;
  }

  function slotMeta(n) {
    return S.index ? S.index.slots.find((s) => s.n === n) || null : null;
  }

  // Polling ------------------------------------------------------------------------
  async function poll() {
    const index = await fetchIndex();
    if (index) {
      S.failures = 0;
      S.index = index;
      onIndex();
    } else {
      S.failures += 1;
    }
    const over = index && ["finished", "cancelled"].includes(index.status);
    if (!over) setTimeout(poll, index ? POLL_MS : RETRY_MS);
  }

  function onIndex() {
    const ix = S.index;
    if (el.status) {
      el.status.textContent = ix.status.replace(/_/g, " ");
      el.status.className = `badge live-status status-${ix.status}`;
    }
    if (ix.status === "live") S.sawLive = true;
    if (!OVERLAY) {
      renderBracket(ix);
      renderAfter(ix);
    }
  }

  // Where the broadcast is ----------------------------------------------------------
  /**
   * The live moment at server time t: the latest slot whose race time 0 has passed
   * ("on_air" while its race lasts, "between" after it) and the slot after it, or
   * "before" the first slot goes on air.
   */
  function liveMoment(t) {
    const slots = S.index.slots;
    let at = -1;
    slots.forEach((s, i) => {
      if (typeof s.on_air_at === "number" && t >= s.on_air_at) at = i;
    });
    if (at < 0) return { phase: "before", slot: null, next: slots[0] || null, t: 0 };
    const slot = slots[at];
    const raceTime = t - slot.on_air_at;
    const phase = raceTime < slot.duration_s ? "on_air" : "between";
    return { phase, slot, next: slots[at + 1] || null,
      t: Math.min(raceTime, slot.duration_s) };
  }

  /** The slot and race time to show: the live moment, or the scrubbed-back one. */
  function shownMoment(t, live) {
    const v = S.view;
    if (v.behind > 0 && v.n !== null) {
      const meta = slotMeta(v.n);
      if (meta && typeof meta.on_air_at === "number") {
        const shown = t - meta.on_air_at - v.behind;
        const liveHere = live.slot && live.slot.n === v.n;
        if (shown < meta.duration_s && !(liveHere && shown >= live.t - LIVE_SNAP_S)) {
          return { slot: meta, t: Math.max(0, shown), behind: true };
        }
      }
      v.behind = 0; // caught up with the live moment: live again
    }
    v.n = live.slot ? live.slot.n : null;
    return live.slot ? { slot: live.slot, t: live.t, behind: false } : null;
  }

  // Loading -------------------------------------------------------------------------
  function published(meta, k, t) {
    if (typeof meta.released === "number" && k < meta.released) return true;
    const segment = S.index.segment_s || 1, lead = S.index.lead_s || 2;
    return t >= meta.on_air_at + k * segment - lead + PUBLISH_MARGIN_S;
  }

  function wanted(rec, k, t) {
    const meta = slotMeta(rec.n);
    if (!meta || typeof meta.on_air_at !== "number" || k < 0) return false;
    if (typeof meta.segments === "number" && k >= meta.segments) return false;
    if (rec.segs.has(k) || (rec.waiting.get(k) || 0) > performance.now()) return false;
    return published(meta, k, t);
  }

  function load(rec, k) {
    if (S.inFlight >= MAX_FETCHES) return;
    const url = k === "head" ? `${base}${rec.n}/head.json` : `${base}${rec.n}/${k}.json`;
    S.inFlight += 1;
    rec.waiting.set(k, Infinity);
    fetchJSON(url).then((data) => {
      rec.waiting.delete(k);
      if (k === "head") setHead(rec, data);
      else addSegment(rec, k, data);
    }, (err) => {
      rec.waiting.set(k, performance.now() + (err.status === 404 ? SEGMENT_RETRY_MS : RETRY_MS));
    }).finally(() => {
      S.inFlight -= 1;
    });
  }

  /** Ask for what showing slot rec at race time t needs, then what comes next, then the past. */
  function ensureLoaded(rec, raceTime, t) {
    const meta = slotMeta(rec.n);
    if (!meta) return;
    if (!rec.head) {
      loadHead(meta, t);
      return;
    }
    const per = framesPerSegment(rec);
    const f = Math.max(0, Math.floor(raceTime / rec.dt));
    const k0 = Math.floor(f / per), k1 = Math.floor((f + 1) / per);
    const order = [k0, k1];
    for (let k = k1 + 1; k <= k1 + PREFETCH_SEGMENTS; k++) order.push(k);
    for (let k = k0 - 1; k >= 0; k--) order.push(k); // the ticker's past, and scrubbing back
    for (const k of order) {
      if (S.inFlight >= MAX_FETCHES) return;
      if (wanted(rec, k, t)) load(rec, k);
    }
  }

  /** Fetch a slot's head once it is published (with its segment 0). */
  function loadHead(meta, t) {
    if (!meta || typeof meta.on_air_at !== "number") return;
    const rec = record(meta.n);
    if (rec.head || (rec.waiting.get("head") || 0) > performance.now()) return;
    if (published(meta, 0, t)) load(rec, "head");
  }

  function setHead(rec, head) {
    rec.head = head;
    rec.dt = head.dt || (S.index.segment_s || 1) / 15;
    rec.track = trackGeometry(head.track || {});
    rec.obstacles = (head.obstacles || []).map(box);
  }

  function framesPerSegment(rec) {
    return Math.max(1, Math.round((S.index.segment_s || 1) / rec.dt));
  }

  function addSegment(rec, k, seg) {
    if (typeof seg.dt === "number" && !rec.head.dt) rec.dt = seg.dt;
    rec.segs.set(k, seg);
    rec.events = [];
    [...rec.segs.keys()].sort((a, b) => a - b).forEach((key) => {
      for (const e of rec.segs.get(key).events || []) rec.events.push(e);
    });
    rec.events.sort((a, b) => a.t - b.t);
  }

  /** {x: [...], y: [...]} from either that shape or a list of [x, y] points. */
  function points(v) {
    if (!v) return { x: [], y: [] };
    if (Array.isArray(v)) return { x: v.map((p) => p[0]), y: v.map((p) => p[1]) };
    return { x: v.x || [], y: v.y || [] };
  }

  function box(b) {
    return Array.isArray(b) ? { x: b[0], y: b[1], radius: b[2] } : b;
  }

  function trackGeometry(track) {
    const left = points(track.left || track.left_border);
    const right = points(track.right || track.right_border);
    const center = points(track.center || track.centerline);
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    for (const side of [left, right, center]) {
      side.x.forEach((x, i) => {
        minX = Math.min(minX, x); maxX = Math.max(maxX, x);
        minY = Math.min(minY, side.y[i]); maxY = Math.max(maxY, side.y[i]);
      });
    }
    return { left, right, center,
      bounds: { cx: (minX + maxX) / 2, cy: (minY + maxY) / 2, w: maxX - minX, h: maxY - minY } };
  }

  // Sampling ------------------------------------------------------------------------
  /** Car columns at frame f of slot rec: {seg, i} to read them, or null if not loaded. */
  function frameAt(rec, f) {
    const per = framesPerSegment(rec);
    const seg = rec.segs.get(Math.floor(f / per));
    if (!seg) return null;
    const i = f - (typeof seg.first_frame === "number" ? seg.first_frame : Math.floor(f / per) * per);
    if (!seg.cars.length || i < 0 || i >= seg.cars[0].x.length) return null;
    return { seg, i };
  }

  function wrapAngle(a) {
    return a - 2 * Math.PI * Math.round(a / (2 * Math.PI));
  }

  /** Every car's pose at race time t, between the frames around it; null if not loaded. */
  function poses(rec, t) {
    const meta = slotMeta(rec.n);
    const last = (meta && meta.frames ? meta.frames : Infinity) - 1;
    const f = Math.max(0, Math.min(t / rec.dt, last));
    const f0 = Math.floor(f);
    const a = frameAt(rec, f0);
    if (!a) return null;
    const b = (f > f0 && frameAt(rec, f0 + 1)) || a;
    return a.seg.cars.map((c0, car) => {
      const c1 = b.seg.cars[car];
      let w = b === a ? 0 : f - f0;
      if (w > 0 && c1.flags[b.i] & FLAGS.RESET) w = w >= 0.5 ? 1 : 0; // no sliding to a reset
      const mix = (key) => c0[key][a.i] + (c1[key][b.i] - c0[key][a.i]) * w;
      const near = w >= 0.5 ? [c1, b.i] : [c0, a.i];
      return { x: mix("x"), y: mix("y"),
        yaw: c0.yaw[a.i] + wrapAngle(c1.yaw[b.i] - c0.yaw[a.i]) * w,
        flags: near[0].flags[near[1]] };
    });
  }

  function towerAt(rec, t) {
    const per = framesPerSegment(rec);
    const seg = rec.segs.get(Math.floor(Math.max(0, t / rec.dt) / per));
    return seg ? seg.tower || [] : null;
  }

  function carLabel(rec, i) {
    const cars = (rec.head && rec.head.cars) || (slotMeta(rec.n) || {}).cars || [];
    const c = cars[i] || {};
    return { name: c.racer || c.name || `car ${i + 1}`, color: colorOf(c.color ?? i) };
  }

  // Drawing -------------------------------------------------------------------------
  function resize() {
    if (!el.canvas) return;
    const rect = el.canvas.parentElement.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(rect.width * dpr));
    const h = Math.max(1, Math.round(rect.height * dpr));
    if (el.canvas.width !== w || el.canvas.height !== h) {
      el.canvas.width = w;
      el.canvas.height = h;
      S.drawn = null;
    }
  }

  function polyline(pts) {
    const p = new Path2D();
    pts.x.forEach((x, i) => (i ? p.lineTo(x, pts.y[i]) : p.moveTo(x, pts.y[i])));
    p.closePath();
    return p;
  }

  function draw(rec, cars, tower) {
    const W = el.canvas.width, H = el.canvas.height, dpr = window.devicePixelRatio || 1;
    const tr = rec.track;
    const b = tr.bounds;
    const s = Math.min(W / (b.w * FIT_MARGIN || 1), H / (b.h * FIT_MARGIN || 1));
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, W, H);
    if (!OVERLAY) {
      ctx.fillStyle = GRASS;
      ctx.fillRect(0, 0, W, H);
    }
    ctx.setTransform(s, 0, 0, -s, W / 2 - b.cx * s, H / 2 + b.cy * s);
    if (!tr.paths) {
      tr.paths = { left: polyline(tr.left), right: polyline(tr.right),
        center: polyline(tr.center) };
      tr.paths.surface = new Path2D();
      tr.paths.surface.addPath(tr.paths.left);
      tr.paths.surface.addPath(tr.paths.right);
    }
    ctx.fillStyle = ASPHALT;
    ctx.fill(tr.paths.surface, "evenodd");
    ctx.strokeStyle = "#f2f2f2";
    ctx.lineWidth = (2 * dpr) / s;
    ctx.stroke(tr.paths.left);
    ctx.stroke(tr.paths.right);
    ctx.setLineDash([(8 * dpr) / s, (8 * dpr) / s]);
    ctx.strokeStyle = "rgba(255, 214, 10, 0.6)";
    ctx.lineWidth = dpr / s;
    ctx.stroke(tr.paths.center);
    ctx.setLineDash([]);
    drawStart(tr, s, dpr);
    for (const o of rec.obstacles) {
      const half = Math.max(o.radius, (MIN_BOX_PX * dpr) / (2 * s));
      ctx.fillStyle = BOX_FILL;
      ctx.fillRect(o.x - half, o.y - half, 2 * half, 2 * half);
      ctx.strokeStyle = BOX_EDGE;
      ctx.lineWidth = (1.5 * dpr) / s;
      ctx.strokeRect(o.x - half, o.y - half, 2 * half, 2 * half);
    }
    const k = Math.max(1, (MIN_CAR_PX * dpr) / ((BODY.front + BODY.rear) * s));
    const place = new Map((tower || []).map((row) => [row.car, row.position]));
    cars.forEach((p, i) => drawCar(p, carLabel(rec, i).color, s, dpr, k));
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    if (cars.length > 1) {
      cars.forEach((p, i) => {
        if (place.has(i)) drawTag(p, `P${place.get(i)}`, carLabel(rec, i).color, s, b, W, H, dpr, k);
      });
    }
  }

  function drawStart(tr, s, dpr) {
    if (!tr.left.x.length || !tr.right.x.length) return;
    ctx.beginPath();
    ctx.moveTo(tr.left.x[0], tr.left.y[0]);
    ctx.lineTo(tr.right.x[0], tr.right.y[0]);
    ctx.strokeStyle = "#ffffff";
    ctx.lineWidth = (4 * dpr) / s;
    ctx.stroke();
  }

  function drawCar(p, color, s, dpr, k) {
    ctx.save();
    ctx.translate(p.x, p.y);
    if (p.flags & FLAGS.OFF_TRACK) {
      ctx.beginPath();
      ctx.arc(0, 0, 0.3 * k, 0, 2 * Math.PI);
      ctx.strokeStyle = "#ff3b30";
      ctx.lineWidth = (2.5 * dpr) / s;
      ctx.stroke();
    }
    ctx.rotate(p.yaw);
    ctx.scale(k, k);
    ctx.globalAlpha = p.flags & FLAGS.PENALTY ? 0.45 : 1;
    ctx.beginPath(); // a body with a pointed nose: the heading reads at any size
    ctx.moveTo(-BODY.rear, -BODY.half);
    ctx.lineTo(BODY.front * 0.7, -BODY.half);
    ctx.lineTo(BODY.front, 0);
    ctx.lineTo(BODY.front * 0.7, BODY.half);
    ctx.lineTo(-BODY.rear, BODY.half);
    ctx.closePath();
    ctx.fillStyle = color;
    ctx.fill();
    ctx.lineWidth = ((p.flags & FLAGS.COLLISION ? 3 : 1.2) * dpr) / (s * k);
    ctx.strokeStyle = p.flags & FLAGS.COLLISION ? "#ff9500" : "rgba(0, 0, 0, 0.8)";
    ctx.stroke();
    ctx.restore();
  }

  function drawTag(p, text, color, s, b, W, H, dpr, k) {
    const x = W / 2 + (p.x - b.cx) * s, y = H / 2 - (p.y - b.cy) * s;
    ctx.font = `700 ${Math.round((OVERLAY ? 14 : 11) * dpr)}px system-ui, sans-serif`;
    const w = ctx.measureText(text).width + 8 * dpr, h = (OVERLAY ? 18 : 15) * dpr;
    const top = y - (BODY.front + BODY.rear) * s * k * 0.6 - h;
    ctx.fillStyle = "rgba(12, 16, 24, 0.8)";
    ctx.fillRect(x - w / 2, top, w, h);
    ctx.fillStyle = color;
    ctx.fillRect(x - w / 2, top + h - 2 * dpr, w, 2 * dpr);
    ctx.fillStyle = "#ffffff";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText(text, x, top + h / 2 - dpr);
  }

  // The parts around the canvas -------------------------------------------------------
  function changed(name, key) {
    if (S.keys[name] === key) return false;
    S.keys[name] = key;
    return true;
  }

  function renderTower(rec, tower) {
    if (!el.tower || !changed("tower", `${rec.n}:${JSON.stringify(tower)}`)) return;
    const rows = [...tower].sort((a, b) => a.position - b.position).map((row) => {
      const label = carLabel(rec, row.car);
      const tr = make("tr", row.state && row.state !== "racing" ? `state-${row.state}` : "");
      tr.appendChild(make("td", "num", String(row.position)));
      const who = make("td", "live-racer");
      const swatch = make("span", "live-swatch");
      swatch.style.background = label.color;
      who.append(swatch, label.name);
      if (row.state && row.state !== "racing") {
        who.appendChild(make("small", "", ` ${row.state.replace(/_/g, " ")}`));
      }
      tr.appendChild(who);
      tr.appendChild(make("td", "num", gapText(row)));
      const laps = rec.head && rec.head.laps ? `/${rec.head.laps}` : "";
      tr.appendChild(make("td", "num", typeof row.lap === "number" ? `${row.lap}${laps}` : "–"));
      tr.appendChild(make("td", "num", lapTime(row.last_lap_s)));
      tr.appendChild(make("td", "num", lapTime(row.best_lap_s)));
      tr.appendChild(make("td", "num", String(row.penalties || 0)));
      return tr;
    });
    el.tower.replaceChildren(...rows);
  }

  /** The ticker: the slot's events up to race time t (never later), newest first. */
  function renderTicker(rec, t) {
    if (!el.ticker) return;
    let count = 0;
    while (count < rec.events.length && rec.events[count].t <= t) count += 1;
    // A late viewer's earlier segments are still coming: say so below the lines.
    let complete = true;
    for (let k = Math.floor(Math.max(0, t / rec.dt) / framesPerSegment(rec)); k >= 0; k--) {
      if (!rec.segs.has(k)) complete = false;
    }
    if (!changed("ticker", `${rec.n}:${count}:${rec.events.length}:${complete}`)) return;
    const shown = rec.events.slice(0, count).reverse().slice(0, TICKER_ROWS[OVERLAY ? "overlay" : "watch"]);
    // The newest line is marked fresh (a brief highlight) when the race moved on to it.
    const top = shown.length ? { n: rec.n, t: shown[0].t } : null;
    const before = S.tickerTop;
    const fresh = top && before && before.n === top.n && top.t > before.t;
    S.tickerTop = top;
    el.ticker.replaceChildren(...shown.map((e, i) => {
      const li = make("li", `kind-${e.kind}${i === 0 && fresh ? " fresh" : ""}`);
      li.append(make("span", "live-ticker-time mono", raceClock(e.t)),
        make("span", "live-ticker-text", e.text));
      return li;
    }));
    if (!complete && !OVERLAY) {
      el.ticker.appendChild(make("li", "muted live-ticker-more", "Earlier events are loading…"));
    }
  }

  function renderBracket(ix) {
    if (!el.bracket) return;
    const bracket = ix.bracket || [];
    const onAir = ix.slots.filter((s) => s.state === "on_air").map((s) => s.n);
    if (!changed("bracket", JSON.stringify([bracket, onAir, ix.champion]))) return;
    el.bracketBox.hidden = !bracket.length;
    el.bracket.replaceChildren(...bracket.map((stage) => {
      const div = make("div", "stage");
      div.setAttribute("role", "listitem");
      const title = stage.stage.replace(/[-_]/g, " ");
      div.appendChild(make("h3", "", title.charAt(0).toUpperCase() + title.slice(1)));
      const ol = make("ol", "matches");
      for (const m of stage.matches) {
        const li = make("li", `match${m.winner ? " decided" : ""}${onAir.includes(m.slot) ? " on-air" : ""}`);
        if (onAir.includes(m.slot)) li.appendChild(make("span", "badge status-live match-replay", "on air"));
        for (const name of [m.a, m.b]) {
          const cls = m.winner ? (name === m.winner ? " winner" : " loser") : "";
          const slot = make("div", `slot${cls}`);
          if (name) slot.textContent = name;
          else slot.appendChild(make("span", "muted", "to be decided"));
          li.appendChild(slot);
        }
        ol.appendChild(li);
      }
      div.appendChild(ol);
      return div;
    }));
  }

  /** Once the event is over: every slot's replay, and the champion. */
  function renderAfter(ix) {
    if (!el.after) return;
    const over = ix.status === "finished";
    if (!changed("after", JSON.stringify([over, ix.champion, ix.slots.map((s) => s.replay)]))) return;
    el.after.hidden = !over;
    root.classList.toggle("over", over && !S.sawLive && S.drawn === null);
    root.classList.toggle("cancelled", ix.status === "cancelled");
    if (!over) return;
    el.champion.hidden = !ix.champion;
    el.champion.textContent = ix.champion ? `Champion: ${ix.champion}` : "";
    el.replays.replaceChildren(...ix.slots.map((s) => {
      const li = make("li");
      li.appendChild(make("span", "live-slot-title", s.title));
      li.appendChild(make("span", "muted", ` ${(s.cars || []).map((c) => c.racer || c.name).join(" vs ")} `));
      if (s.replay) {
        const a = make("a", "", "Replay");
        a.href = s.replay;
        li.appendChild(a);
      }
      return li;
    }));
  }

  /** What comes next: "Starts in 4:32", "Next: Semifinal 2 in 0:07". */
  function nextText(live, t) {
    const ix = S.index;
    if (ix.status === "cancelled") return "This event was cancelled.";
    const next = live.next;
    if (live.phase === "before" && t < ix.starts_at) return `Starts in ${countdown(ix.starts_at - t)}`;
    if (live.phase === "on_air") return "";
    const label = live.phase === "before" ? "" : "Next: ";
    if (next && typeof next.on_air_at === "number") {
      return `${label}${next.title} in ${countdown(next.on_air_at - t)}`;
    }
    if (next) return `${label}${next.title}, on air as soon as it has been raced`;
    if (ix.status !== "finished") {
      return live.phase === "before" ? "The first heat is being raced…"
        : "Next: the next heat, on air as soon as it has been raced";
    }
    return ix.champion ? `That was the last heat. Champion: ${ix.champion}` : "That was the last heat.";
  }

  function behindText(shown, live) {
    if (live.slot && live.slot.n === shown.slot.n) {
      return `Replaying · ${(live.t - shown.t).toFixed(1)} s behind live (L: back to live)`;
    }
    return `Replaying · live now: ${live.slot ? live.slot.title : "nothing"} (L: back to live)`;
  }

  function setText(node, text) {
    if (node && node.textContent !== text) node.textContent = text;
  }

  function setMessage(text) {
    if (!el.message) return;
    setText(el.message, text);
    el.message.hidden = !text;
  }

  function updateScrub(shown, live) {
    if (!el.scrub) return;
    const meta = shown ? shown.slot : null;
    const liveHere = meta && live.slot && live.slot.n === meta.n;
    const max = meta ? (liveHere ? live.t : meta.duration_s) : 0;
    el.scrub.disabled = !meta;
    const maxText = max.toFixed(1);
    if (el.scrub.max !== maxText) el.scrub.max = maxText;
    if (!S.scrubbing) { // while a pointer drags the thumb, the thumb is where it is
      const value = (shown ? shown.t : 0).toFixed(1);
      if (el.scrub.value !== value) el.scrub.value = value;
    }
    el.scrub.setAttribute("aria-valuetext", shown ? `${raceClock(shown.t)} of ${raceClock(max)}` : "");
    const isLive = !shown || !shown.behind;
    el.golive.setAttribute("aria-pressed", String(isLive));
    el.golive.classList.toggle("is-live", isLive);
    el.golive.disabled = isLive;
  }

  function seekTo(raceTime) {
    const t = now();
    const live = liveMoment(t);
    const n = S.view.n ?? (live.slot && live.slot.n);
    const meta = slotMeta(n);
    if (!meta || typeof meta.on_air_at !== "number") return;
    const liveT = Math.min(t - meta.on_air_at, meta.duration_s);
    const target = Math.max(0, Math.min(raceTime, liveT));
    S.view.n = n;
    S.view.behind = liveT - target > LIVE_SNAP_S || liveT >= meta.duration_s
      ? t - meta.on_air_at - target : 0;
  }

  function goLive() {
    S.view.behind = 0;
  }

  // The frame loop --------------------------------------------------------------------
  function frame() {
    requestAnimationFrame(frame);
    if (!S.index) return;
    const t = now();
    const live = liveMoment(t);
    const shown = shownMoment(t, live);
    if (live.phase === "between" || live.phase === "before") loadHead(live.next, t);
    const next = nextText(live, t);
    const trouble = S.failures >= 3 ? "Connection lost: reconnecting… " : "";
    setText(el.next, trouble + (shown && shown.behind ? behindText(shown, live) : next));
    updateScrub(shown, live);
    if (!shown) {
      document.body.dataset.liveSlot = "";
      document.body.dataset.raceTime = "";
      setText(el.slot, live.next ? live.next.title : "");
      setText(el.clock, "");
      setMessage(next || "Waiting for the first heat…");
      return;
    }
    document.body.dataset.liveSlot = String(shown.slot.n);
    document.body.dataset.raceTime = shown.t.toFixed(2);
    setText(el.slot, shown.slot.title);
    setText(el.clock, raceClock(shown.t));
    const rec = record(shown.slot.n);
    ensureLoaded(rec, shown.t, t);
    if (!rec.head) {
      setMessage("Loading the heat…");
      return;
    }
    const cars = poses(rec, shown.t);
    const tower = towerAt(rec, shown.t);
    if (tower) renderTower(rec, tower);
    renderTicker(rec, shown.t);
    if (!cars) {
      setMessage(S.drawn ? "" : "Loading the heat…");
      return;
    }
    setMessage("");
    if (ctx) {
      resize(); // a new size forgets the drawn frame
      if (S.drawn && S.drawn.n === rec.n && S.drawn.t === shown.t) return; // a still picture
      draw(rec, cars, tower);
      S.drawn = { n: rec.n, t: shown.t };
      if (cars.length && el.canvas.dataset.ready !== "1") el.canvas.dataset.ready = "1";
    }
  }

  function onKey(e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const target = e.target;
    if (target === el.scrub && e.shiftKey && (e.key === "ArrowLeft" || e.key === "ArrowRight")) {
      seekTo(parseFloat(el.scrub.value) + (e.key === "ArrowLeft" ? -SCRUB_STEP_S : SCRUB_STEP_S));
      e.preventDefault();
      return;
    }
    const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(target.tagName) && target !== el.scrub;
    if (!typing && (e.key === "l" || e.key === "L")) {
      goLive();
      e.preventDefault();
    }
  }

  function start() {
    root.hidden = false;
    if (el.canvas) new ResizeObserver(resize).observe(el.canvas.parentElement);
    if (el.scrub) {
      el.scrub.addEventListener("input", () => {
        S.scrubbing = true;
        seekTo(parseFloat(el.scrub.value));
      });
      el.scrub.addEventListener("change", () => {
        S.scrubbing = false;
      });
      el.golive.addEventListener("click", goLive);
      document.addEventListener("keydown", onKey);
    }
    poll();
    requestAnimationFrame(frame);
  }

  start();
})();
