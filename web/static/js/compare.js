/* Paddock run comparison: where two runs of the same race stand against each other.
 *
 * Pure functions over decoded replays (replay_format.js); the viewer (replay.js) draws with
 * them. A car's *distance* at a frame is laps done plus the lap fraction (progress / 100), and
 * exactly the laps done once it is parked at the finish; the running maximum of it never goes
 * back, so a car put back on the track after leaving it is where it had got to, not further.
 *
 * - the *delta* at race time t: t minus the moment the ghost first reached the distance this
 *   run has at t (positive: this run is behind the ghost, negative: ahead);
 * - the *sectors*: ten equal parts of the lap by progress; a sector's time is the time from
 *   first reaching its start to first reaching its end, summed over the race's laps.
 */
(function () {
  "use strict";

  const SECTORS = 10;

  /** A car's distance line: {dt, reach} where reach[f] is the furthest distance by frame f. */
  function distanceLine(replay, car, parkedFlag) {
    const c = replay.cars[car];
    const reach = new Float64Array(replay.frames);
    let best = 0;
    for (let f = 0; f < replay.frames; f++) {
      const d = c.flags[f] & parkedFlag ? c.laps[f] : c.laps[f] + c.progress[f] / 100;
      if (d > best) best = d;
      reach[f] = best;
    }
    return { dt: replay.dt, reach };
  }

  /** The distance reached by time t (between frames: linear). */
  function distanceAt(line, t) {
    const n = line.reach.length;
    const f = Math.max(0, Math.min(t / line.dt, n - 1));
    const a = Math.floor(f);
    const b = Math.min(a + 1, n - 1);
    return line.reach[a] + (line.reach[b] - line.reach[a]) * (f - a);
  }

  /** When the car first reached distance d (null: it never did). */
  function timeAt(line, d) {
    const reach = line.reach;
    const n = reach.length;
    if (!n || reach[n - 1] < d) return null;
    if (reach[0] >= d) return 0;
    let lo = 0, hi = n - 1; // reach[lo] < d <= reach[hi]
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (reach[mid] >= d) hi = mid; else lo = mid;
    }
    return (lo + (d - reach[lo]) / (reach[hi] - reach[lo])) * line.dt;
  }

  /** Seconds this run is behind the ghost at race time t (negative: ahead); null when the
   * ghost never got as far as this run is. After this run's finish it is the final gap. */
  function delta(run, ghost, t) {
    const n = run.reach.length;
    const end = timeAt(run, run.reach[n - 1]);
    const at = Math.min(t, end === null ? t : end);
    const d = distanceAt(run, at);
    if (d <= 0) return 0;
    const ghostAt = timeAt(ghost, d);
    return ghostAt === null ? null : at - ghostAt;
  }

  /** Each sector's time over `laps` laps (null where the car did not get through it). */
  function sectorTimes(line, laps) {
    const out = [];
    for (let k = 0; k < SECTORS; k++) {
      let total = 0;
      for (let lap = 0; lap < laps && total !== null; lap++) {
        const from = timeAt(line, lap + k / SECTORS);
        const to = timeAt(line, lap + (k + 1) / SECTORS);
        total = from === null || to === null ? null : total + (to - from);
      }
      out.push(total);
    }
    return out;
  }

  /** The sector table: [{sector, run, ghost}] for the ten sectors. */
  function sectors(run, ghost, laps) {
    const a = sectorTimes(run, laps);
    const b = sectorTimes(ghost, laps);
    return a.map((x, k) => ({ sector: k + 1, run: x, ghost: b[k] }));
  }

  window.PaddockCompare = Object.freeze({ SECTORS, distanceLine, distanceAt, timeAt, delta,
    sectors });
})();
