// The theme toggle. Loaded synchronously in <head> (not deferred) so a chosen theme is on <html> before the
// first paint: no flash of the wrong theme. Without a choice the page follows prefers-color-scheme (zonda.css).
(function () {
  "use strict";
  var KEY = "zonda-theme";
  var root = document.documentElement;

  function stored() {
    try {
      var value = window.localStorage.getItem(KEY);
      return value === "dark" || value === "light" ? value : null;
    } catch (e) {
      return null; // storage refused (private mode, policy): follow the system
    }
  }

  function store(theme) {
    try {
      window.localStorage.setItem(KEY, theme);
    } catch (e) {
      // the choice lasts for this page only
    }
  }

  function effective() {
    var chosen = root.dataset.theme;
    if (chosen === "dark" || chosen === "light") return chosen;
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  function showState(button) {
    button.setAttribute("aria-pressed", effective() === "dark" ? "true" : "false");
  }

  var initial = stored();
  if (initial) root.dataset.theme = initial;

  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("theme-toggle");
    if (!button) return;
    button.hidden = false;
    showState(button);
    button.addEventListener("click", function () {
      var next = effective() === "dark" ? "light" : "dark";
      root.dataset.theme = next;
      store(next);
      showState(button);
    });
  });
})();
