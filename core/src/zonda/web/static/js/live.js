// Live updates for a page: window.zondaLive.on(filter, callback) over ONE EventSource per tab.
//
// filter: {dag_id: "x"} or {dag_id: "x", run_id: "y"}, optionally with kind: "ti"|"run"|"dag" (or {} for
// everything). callback(change) gets
// {kind: "ti"|"run"|"dag", dag_id, run_id, task_id, map_index, state, try_number} for each matching change, or
// {kind: "resync"} when changes may have been missed (a reconnect, a burst): reload your data then.
// Returns a function that unsubscribes. The server filters by the union of all filters (query string of
// GET /events); each callback is then given only what its own filter matches.
(function () {
  "use strict";
  var MAX_RETRY_MS = 30000;
  var FILTER_KEYS = ["dag_id", "run_id", "kind"];
  var subscribers = [];
  var source = null;
  var sourceUrl = null;
  var everOpened = false;
  var retryMs = 1000;
  var retryTimer = null;
  var connectQueued = false;

  function matches(filter, change) {
    if (change.kind === "resync") return true;
    return Object.keys(filter).every(function (key) {
      var wanted = filter[key];
      return wanted === undefined || wanted === null || change[key] === wanted;
    });
  }

  function dispatch(change) {
    subscribers.slice().forEach(function (subscriber) {
      if (!matches(subscriber.filter, change)) return;
      try {
        subscriber.callback(change);
      } catch (error) {
        console.error("zondaLive callback failed", error);
      }
    });
  }

  function streamUrl() {
    // Per key: the union of the values asked for, or no narrowing when any subscriber leaves the key out.
    var params = new URLSearchParams();
    FILTER_KEYS.forEach(function (key) {
      var values = {};
      var everything = subscribers.some(function (subscriber) {
        var value = subscriber.filter[key];
        if (value) values[value] = true;
        return !value;
      });
      if (!everything) Object.keys(values).sort().forEach(function (value) { params.append(key, value); });
    });
    var query = params.toString();
    return "/events" + (query ? "?" + query : "");
  }

  function disconnect() {
    if (source) source.close();
    source = null;
    sourceUrl = null;
  }

  function connect() {
    connectQueued = false;
    if (retryTimer) {
      clearTimeout(retryTimer);
      retryTimer = null;
    }
    if (!subscribers.length) {
      disconnect();
      return;
    }
    var url = streamUrl();
    if (source && sourceUrl === url) return;
    disconnect();
    sourceUrl = url;
    source = new EventSource(url);
    source.onopen = function () {
      retryMs = 1000;
      if (everOpened) dispatch({ kind: "resync" }); // changes during the gap were not sent
      everOpened = true;
    };
    source.onmessage = function (event) {
      var change;
      try {
        change = JSON.parse(event.data);
      } catch (error) {
        return;
      }
      dispatch(change);
    };
    source.onerror = function () {
      // CONNECTING: the browser reconnects by itself (after the server's retry:). CLOSED: it gave up (503 when
      // every stream is taken, a login page after the session ended): try again later, backing off.
      if (!source || source.readyState !== EventSource.CLOSED) return;
      disconnect();
      retryTimer = setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
    };
  }

  function queueConnect() {
    // Pages subscribe several times while loading: open one stream for all of them.
    if (connectQueued) return;
    connectQueued = true;
    setTimeout(connect, 0);
  }

  function on(filter, callback) {
    var subscriber = { filter: filter || {}, callback: callback };
    subscribers.push(subscriber);
    queueConnect();
    return function off() {
      subscribers = subscribers.filter(function (s) { return s !== subscriber; });
      queueConnect();
    };
  }

  window.addEventListener("pagehide", disconnect);
  window.zondaLive = { on: on };
})();
