// The grid of one DAG: runs (columns, oldest left) against tasks (rows), drawn from /dags/<id>/grid.json.
//
// Only the rows in view (plus a margin) exist in the DOM, so 1,000 tasks cost what 40 do. Task groups fold;
// a folded group's row shows, per run, the most urgent state of its tasks. A mapped task is one row whose cell
// shows the summary of its instances. Every value from the DAG is inserted with textContent or as an attribute
// value, never as markup. Cells carry data-dag-id, data-run-id, data-task-id and data-map-index (group cells
// data-group-id) for menus other scripts attach. With data-actions="on" on the grid (roles that may clear and
// mark), each task and group label also gets a "⋯" button (class row-menu) that grid_actions.js answers, and
// group cells take the keyboard focus.
(function () {
  "use strict";

  const ROW_HEIGHT = 22;
  const MARGIN_ROWS = 12;
  // Which state a row of several shows: the first present (same order as zonda.operations.grid).
  const PRECEDENCE = ["failed", "upstream_failed", "up_for_retry", "up_for_reschedule", "running", "deferred",
    "queued", "scheduled", "none", "success", "skipped", "removed"];
  const ABSENT = ".";

  const { debounce, fetchJson, enc } = window.zondaFetch;

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  class Grid {
    constructor(root) {
      this.root = root;
      this.dagId = root.dataset.dagId;
      this.before = root.dataset.before || "";
      this.status = root.querySelector(".grid-status");
      this.frame = root.querySelector(".grid-frame");
      this.head = root.querySelector(".grid-head");
      this.body = root.querySelector(".grid-body");
      this.spacer = root.querySelector(".grid-spacer");
      this.actions = root.dataset.actions === "on";
      this.collapsed = new Set();
      this.data = null;
      this.rows = [];
      this.drawn = [];
      this.pending = false;
      this.body.addEventListener("scroll", () => this.schedule(), { passive: true });
      window.addEventListener("resize", () => this.schedule());
      this.body.addEventListener("click", (event) => this.onClick(event));
    }

    url() {
      const query = this.before ? "?before=" + enc(this.before) : "";
      return "/dags/" + enc(this.dagId) + "/grid.json" + query;
    }

    async load() {
      let data;
      try {
        data = await fetchJson(this.url());
      } catch (error) {
        this.status.hidden = false;
        this.status.textContent = "The grid could not be loaded: " + error.message;
        return;
      }
      this.setData(data);
    }

    setData(data) {
      this.data = data;
      this.runs = data.runs.slice().reverse(); // oldest left, newest right
      this.tasks = data.tasks;
      this.groups = data.groups;
      this.codes = data.codes;
      this.groupCache = new Map();
      this.members = this.groupMembers();
      this.mappedMax = this.mappedCounts();
      this.root.style.setProperty("--runs", String(this.runs.length));
      this.status.textContent = this.runs.length ? "" : "No runs yet.";
      this.status.hidden = this.runs.length > 0;
      this.frame.hidden = false;
      this.drawPager();
      this.drawHead();
      this.buildRows();
    }

    ancestors(groupIndex) {
      const chain = [];
      for (let g = groupIndex, guard = 0; g >= 0 && guard <= this.groups.length; g = this.groups[g][1], guard++) {
        chain.unshift(g);
      }
      return chain;
    }

    groupMembers() {
      const members = this.groups.map(() => []);
      this.tasks.forEach((task, index) => {
        for (const g of this.ancestors(task[1])) members[g].push(index);
      });
      return members;
    }

    mappedCounts() {
      const most = new Map();
      for (const run of this.runs) {
        for (const [index, counts] of Object.entries(run.mapped || {})) {
          const total = Object.values(counts).reduce((a, b) => a + b, 0);
          most.set(Number(index), Math.max(most.get(Number(index)) || 0, total));
        }
      }
      return most;
    }

    buildRows() {
      const rows = [];
      const open = [];
      this.tasks.forEach((task, index) => {
        const chain = this.ancestors(task[1]);
        let shared = 0;
        while (shared < open.length && shared < chain.length && open[shared] === chain[shared]) shared++;
        open.length = shared;
        let hidden = chain.slice(0, shared).some((g) => this.collapsed.has(g));
        for (let depth = shared; depth < chain.length; depth++) {
          const g = chain[depth];
          if (!hidden) rows.push({ group: g, depth: depth });
          open.push(g);
          hidden = hidden || this.collapsed.has(g);
        }
        if (!hidden) rows.push({ task: index, depth: chain.length });
      });
      this.rows = rows;
      this.root.style.setProperty("--rows", String(rows.length));
      this.render();
    }

    schedule() {
      if (this.pending) return;
      this.pending = true;
      requestAnimationFrame(() => { this.pending = false; this.render(); });
    }

    render() {
      for (const row of this.drawn) row.remove();
      this.drawn = [];
      const top = this.body.scrollTop;
      const height = this.body.clientHeight || 600;
      const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - MARGIN_ROWS);
      const last = Math.min(this.rows.length, Math.ceil((top + height) / ROW_HEIGHT) + MARGIN_ROWS);
      const fragment = document.createDocumentFragment();
      for (let i = first; i < last; i++) {
        const row = this.drawRow(this.rows[i]);
        row.style.top = i * ROW_HEIGHT + "px";
        fragment.appendChild(row);
        this.drawn.push(row);
      }
      this.body.appendChild(fragment);
    }

    drawRow(row) {
      const line = element("div", "grid-row");
      if (row.group !== undefined) {
        line.appendChild(this.groupLabel(row.group, row.depth));
        this.runs.forEach((run, r) => line.appendChild(this.groupCell(row.group, run, r)));
      } else {
        line.appendChild(this.taskLabel(row.task, row.depth));
        this.runs.forEach((run) => line.appendChild(this.taskCell(row.task, run)));
      }
      return line;
    }

    shortName(name, groupIndex) {
      const prefix = groupIndex >= 0 ? this.groups[groupIndex][0] + "." : "";
      return prefix && name.startsWith(prefix) ? name.slice(prefix.length) : name;
    }

    groupLabel(g, depth) {
      const label = element("div", "grid-label");
      label.style.setProperty("--depth", String(depth));
      const folded = this.collapsed.has(g);
      const toggle = element("button", "fold", folded ? "+" : "−");
      toggle.type = "button";
      toggle.dataset.group = String(g);
      toggle.setAttribute("aria-expanded", folded ? "false" : "true");
      toggle.setAttribute("aria-label", (folded ? "Unfold " : "Fold ") + this.groups[g][0]);
      label.appendChild(toggle);
      label.appendChild(element("strong", "", this.shortName(this.groups[g][0], this.groups[g][1])));
      label.appendChild(element("span", "count", "(" + this.members[g].length + " tasks)"));
      label.title = this.groups[g][0];
      if (this.actions) label.appendChild(this.rowMenu("groupId", this.groups[g][0], "group "));
      return label;
    }

    taskLabel(index, depth) {
      const task = this.tasks[index];
      const label = element("div", "grid-label", this.shortName(task[0], task[1]));
      label.style.setProperty("--depth", String(depth));
      label.title = task[0];
      if (task[2]) label.appendChild(element("span", "count", "[" + (this.mappedMax.get(index) || 0) + "]"));
      if (this.actions) label.appendChild(this.rowMenu("taskId", task[0], ""));
      return label;
    }

    // The "⋯" button of a label: clear or mark this task (or group) in every run shown.
    rowMenu(key, id, kind) {
      const button = element("button", "row-menu", "⋯");
      button.type = "button";
      button.dataset[key] = id;
      button.setAttribute("aria-haspopup", "dialog");
      button.setAttribute("aria-label", "Clear or mark " + kind + id + " in the runs shown");
      return button;
    }

    taskCell(index, run) {
      const task = this.tasks[index];
      const code = run.states.charAt(index) || ABSENT;
      if (code === ABSENT) {
        const empty = element("span", "cell absent");
        empty.title = task[0] + " has no instance in " + run.run_id;
        return empty;
      }
      const state = this.codes[code] || "none";
      const cell = element("a", "cell st-" + state + (task[2] ? " mapped" : ""));
      let href = "/dags/" + enc(this.dagId) + "/runs/" + enc(run.run_id) + "/tasks/" + enc(task[0]);
      let title = task[0] + " · " + run.run_id + ": " + state;
      cell.dataset.dagId = this.dagId;
      cell.dataset.runId = run.run_id;
      cell.dataset.taskId = task[0];
      cell.dataset.state = state;
      if (task[2]) {
        const counts = (run.mapped || {})[String(index)] || {};
        const parts = Object.entries(counts).map(([name, n]) => n + " " + name);
        const total = Object.values(counts).reduce((a, b) => a + b, 0);
        cell.dataset.mapIndex = "";
        cell.dataset.mapCount = String(total);
        title += " (" + total + " mapped: " + parts.join(", ") + ")";
      } else {
        cell.dataset.mapIndex = "-1";
        href += "?map_index=-1";
      }
      cell.href = href;
      cell.title = title;
      cell.setAttribute("aria-label", title);
      return cell;
    }

    groupState(g, runIndex) {
      const key = g + ":" + runIndex;
      if (!this.groupCache.has(key)) {
        const states = this.runs[runIndex].states;
        const present = new Set(this.members[g].map((i) => this.codes[states.charAt(i)]).filter(Boolean));
        this.groupCache.set(key, PRECEDENCE.find((s) => present.has(s)) || null);
      }
      return this.groupCache.get(key);
    }

    groupCell(g, run, runIndex) {
      const state = this.groupState(g, runIndex);
      if (!state) return element("span", "cell absent");
      const cell = element("span", "cell group st-" + state);
      cell.dataset.dagId = this.dagId;
      cell.dataset.runId = run.run_id;
      cell.dataset.groupId = this.groups[g][0];
      cell.dataset.state = state;
      if (this.actions) cell.tabIndex = 0;
      cell.title = this.groups[g][0] + " · " + run.run_id + ": " + state;
      return cell;
    }

    drawHead() {
      this.head.replaceChildren(element("div", "grid-label", "Task \\ Run"));
      for (const run of this.runs) {
        const link = element("a", "run st-" + run.state);
        link.href = "/dags/" + enc(this.dagId) + "/runs/" + enc(run.run_id);
        link.dataset.dagId = this.dagId;
        link.dataset.runId = run.run_id;
        const title = run.run_id + " · " + (run.logical_date || "") + " · " + run.state;
        link.title = title;
        link.setAttribute("aria-label", "Run " + title);
        this.head.appendChild(link);
      }
    }

    drawPager() {
      const base = "/dags/" + enc(this.dagId);
      const newest = this.root.querySelector(".grid-newest");
      const older = this.root.querySelector(".grid-older");
      newest.hidden = !this.before;
      older.hidden = this.data.next_before === null || this.data.next_before === undefined;
      if (!older.hidden) older.href = base + "?before=" + enc(String(this.data.next_before));
    }

    onClick(event) {
      const toggle = event.target.closest("button.fold");
      if (!toggle) return;
      const g = Number(toggle.dataset.group);
      if (this.collapsed.has(g)) this.collapsed.delete(g); else this.collapsed.add(g);
      this.buildRows();
      const again = this.body.querySelector('button.fold[data-group="' + g + '"]');
      if (again) again.focus();
    }
  }

  function start() {
    const root = document.getElementById("grid");
    if (!root) return;
    const grid = new Grid(root);
    root.zondaGrid = grid;
    grid.load();
    if (window.zondaLive) {
      window.zondaLive.on({ dag_id: grid.dagId }, debounce(() => grid.load(), 400));
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
