// The task instance page's live facts: when the live stream (window.zondaLive, static/js/live.js) reports a
// change of this instance, the state badge, try count and dates are refetched from the REST API (debounced: a
// burst of changes costs one request) and set as text. New tries are handed to the log view (task_log.js) as a
// "zonda:tries" event on #log, so their tabs appear and the newest is followed while it runs.
(function () {
  "use strict";
  var DEBOUNCE_MS = 300;
  var LIVE_STATES = ["queued", "running", "deferred", "up_for_reschedule", "scheduled"];

  function setText(facts, field, value) {
    var node = facts.querySelector('[data-field="' + field + '"]');
    if (node) node.textContent = value === null || value === undefined ? "" : String(value);
  }

  function show(facts, ti) {
    var state = ti.state || "none";
    var badge = document.querySelector("h1 .ti-state");
    if (badge) { badge.textContent = state; badge.dataset.state = state; }
    setText(facts, "try_number", ti.try_number);
    setText(facts, "tries", ti.max_tries + 1);
    setText(facts, "start_date", ti.start_date);
    setText(facts, "end_date", ti.end_date);
    setText(facts, "hostname", ti.hostname);
    var log = document.getElementById("log");
    if (log) {
      log.dispatchEvent(new CustomEvent("zonda:tries", {
        detail: { tries: ti.try_number, live: LIVE_STATES.indexOf(state) >= 0 }
      }));
    }
  }

  function start(facts) {
    var pending = null;
    var mapIndex = parseInt(facts.dataset.mapIndex, 10);
    function refresh() {
      fetch(facts.dataset.source, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
        .then(function (ti) { show(facts, ti); })
        .catch(function () { /* the next change retries; the page keeps what it shows */ });
    }
    window.zondaLive.on({ dag_id: facts.dataset.dagId, run_id: facts.dataset.runId }, function (change) {
      if (change.kind !== "resync") {  // a resync (changes may have been missed): always refetch
        if (change.kind !== "ti" || change.task_id !== facts.dataset.taskId) return;
        if (typeof change.map_index === "number" && change.map_index !== mapIndex) return;
      }
      if (pending) return;
      pending = setTimeout(function () { pending = null; refresh(); }, DEBOUNCE_MS);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var facts = document.getElementById("ti-facts");
    if (facts && window.zondaLive) start(facts);
  });
})();
