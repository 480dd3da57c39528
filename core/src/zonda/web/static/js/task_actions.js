// Clear / mark a task instance: the first POST asks for a preview (nothing changes), the list of what would
// change is shown, and "Confirm" sends the same form with confirm=true. Values are shown as text.
(function () {
  "use strict";

  function post(form, action, extra) {
    var body = new URLSearchParams(new FormData(form));
    if (action === "mark") body.delete("only_failed");
    for (var key in extra) body.set(key, extra[key]);
    return fetch("/dags/" + encodeURIComponent(form.dataset.dag) + "/task_instances/" + action, {
      method: "POST", credentials: "same-origin", body: body,
      headers: { Accept: "application/json", "X-CSRF-Token": body.get("csrf_token") }
    }).then(function (r) {
      return r.json().then(function (data) { if (!r.ok) throw new Error(data.detail || "HTTP " + r.status); return data; });
    });
  }

  function describe(action, extra, data) {
    var verb = action === "clear" ? "clear" : "mark " + extra.state;
    if (!data.dry_run) return "Done: " + data.changed + " changed" +
      (data.changed_meanwhile ? ", " + data.changed_meanwhile + " changed meanwhile and left alone" : "") + ".";
    if (!data.instances.length) return "Nothing to " + verb + ".";
    return "This will " + verb + " " + data.instances.length + " task instance(s)" +
      (data.runs.length ? " and queue " + data.runs.length + " run(s) again" : "") + ":";
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
      summary.textContent = describe(action, extra, data);
      list.textContent = "";
      data.instances.forEach(function (ti) {
        var item = document.createElement("li");
        item.textContent = ti.task_id + (ti.map_index >= 0 ? " [" + ti.map_index + "]" : "") + " in " + ti.run_id +
          " (" + ti.state + ")";
        list.appendChild(item);
      });
      confirm.hidden = !data.dry_run || !data.instances.length;
    }

    form.querySelectorAll("button[data-action]").forEach(function (button) {
      button.addEventListener("click", function () {
        var extra = button.dataset.state ? { state: button.dataset.state } : {};
        chosen = { action: button.dataset.action, extra: extra };
        post(form, chosen.action, extra).then(function (data) { show(chosen.action, extra, data); })
          .catch(function (e) { preview.hidden = false; summary.textContent = e.message; list.textContent = ""; confirm.hidden = true; });
      });
    });
    confirm.addEventListener("click", function () {
      if (!chosen) return;
      var extra = Object.assign({ confirm: "true" }, chosen.extra);
      post(form, chosen.action, extra).then(function (data) {
        show(chosen.action, chosen.extra, data);
        setTimeout(function () { window.location.reload(); }, 800);
      }).catch(function (e) { summary.textContent = e.message; });
    });
    preview.querySelector(".preview-cancel").addEventListener("click", function () { preview.hidden = true; chosen = null; });
  });
})();
