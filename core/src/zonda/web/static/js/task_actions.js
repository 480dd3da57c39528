// Clear / mark task instances: the first POST asks for a preview (nothing changes), the list of what would
// change is shown, and "Confirm" sends the same form with confirm=true. Values are shown as text.
//
// `window.zondaTaskActions` (send, describe, showInstances) is shared with the grid's bulk menu
// (grid_actions.js); the task page's own form is wired below.
(function () {
  "use strict";

  //: Most preview lines drawn; the rest is counted ("…and N more"), so clearing a 1,000-task run stays light.
  var MAX_LISTED = 100;

  // POST `body` (URLSearchParams with csrf_token) to the clear or mark endpoint; the JSON answer, or an Error
  // carrying the server's one-line detail.
  function send(dagId, action, body) {
    if (action === "mark") body.delete("only_failed");
    return fetch("/dags/" + encodeURIComponent(dagId) + "/task_instances/" + action, {
      method: "POST", credentials: "same-origin", body: body,
      headers: { Accept: "application/json", "X-CSRF-Token": body.get("csrf_token") }
    }).then(function (r) {
      return r.json().then(function (data) { if (!r.ok) throw new Error(data.detail || "HTTP " + r.status); return data; });
    });
  }

  function describe(action, state, data) {
    var verb = action === "clear" ? "clear" : "mark " + state;
    if (!data.dry_run) return "Done: " + data.changed + " changed" +
      (data.changed_meanwhile ? ", " + data.changed_meanwhile + " changed meanwhile and left alone" : "") + ".";
    if (!data.instances.length) return "Nothing to " + verb + ".";
    return "This will " + verb + " " + data.instances.length + " task instance(s)" +
      (data.runs.length ? " and queue " + data.runs.length + " run(s) again" : "") + ":";
  }

  // Fill `list` (a <ul>) with one line per instance of the answer, as text.
  function showInstances(list, data) {
    list.textContent = "";
    data.instances.slice(0, MAX_LISTED).forEach(function (ti) {
      var item = document.createElement("li");
      item.textContent = ti.task_id + (ti.map_index >= 0 ? " [" + ti.map_index + "]" : "") + " in " + ti.run_id +
        " (" + ti.state + ")";
      list.appendChild(item);
    });
    if (data.instances.length > MAX_LISTED) {
      var more = document.createElement("li");
      more.textContent = "…and " + (data.instances.length - MAX_LISTED) + " more";
      list.appendChild(more);
    }
  }

  window.zondaTaskActions = Object.freeze({ send: send, describe: describe, showInstances: showInstances });

  function formBody(form, extra) {
    var body = new URLSearchParams(new FormData(form));
    for (var key in extra) body.set(key, extra[key]);
    return body;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.querySelector("form.ti-action");
    if (!form) return;
    var preview = document.querySelector(".preview");
    var summary = preview.querySelector(".preview-summary");
    var list = preview.querySelector(".preview-list");
    var confirm = preview.querySelector(".preview-confirm");
    var chosen = null;

    function show(action, extra, data) {
      preview.hidden = false;
      summary.textContent = describe(action, extra.state, data);
      showInstances(list, data);
      confirm.hidden = !data.dry_run || !data.instances.length;
    }

    form.querySelectorAll("button[data-action]").forEach(function (button) {
      button.addEventListener("click", function () {
        var extra = button.dataset.state ? { state: button.dataset.state } : {};
        chosen = { action: button.dataset.action, extra: extra };
        send(form.dataset.dag, chosen.action, formBody(form, extra)).then(function (data) { show(chosen.action, extra, data); })
          .catch(function (e) { preview.hidden = false; summary.textContent = e.message; list.textContent = ""; confirm.hidden = true; });
      });
    });
    confirm.addEventListener("click", function () {
      if (!chosen) return;
      var extra = Object.assign({ confirm: "true" }, chosen.extra);
      send(form.dataset.dag, chosen.action, formBody(form, extra)).then(function (data) {
        show(chosen.action, chosen.extra, data);
        setTimeout(function () { window.location.reload(); }, 800);
      }).catch(function (e) { summary.textContent = e.message; });
    });
    preview.querySelector(".preview-cancel").addEventListener("click", function () { preview.hidden = true; chosen = null; });
  });
})();
