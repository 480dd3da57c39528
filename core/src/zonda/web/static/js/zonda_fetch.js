// Small helpers the DAG pages' scripts share (grid.js, graph.js): load before them (both are "defer").
(function () {
  "use strict";

  // Call fn once things have been quiet for `wait` ms (a burst of live changes makes one refetch).
  function debounce(fn, wait) {
    let timer = null;
    return function () {
      if (timer) clearTimeout(timer);
      timer = setTimeout(function () { timer = null; fn(); }, wait);
    };
  }

  // GET a JSON endpoint of this site; an Error carrying the server's one-line "detail" when it refuses.
  async function fetchJson(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) {
      let detail = response.status + " " + response.statusText;
      try { detail = (await response.json()).detail || detail; } catch (ignored) { /* not JSON */ }
      throw new Error(detail);
    }
    return response.json();
  }

  window.zondaFetch = Object.freeze({ debounce: debounce, fetchJson: fetchJson, enc: encodeURIComponent });
})();
