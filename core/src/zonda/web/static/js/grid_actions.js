// The grid's bulk menu: Clear, Mark success or Mark failed for what the user points at, with the preview the
// endpoints answer before anything changes.
//
// What it acts on, from the element's data-* attributes (set by grid.js):
//   a task cell            -> that task instance (task_id, run_id, map_index; a mapped cell: all its instances)
//   a group cell           -> the group's tasks in that run (task_group, run_id)
//   a run in the head      -> every task of that run (run_id)
//   a task label's "⋯"     -> the task across the runs shown (task_id, run_id for each)
//   a group label's "⋯"    -> the group across the runs shown (task_group, run_id for each)
// It opens on a right click, on Shift+F10 or the menu key over a focused cell or run, and on the "⋯" buttons.
// A plain click still follows a cell's link (a task's page and log are one click away). The menu is a modal
// <dialog> in the page (only for roles that may clear or mark); every value goes in as text.
(function () {
  "use strict";

  const TARGETS = "a.cell[data-task-id], .cell.group[data-group-id], .grid-head a.run[data-run-id], button.row-menu";

  function targetOf(node, grid) {
    const shown = grid.runs.map((run) => run.run_id);
    const data = node.dataset;
    if (node.matches("button.row-menu") && data.taskId) {
      return { title: "Task " + data.taskId + " in the " + shown.length + " runs shown",
        fields: [["task_id", data.taskId]].concat(shown.map((r) => ["run_id", r])) };
    }
    if (node.matches("button.row-menu")) {
      return { title: "Group " + data.groupId + " in the " + shown.length + " runs shown",
        fields: [["task_group", data.groupId]].concat(shown.map((r) => ["run_id", r])) };
    }
    if (data.groupId) {
      return { title: "Group " + data.groupId + " in run " + data.runId,
        fields: [["task_group", data.groupId], ["run_id", data.runId]] };
    }
    if (data.taskId) {
      const fields = [["task_id", data.taskId], ["run_id", data.runId]];
      if (data.mapIndex) fields.push(["map_index", data.mapIndex]);
      const mapped = data.mapIndex ? "" : " (all " + (data.mapCount || 0) + " mapped instances)";
      return { title: "Task " + data.taskId + mapped + " in run " + data.runId, fields: fields };
    }
    return { title: "Every task of run " + data.runId, fields: [["run_id", data.runId]] };
  }

  class BulkMenu {
    constructor(root, dialog) {
      this.root = root;
      this.dialog = dialog;
      this.form = dialog.querySelector("form");
      this.heading = dialog.querySelector(".grid-actions-title");
      this.preview = dialog.querySelector(".preview");
      this.summary = dialog.querySelector(".preview-summary");
      this.list = dialog.querySelector(".preview-list");
      this.confirm = dialog.querySelector(".preview-confirm");
      this.target = null;
      this.chosen = null;
      root.addEventListener("contextmenu", (event) => this.onPoint(event));
      root.addEventListener("click", (event) => {
        const button = event.target.closest("button.row-menu");
        if (button) this.open(button);
      });
      root.addEventListener("keydown", (event) => {
        const wants = event.key === "ContextMenu" || (event.key === "F10" && event.shiftKey);
        const node = wants && event.target.closest && event.target.closest(TARGETS);
        if (!node) return;
        event.preventDefault();
        this.open(node);
      });
      this.form.querySelectorAll("button[data-action]").forEach((button) => {
        button.addEventListener("click", () => this.ask(button.dataset.action, button.dataset.state || ""));
      });
      this.confirm.addEventListener("click", () => this.apply());
      dialog.querySelector(".preview-cancel").addEventListener("click", () => this.reset());
    }

    onPoint(event) {
      const node = event.target.closest(TARGETS);
      if (!node || !this.root.zondaGrid || !this.root.zondaGrid.runs) return;
      event.preventDefault();
      this.open(node);
    }

    open(node) {
      this.target = targetOf(node, this.root.zondaGrid);
      this.heading.textContent = this.target.title;
      this.form.querySelectorAll("input[type=checkbox]").forEach((box) => { box.checked = false; });
      this.reset();
      this.dialog.showModal();
    }

    reset() {
      this.chosen = null;
      this.preview.hidden = true;
      this.summary.textContent = "";
      this.list.textContent = "";
    }

    body(extra) {
      const body = new URLSearchParams(new FormData(this.form));
      for (const [name, value] of this.target.fields) body.append(name, value);
      for (const [name, value] of Object.entries(extra)) body.set(name, value);
      return body;
    }

    show(data) {
      const actions = window.zondaTaskActions;
      this.preview.hidden = false;
      this.summary.textContent = actions.describe(this.chosen.action, this.chosen.state, data);
      actions.showInstances(this.list, data);
      this.confirm.hidden = !data.dry_run || !data.instances.length;
    }

    fail(error) {
      this.preview.hidden = false;
      this.summary.textContent = error.message;
      this.list.textContent = "";
      this.confirm.hidden = true;
    }

    ask(action, state) {
      this.chosen = { action: action, state: state };
      const extra = state ? { state: state } : {};
      window.zondaTaskActions.send(this.root.dataset.dagId, action, this.body(extra))
        .then((data) => this.show(data), (error) => this.fail(error));
    }

    apply() {
      if (!this.chosen) return;
      const extra = { confirm: "true" };
      if (this.chosen.state) extra.state = this.chosen.state;
      window.zondaTaskActions.send(this.root.dataset.dagId, this.chosen.action, this.body(extra))
        .then((data) => { this.show(data); this.root.zondaGrid.load(); }, (error) => this.fail(error));
    }
  }

  function start() {
    const root = document.getElementById("grid");
    const dialog = document.getElementById("grid-actions");
    if (root && dialog && window.zondaTaskActions) root.zondaBulkMenu = new BulkMenu(root, dialog);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
