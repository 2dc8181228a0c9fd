// Live evaluation status: polls each unfinished entry's status.json and updates its badge.
(function () {
  "use strict";
  var INTERVAL_MS = 1500;
  var MAX_FAILURES = 3;

  function raceTime(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    var millis = Math.round(seconds * 1000);
    var minutes = Math.floor(millis / 60000);
    var rest = (millis - minutes * 60000) / 1000;
    return minutes + ":" + (rest < 10 ? "0" : "") + rest.toFixed(3);
  }

  function pending() {
    return Array.prototype.filter.call(
      document.querySelectorAll("[data-status-url]"),
      function (el) { return el.dataset.final !== "true" && el.dataset.broken !== "true"; });
  }

  function apply(badge, status) {
    var wasFinal = badge.dataset.final === "true";
    badge.textContent = status.label;
    badge.className = "badge" + (status.css ? " " + status.css : "");
    badge.dataset.final = status.final ? "true" : "false";
    var id = badge.dataset.entry;
    document.querySelectorAll('[data-status-time-for="' + id + '"]').forEach(function (el) {
      el.textContent = raceTime(status.time_s);
    });
    document.querySelectorAll('[data-status-reason-for="' + id + '"]').forEach(function (el) {
      el.textContent = status.reason || "";
    });
    if (status.final && !wasFinal && badge.dataset.reloadWhenFinal === "true") {
      window.location.reload();  // the results and charts are rendered by the server
    }
  }

  function poll(badge) {
    return fetch(badge.dataset.statusUrl, {
      headers: { "Accept": "application/json" }, credentials: "same-origin", cache: "no-store"
    }).then(function (response) {
      if (!response.ok) throw new Error("status " + response.status);
      return response.json();
    }).then(function (status) {
      apply(badge, status);
    }).then(function () {
      badge.dataset.failures = "0";
    }, function () {
      // a few misses in a row (offline, logged out): stop; the page still shows its last state
      var failures = Number(badge.dataset.failures || "0") + 1;
      badge.dataset.failures = String(failures);
      if (failures >= MAX_FAILURES) badge.dataset.broken = "true";
    });
  }

  function tick() {
    var badges = pending();
    if (!badges.length) return;
    Promise.all(badges.map(poll)).then(function () {
      if (pending().length) window.setTimeout(tick, INTERVAL_MS);
    });
  }

  if (pending().length) window.setTimeout(tick, INTERVAL_MS);
})();
