// The Gantt view of a run: fetches the run's gantt.json and draws one row per task instance, bars for each
// try's queued, running and deferred time, the critical path marked. A bar links to its task instance page.
// Redrawn, with the run's state, when the live stream reports a change in the run (window.zondaLive, when present).
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var ROW = 24, LABEL = 260, WIDTH = 1100, AXIS = 24;

  function el(name, attrs, parent) {
    var node = document.createElementNS(SVG, name);
    for (var key in attrs) node.setAttribute(key, attrs[key]);
    if (parent) parent.appendChild(node);
    return node;
  }

  function label(row) { return row.task_id + (row.map_index >= 0 ? " [" + row.map_index + "]" : ""); }

  function seconds(ms) {
    var s = ms / 1000;
    return s < 60 ? s.toFixed(1) + " s" : s < 3600 ? (s / 60).toFixed(1) + " min" : (s / 3600).toFixed(1) + " h";
  }

  // The run's state in the page's summary follows each redraw (the page itself is not reloaded).
  function showRunState(state) {
    var badge = document.querySelector(".run-summary .run-state");
    if (!badge || !state) return;
    badge.textContent = state;
    badge.dataset.state = state;
  }

  function draw(section, data) {
    showRunState(data.run_state);
    var chart = section.querySelector(".gantt-chart");
    var status = section.querySelector(".gantt-status");
    var now = Date.parse(data.now);
    var times = [];
    data.rows.forEach(function (row) {
      row.tries.forEach(function (t) {
        t.bars.forEach(function (b) { times.push(Date.parse(b.start)); times.push(b.end ? Date.parse(b.end) : now); });
      });
    });
    chart.textContent = "";
    if (!times.length) { status.textContent = "No task has been queued in this run yet."; return; }
    var t0 = Math.min.apply(null, times), t1 = Math.max.apply(null, times);
    var span = Math.max(t1 - t0, 1);
    var x = function (t) { return LABEL + ((t - t0) / span) * (WIDTH - LABEL - 10); };
    status.textContent = data.rows.length + " task instances · " + seconds(span) +
      (data.critical_path.length ? " · critical path: " + data.critical_path.join(" → ") : "");
    var svg = el("svg", { width: WIDTH, height: AXIS + data.rows.length * ROW + 4, role: "group",
      "aria-label": "Gantt chart of run " + data.run_id, "class": "gantt-svg" }, chart);
    for (var i = 0; i <= 4; i++) {
      var tx = x(t0 + (span * i) / 4);
      el("line", { x1: tx, x2: tx, y1: AXIS - 4, y2: AXIS + data.rows.length * ROW, "class": "gantt-grid" }, svg);
      el("text", { x: tx, y: 14, "class": "gantt-axis", "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" }, svg)
        .textContent = "+" + seconds((span * i) / 4);
    }
    var base = section.dataset.taskBase;
    data.rows.forEach(function (row, index) {
      var y = AXIS + index * ROW;
      var href = base + encodeURIComponent(row.task_id) + (row.map_index >= 0 ? "?map_index=" + row.map_index : "");
      var link = el("a", { href: href, "class": "gantt-row" + (row.critical ? " critical" : "") }, svg);
      el("text", { x: 4, y: y + 16, "class": "gantt-label" }, link).textContent = label(row);
      row.tries.forEach(function (t) {
        t.bars.forEach(function (b) {
          var start = Date.parse(b.start), end = b.end ? Date.parse(b.end) : now;
          var rect = el("rect", { x: x(start), y: y + 4, width: Math.max(x(end) - x(start), 2), height: ROW - 8,
            "class": "bar bar-" + b.kind + (row.critical ? " bar-critical" : "") + (b.end ? "" : " bar-live"),
            "data-kind": b.kind, "data-try": t.try_number }, link);
          el("title", {}, rect).textContent = label(row) + " · try " + t.try_number + " · " + b.kind + " " +
            seconds(end - start) + (t.state ? " · " + t.state : "");
        });
      });
    });
  }

  function start(section) {
    var pending = null;
    function refresh() {
      fetch(section.dataset.source, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
        .then(function (data) { draw(section, data); })
        .catch(function (e) { section.querySelector(".gantt-status").textContent = "Could not load the chart: " + e.message; });
    }
    refresh();
    if (window.zondaLive) {
      window.zondaLive.on({ dag_id: section.dataset.dagId, run_id: section.dataset.runId }, function () {
        if (pending) return;
        pending = setTimeout(function () { pending = null; refresh(); }, 300);
      });
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var section = document.getElementById("gantt");
    if (section) start(section);
  });
})();
