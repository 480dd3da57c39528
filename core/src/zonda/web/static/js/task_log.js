// A task instance's log, one tab per try: opens at the end, virtualized (only the lines in view are in the DOM,
// fetched by windows of 500 as the reader scrolls), searchable, downloadable, ANSI colours via zondaAnsi, and
// followed live over server-sent events while the try runs. Lines are set as text, never as HTML. A try whose
// log does not exist yet says so ("no log yet"): the JSON answers 200 with `missing`, so no console error.
(function () {
  "use strict";
  var LINE = 18, BLOCK = 500, OVERSCAN = 20;

  function LogView(section) {
    this.section = section;
    this.view = section.querySelector(".log-view");
    this.spacer = section.querySelector(".log-spacer");
    this.box = section.querySelector(".log-lines");
    this.status = section.querySelector(".log-hits");
    this.tryNumber = null;
    this.lines = {};
    this.loading = {};
    this.total = 0;
    this.hits = [];
    this.hit = -1;
    this.stream = null;
    var self = this;
    this.view.addEventListener("scroll", function () { self.paint(); });
    section.querySelectorAll(".log-tab").forEach(function (tab) { self.bindTab(tab); });
    // task_live.js announces new tries (and whether the newest may still write) as the instance changes.
    section.addEventListener("zonda:tries", function (event) { self.tries(event.detail.tries, event.detail.live); });
    var search = section.querySelector(".log-search");
    search.addEventListener("change", function () { self.search(search.value); });
    section.querySelector(".log-next").addEventListener("click", function () { self.jump(1); });
    section.querySelector(".log-prev").addEventListener("click", function () { self.jump(-1); });
  }

  LogView.prototype.bindTab = function (tab) {
    var self = this;
    tab.addEventListener("click", function () { self.open(parseInt(tab.dataset.try, 10)); });
  };

  // The instance now has `count` tries: add the missing tabs; a reader who was on the newest try (or on none)
  // moves to the new newest one, which is followed live when `live`.
  LogView.prototype.tries = function (count, live) {
    var list = this.section.querySelector(".log-tabs");
    var had = list.querySelectorAll(".log-tab").length;
    var onNewest = this.tryNumber === null || this.isLast();
    this.section.dataset.live = String(live);
    for (var n = had + 1; n <= count; n++) {
      var tab = document.createElement("button");
      tab.type = "button";
      tab.className = "log-tab";
      tab.setAttribute("role", "tab");
      tab.setAttribute("aria-selected", "false");
      tab.dataset.try = String(n);
      tab.textContent = "Try " + n;
      list.appendChild(tab);
      this.bindTab(tab);
    }
    if (count > 0) {
      this.section.querySelector(".log-none").hidden = true;
      this.section.querySelector(".log-body").hidden = false;
    }
    if (count > had && onNewest) this.open(count);
    else if (live && this.isLast() && !this.stream) this.follow();
  };

  LogView.prototype.url = function (suffix, params) {
    var query = new URLSearchParams(params || {});
    query.set("map_index", this.section.dataset.mapIndex);
    return this.section.dataset.base + "/logs/" + this.tryNumber + (suffix || "") + "?" + query.toString();
  };

  LogView.prototype.fetchJson = function (params) {
    return fetch(this.url("", params), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        return r.json().then(function (body) { if (!r.ok) throw new Error(body.detail || "HTTP " + r.status); return body; });
      });
  };

  LogView.prototype.store = function (start, lines) {
    for (var i = 0; i < lines.length; i++) this.lines[start + i] = lines[i];
  };

  LogView.prototype.open = function (tryNumber) {
    var self = this;
    if (this.stream) { this.stream.close(); this.stream = null; }
    this.tryNumber = tryNumber;
    this.lines = {}; this.loading = {}; this.hits = []; this.hit = -1; this.total = 0;
    this.section.querySelectorAll(".log-tab").forEach(function (tab) {
      tab.setAttribute("aria-selected", String(parseInt(tab.dataset.try, 10) === tryNumber));
    });
    var download = this.section.querySelector(".log-download");
    download.setAttribute("href", this.url("/download"));
    this.status.textContent = "Loading…";
    this.fetchJson({ count: BLOCK }).then(function (page) {
      self.total = page.total;
      self.store(page.start, page.lines);
      self.section.querySelector(".log-source").textContent = page.source;
      download.hidden = Boolean(page.missing);
      self.status.textContent = page.missing ? "No log yet for try " + tryNumber + "." : page.total + " lines";
      self.resize(true);
      if (self.isLast() && self.section.dataset.live === "true") self.follow();
    }).catch(function (e) {
      self.status.textContent = e.message;
      if (self.isLast() && self.section.dataset.live === "true") self.follow();
    });
  };

  LogView.prototype.isLast = function () {
    var tabs = this.section.querySelectorAll(".log-tab");
    return tabs.length && parseInt(tabs[tabs.length - 1].dataset.try, 10) === this.tryNumber;
  };

  LogView.prototype.atBottom = function () {
    return this.view.scrollTop + this.view.clientHeight >= this.view.scrollHeight - LINE * 2;
  };

  LogView.prototype.resize = function (toBottom) {
    this.spacer.style.height = Math.max(this.total * LINE, LINE) + "px";
    if (toBottom) this.view.scrollTop = this.view.scrollHeight;
    this.paint();
  };

  LogView.prototype.load = function (block) {
    var self = this;
    if (this.loading[block]) return;
    this.loading[block] = true;
    this.fetchJson({ start: block * BLOCK, count: BLOCK }).then(function (page) {
      self.store(page.start, page.lines);
      self.paint();
    }).catch(function (e) { self.status.textContent = e.message; });
  };

  LogView.prototype.paint = function () {
    var first = Math.max(Math.floor(this.view.scrollTop / LINE) - OVERSCAN, 0);
    var last = Math.min(Math.ceil((this.view.scrollTop + this.view.clientHeight) / LINE) + OVERSCAN, this.total);
    this.box.style.transform = "translateY(" + first * LINE + "px)";
    this.box.textContent = "";
    var hitLine = this.hit >= 0 ? this.hits[this.hit] : -1;
    for (var n = first; n < last; n++) {
      var row = document.createElement("div");
      row.className = "log-line" + (n === hitLine ? " log-hit" : "");
      var number = document.createElement("span");
      number.className = "log-number";
      number.textContent = String(n + 1);
      row.appendChild(number);
      var text = document.createElement("span");
      text.className = "log-text";
      if (n in this.lines) window.zondaAnsi.render(text, this.lines[n]);
      else { text.textContent = "…"; this.load(Math.floor(n / BLOCK)); }
      row.appendChild(text);
      this.box.appendChild(row);
    }
  };

  LogView.prototype.search = function (query) {
    var self = this;
    this.hits = []; this.hit = -1;
    if (!query) { this.status.textContent = this.total + " lines"; this.paint(); return; }
    this.fetchJson({ q: query, count: 1 }).then(function (page) {
      self.hits = page.hits || [];
      self.status.textContent = self.hits.length ? self.hits.length + " matches" : "No match";
      if (self.hits.length) self.jump(1);
    }).catch(function (e) { self.status.textContent = e.message; });
  };

  LogView.prototype.jump = function (step) {
    if (!this.hits.length) return;
    this.hit = (this.hit + step + this.hits.length) % this.hits.length;
    this.status.textContent = "Match " + (this.hit + 1) + " of " + this.hits.length;
    this.view.scrollTop = Math.max(this.hits[this.hit] * LINE - this.view.clientHeight / 2, 0);
    this.paint();
  };

  LogView.prototype.follow = function () {
    var self = this;
    var source = new EventSource(this.url("/stream", { line: this.total }));
    this.stream = source;
    source.onmessage = function (event) {
      var lines = JSON.parse(event.data);
      var stick = self.atBottom();
      var start = parseInt(event.lastEventId, 10) - lines.length;
      self.store(start, lines);
      self.total = Math.max(self.total, start + lines.length);
      self.status.textContent = self.total + " lines (live)";
      self.resize(stick);
    };
    source.addEventListener("end", function () {
      source.close();
      self.status.textContent = self.total + " lines";
    });
  };

  document.addEventListener("DOMContentLoaded", function () {
    var section = document.getElementById("log");
    if (!section || !section.querySelector(".log-view")) return;
    var view = new LogView(section);
    var tabs = section.querySelectorAll(".log-tab");
    if (tabs.length) view.open(parseInt(tabs[tabs.length - 1].dataset.try, 10));
  });
})();
