// The DAGs page: the recent-run dots of a DAG follow its runs live. On a run change the page asks
// /dags/recent-runs.json for the changed DAGs only (debounced), and redraws their dots; a resync redraws all.
(function () {
  "use strict";
  var DEBOUNCE_MS = 400;
  var pending = {};
  var everything = false;
  var timer = null;

  function containers() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-recent-runs]"));
  }

  function draw(container, states) {
    container.replaceChildren();
    states.forEach(function (state) {
      var dot = document.createElement("span");
      dot.className = "state-dot";
      dot.dataset.state = state;
      dot.title = state;
      dot.setAttribute("role", "img");
      dot.setAttribute("aria-label", state);
      container.appendChild(dot);
    });
  }

  function refresh() {
    timer = null;
    var shown = containers();
    var wanted = everything ? shown.map(function (c) { return c.dataset.recentRuns; }) : Object.keys(pending);
    pending = {};
    everything = false;
    if (!wanted.length) return;
    var params = new URLSearchParams();
    wanted.forEach(function (id) { params.append("dag_id", id); });
    fetch("/dags/recent-runs.json?" + params.toString(), { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (found) {
        if (!found) return;
        shown.forEach(function (container) {
          var id = container.dataset.recentRuns;
          if (wanted.indexOf(id) >= 0) draw(container, found[id] || []);
        });
      })
      .catch(function () { /* the next change tries again */ });
  }

  function changed(change) {
    if (change.kind === "resync") everything = true;
    else if (change.kind === "run") pending[change.dag_id] = true;
    else return;
    if (!timer) timer = setTimeout(refresh, DEBOUNCE_MS);
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (window.zondaLive && containers().length) window.zondaLive.on({ kind: "run" }, changed);
  });
})();
