/* Paddock replay decoder: format versions 4, 3, 2 and 1 exactly as docs/REPLAY.md specifies
 * them.
 *
 * PaddockReplayFormat.decode(bytes) takes the stored file (gzip) as an ArrayBuffer or
 * Uint8Array and resolves to {header, dt, frames, duration, track, obstacles, cars, meta};
 * positions are metres, angles radians, speeds m/s, progress percent; a car's commandSteering,
 * commandSpeed and action are there from format 2 on, and null in a format-1 replay and for a
 * format-4 car whose header says "commands": false (withheld from this viewer); obstacles
 * is a list of {x, y, radius} boxes from format 3 on (null before, and in a format-4 replay
 * whose header says "obstacles": null: the replay did not keep them). Anything that is not a
 * valid replay rejects with a ReplayFormatError whose message says what is wrong, in one line.
 * racePositions(replay) and incidents(replay, positions) derive what the viewer jumps to,
 * the way evaluator/replay.py incidents() does, plus overtakes.
 */
(function (global) {
  "use strict";

  const MAGIC = "PDKREPLY";
  const FORMAT_VERSION = 4; // the newest; every version in COLUMNS_BY_FORMAT is read
  const PREAMBLE_BYTES = 16; // magic, uint32 version, uint32 header length
  const MAX_INFLATED_BYTES = 64 * 1024 * 1024;
  const TRACK_BLOCKS = ["center", "left", "right"]; // centerline, left border, right border
  const TRACK_QUANTUM = 1e-3; // millimetres
  // Format 3 on: int32 blocks of absolute millimetres (not delta-coded), after the track.
  const OBSTACLE_BLOCKS = ["x", "y", "radius"];
  const OBSTACLE_QUANTUM = 1e-3;
  const OBSTACLES_SINCE = 3;
  // Format 4 on: each car's header says whether its command blocks are there ("commands").
  const COMMANDS_PER_CAR_SINCE = 4;
  // The per-car columns in block order: type, quantum (null: stored as is), delta coding.
  const STATE_COLUMNS = [
    { name: "x", type: Int32Array, quantum: 1e-3, delta: true },
    { name: "y", type: Int32Array, quantum: 1e-3, delta: true },
    { name: "yaw", type: Int16Array, quantum: 1e-4, delta: true },
    { name: "steering", type: Int16Array, quantum: 1e-4, delta: true },
    { name: "speed", type: Int16Array, quantum: 1e-3, delta: true },
    { name: "progress", type: Int16Array, quantum: 1e-2, delta: true },
    { name: "laps", type: Int16Array, quantum: null, delta: true },
  ];
  const COMMAND_COLUMNS = [ // format 2 on
    { name: "commandSteering", type: Int16Array, quantum: 1e-4, delta: true },
    { name: "commandSpeed", type: Int16Array, quantum: 1e-3, delta: true },
    { name: "action", type: Int16Array, quantum: null, delta: true },
  ];
  const FLAGS_COLUMN = { name: "flags", type: Uint8Array, quantum: null, delta: false };
  const COLUMNS_BY_FORMAT = {
    1: [...STATE_COLUMNS, FLAGS_COLUMN],
    2: [...STATE_COLUMNS, ...COMMAND_COLUMNS, FLAGS_COLUMN],
    3: [...STATE_COLUMNS, ...COMMAND_COLUMNS, FLAGS_COLUMN],
    4: [...STATE_COLUMNS, ...COMMAND_COLUMNS, FLAGS_COLUMN], // commands: only cars that have them
  };
  const OVERTAKE_HOLD_FRAMES = 15; // a gained position counts once it is held for 1 s
  const INCIDENT_ORDER = { off_track: 0, collision: 1, overtake: 2 };
  const FLAGS = {
    OFF_TRACK: 1, PENALTY: 2, COLLISION: 4, BLAMED: 8, LAP: 16, RESET: 32, PARKED: 64,
    GHOST: 128,
  };

  class ReplayFormatError extends Error {
    constructor(message) {
      super(message);
      this.name = "ReplayFormatError";
    }
  }

  /** Inflate one gzip member, refusing data that is not gzip, is damaged or is too big. */
  async function inflate(bytes) {
    if (bytes.length < 2 || bytes[0] !== 0x1f || bytes[1] !== 0x8b) {
      throw new ReplayFormatError("not a replay: the data is not gzip-compressed");
    }
    const chunks = [];
    let total = 0;
    try {
      const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
      const reader = stream.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        total += value.length;
        if (total > MAX_INFLATED_BYTES) {
          await reader.cancel();
          throw new ReplayFormatError(`replay inflates to more than ${MAX_INFLATED_BYTES} bytes`);
        }
        chunks.push(value);
      }
    } catch (err) {
      if (err instanceof ReplayFormatError) throw err;
      throw new ReplayFormatError("corrupt replay: the gzip stream is damaged or truncated");
    }
    const out = new Uint8Array(total);
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }

  /** obj[key] checked to be of `kind` (int, number, string, boolean, object, array). */
  function get(obj, key, kind, where) {
    if (!Object.prototype.hasOwnProperty.call(obj, key)) {
      throw new ReplayFormatError(`replay header: ${where} has no "${key}"`);
    }
    const v = obj[key];
    const ok = {
      int: Number.isInteger(v),
      number: typeof v === "number" && Number.isFinite(v),
      string: typeof v === "string",
      boolean: typeof v === "boolean",
      object: v !== null && typeof v === "object" && !Array.isArray(v),
      array: Array.isArray(v),
    }[kind];
    if (!ok) throw new ReplayFormatError(`replay header: ${where}.${key} must be ${kind}`);
    return v;
  }

  function parseHeader(bytes) {
    let head;
    try {
      head = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
    } catch (err) {
      throw new ReplayFormatError(`replay header is not JSON: ${err.message}`);
    }
    if (head === null || typeof head !== "object" || Array.isArray(head)) {
      throw new ReplayFormatError("replay header must be a JSON object");
    }
    return head;
  }

  /** Undo delta coding: a running sum that wraps like the stored integer type. */
  function undelta(block) {
    const out = new block.constructor(block.length);
    let acc = 0;
    for (let i = 0; i < block.length; i++) {
      out[i] = acc + block[i];
      acc = out[i];
    }
    return out;
  }

  function scaled(ints, quantum) {
    const out = new Float64Array(ints.length);
    for (let i = 0; i < ints.length; i++) out[i] = ints[i] * quantum;
    return out;
  }

  /** Decode the inflated bytes (preamble, header, blocks). */
  function decodeRaw(raw) {
    if (raw.length < PREAMBLE_BYTES) {
      throw new ReplayFormatError(`truncated replay: ${raw.length} bytes, shorter than the ` +
        `${PREAMBLE_BYTES}-byte preamble`);
    }
    const magic = String.fromCharCode(...raw.subarray(0, 8));
    if (magic !== MAGIC) {
      throw new ReplayFormatError(`not a Paddock replay: magic ${JSON.stringify(magic)}, ` +
        `expected "${MAGIC}"`);
    }
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const version = dv.getUint32(8, true);
    const columns = Object.prototype.hasOwnProperty.call(COLUMNS_BY_FORMAT, version)
      ? COLUMNS_BY_FORMAT[version] : null;
    if (columns === null) {
      throw new ReplayFormatError(`replay format version ${version} is not supported ` +
        `(this viewer reads versions ${Object.keys(COLUMNS_BY_FORMAT).join(", ")})`);
    }
    const headLen = dv.getUint32(12, true);
    const start = PREAMBLE_BYTES + headLen;
    if (start > raw.length) {
      throw new ReplayFormatError(`truncated replay: the header needs ${headLen} bytes, ` +
        `${raw.length - PREAMBLE_BYTES} remain`);
    }
    const head = parseHeader(raw.subarray(PREAMBLE_BYTES, start));
    if (get(head, "format", "int", "header") !== version) {
      throw new ReplayFormatError(`corrupt replay: the header says format ${head.format}, ` +
        `the preamble ${version}`);
    }
    const frames = get(head, "frames", "int", "header");
    const track = get(head, "track", "object", "header");
    const points = get(track, "points", "int", "track");
    const carHeads = get(head, "cars", "array", "header");
    if (frames < 1 || points < 1 || carHeads.length < 1) {
      throw new ReplayFormatError(`replay header: ${frames} frames, ${points} track points ` +
        `and ${carHeads.length} cars; each must be at least 1`);
    }
    const dt = get(head, "dt", "number", "header");
    if (!(dt > 0)) {
      throw new ReplayFormatError(`replay header: dt must be a positive number, got ${dt}`);
    }
    const cars = carHeads.map((c, i) => {
      if (c === null || typeof c !== "object" || Array.isArray(c)) {
        throw new ReplayFormatError(`replay header: car ${i} must be a JSON object`);
      }
      const where = `cars[${i}]`;
      const hasCommands = version >= COMMANDS_PER_CAR_SINCE
        ? get(c, "commands", "boolean", where) : version >= 2;
      const car = {
        index: i,
        name: get(c, "name", "string", where),
        policySha256: get(c, "policy_sha256", "string", where),
        color: get(c, "color", "int", where),
        // Optional, any version: a head-to-bot race's built-in bot car.
        bot: Object.prototype.hasOwnProperty.call(c, "bot")
          ? get(c, "bot", "boolean", where) : false,
      };
      // A car without commands (format 1, or withheld in format 4) has null columns.
      for (const col of COMMAND_COLUMNS) if (!hasCommands) car[col.name] = null;
      return car;
    });
    const stored = (car, col) => car[col.name] !== null; // a block of this column is there
    const kept = version >= OBSTACLES_SINCE &&
      !(version >= COMMANDS_PER_CAR_SINCE && head.obstacles === null);
    const count = kept ? get(head, "obstacles", "int", "header") : 0;
    if (count < 0) {
      throw new ReplayFormatError(`replay header: ${count} obstacles, must be at least 0`);
    }
    const trackBytes = TRACK_BLOCKS.length * 2 * points * 4;
    const obstacleBytes = OBSTACLE_BLOCKS.length * count * 4;
    let carBytes = 0;
    for (const col of columns) {
      for (const car of cars) {
        if (stored(car, col)) carBytes += col.type.BYTES_PER_ELEMENT * frames;
      }
    }
    const body = raw.length - start;
    const announced = trackBytes + obstacleBytes + carBytes;
    if (body !== announced) {
      const what = body < announced ? "truncated replay" : "corrupt replay";
      throw new ReplayFormatError(`${what}: ${body} bytes of data after the header, the ` +
        `header announces ${announced}`);
    }
    // A copy starting at offset 0 keeps every block aligned for its typed array.
    const buf = raw.slice(start).buffer;
    let offset = 0;
    const take = (Type, count) => {
      const block = new Type(buf, offset, count);
      offset += count * Type.BYTES_PER_ELEMENT;
      return block;
    };
    const geometry = {};
    for (const name of TRACK_BLOCKS) {
      const xs = scaled(undelta(take(Int32Array, points)), TRACK_QUANTUM);
      const ys = scaled(undelta(take(Int32Array, points)), TRACK_QUANTUM);
      geometry[name] = { x: xs, y: ys };
    }
    let obstacles = null;
    if (kept) {
      const blocks = OBSTACLE_BLOCKS.map(() => take(Int32Array, count));
      obstacles = [];
      for (let k = 0; k < count; k++) {
        const box = {};
        OBSTACLE_BLOCKS.forEach((name, b) => { box[name] = blocks[b][k] * OBSTACLE_QUANTUM; });
        obstacles.push(box);
      }
    }
    for (const col of columns) {
      for (const car of cars) {
        if (!stored(car, col)) continue;
        let block = take(col.type, frames);
        if (col.delta) block = undelta(block);
        car[col.name] = col.quantum === null ? block : scaled(block, col.quantum);
      }
    }
    return {
      header: head,
      format: version,
      seed: get(head, "seed", "int", "header"),
      paddockVersion: get(head, "paddock_version", "string", "header"),
      simVersion: get(head, "sim_version", "string", "header"),
      dt,
      frames,
      duration: (frames - 1) * dt,
      track: {
        name: get(track, "name", "string", "track"),
        title: get(track, "title", "string", "track"),
        digest: get(track, "digest", "string", "track"),
        length: get(track, "length_m", "number", "track"),
        points,
        ...geometry,
      },
      obstacles,
      cars,
      meta: get(head, "meta", "object", "header"),
    };
  }

  // ------------------------------------------------------------ what a replay tells
  /** Lap fraction along the centerline of a point: 0 at the line, negative just behind it. */
  function signedLapFraction(track, x, y) {
    const c = track.center;
    let best = 0, bestD = Infinity;
    for (let k = 0; k < c.x.length; k++) {
      const d = (c.x[k] - x) ** 2 + (c.y[k] - y) ** 2;
      if (d < bestD) { bestD = d; best = k; }
    }
    const frac = best / c.x.length;
    return frac > 0.5 ? frac - 1 : frac;
  }

  /**
   * Race positions at every frame (1 = leading), as positions[frame * cars + car].
   *
   * Cars are ordered by distance raced: completed laps plus lap progress (a finished car has
   * both maxed out). Before a car first crosses the line its progress reads 0, so a car on
   * a back grid slot is placed by where it stands on the centerline instead. Equal distances
   * keep the previous frame's order, so cars parked after the finish stay in finishing order.
   * A head-to-bot race's bots are not in the race: they come after every other car.
   */
  function racePositions(r) {
    const n = r.cars.length;
    const out = new Uint8Array(r.frames * n);
    const key = new Float64Array(n);
    const rank = new Int32Array(n);
    let order = r.cars.map((c, i) => i);
    for (let f = 0; f < r.frames; f++) {
      for (let i = 0; i < n; i++) {
        const c = r.cars[i];
        key[i] = c.laps[f] + c.progress[f] / 100;
        if (c.bot) {
          key[i] = -Infinity;
        } else if (c.laps[f] === 0 && c.progress[f] === 0) {
          key[i] = Math.min(0, signedLapFraction(r.track, c.x[f], c.y[f]));
        }
      }
      order.forEach((c, k) => { rank[c] = k; });
      order = order.slice().sort((a, b) => (key[b] - key[a]) || (rank[a] - rank[b]));
      order.forEach((c, k) => { out[f * n + c] = k + 1; });
    }
    return out;
  }

  /**
   * Incidents to jump to: {frame, car, kind, time}, sorted by frame, car, kind.
   *
   * Off track and collision are the first frame of a run of frames carrying the flag (as in
   * evaluator/replay.py incidents()); an overtake is a frame where a car gains a race
   * position and then holds it for OVERTAKE_HOLD_FRAMES frames.
   */
  function incidents(r, positions) {
    const n = r.cars.length;
    const found = [];
    r.cars.forEach((c, i) => {
      for (const [kind, bit] of [["off_track", FLAGS.OFF_TRACK], ["collision", FLAGS.COLLISION]]) {
        for (let f = 0; f < r.frames; f++) {
          if ((c.flags[f] & bit) && (f === 0 || !(c.flags[f - 1] & bit))) {
            found.push({ frame: f, car: i, kind });
          }
        }
      }
      for (let f = 1; f < r.frames; f++) {
        const p = positions[f * n + i];
        if (p >= positions[(f - 1) * n + i]) continue;
        let held = true;
        for (let g = f + 1; g < Math.min(r.frames, f + 1 + OVERTAKE_HOLD_FRAMES); g++) {
          if (positions[g * n + i] > p) { held = false; break; }
        }
        if (held) found.push({ frame: f, car: i, kind: "overtake" });
      }
    });
    found.sort((a, b) => (a.frame - b.frame) || (a.car - b.car) ||
      (INCIDENT_ORDER[a.kind] - INCIDENT_ORDER[b.kind]));
    for (const inc of found) inc.time = inc.frame * r.dt;
    return found;
  }

  /** Decode a stored replay file (gzip bytes). */
  async function decode(data) {
    const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
    return decodeRaw(await inflate(bytes));
  }

  global.PaddockReplayFormat = Object.freeze({
    decode, decodeRaw, racePositions, incidents, ReplayFormatError, FLAGS, FORMAT_VERSION,
  });
})(window);
