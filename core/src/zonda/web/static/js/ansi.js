// ANSI colours in log lines: SGR escape codes ("\x1b[1;31m") become spans with classes; every other escape
// sequence is dropped. The text always goes through textContent, never innerHTML.
(function () {
  "use strict";
  var ESCAPE = /\x1b\[([0-9;]*)([A-Za-z])/g;

  function apply(state, codes) {
    var parts = codes === "" ? ["0"] : codes.split(";");
    for (var i = 0; i < parts.length; i++) {
      var n = parseInt(parts[i] || "0", 10);
      if (n === 0) { state.fg = null; state.bg = null; state.bold = false; state.italic = false; state.underline = false; }
      else if (n === 1) state.bold = true;
      else if (n === 3) state.italic = true;
      else if (n === 4) state.underline = true;
      else if (n === 22) state.bold = false;
      else if (n === 23) state.italic = false;
      else if (n === 24) state.underline = false;
      else if ((n >= 30 && n <= 37) || (n >= 90 && n <= 97)) state.fg = n;
      else if (n === 39) state.fg = null;
      else if ((n >= 40 && n <= 47) || (n >= 100 && n <= 107)) state.bg = n;
      else if (n === 49) state.bg = null;
      else if ((n === 38 || n === 48) && parts[i + 1] === "5") i += 2;  // 256 colours: not shown
      else if ((n === 38 || n === 48) && parts[i + 1] === "2") i += 4;  // true colour: not shown
    }
  }

  function classes(state) {
    var list = [];
    if (state.fg !== null) list.push("ansi-fg-" + state.fg);
    if (state.bg !== null) list.push("ansi-bg-" + state.bg);
    if (state.bold) list.push("ansi-bold");
    if (state.italic) list.push("ansi-italic");
    if (state.underline) list.push("ansi-underline");
    return list;
  }

  // Split a line into [{text, classes}] segments.
  function parse(line) {
    var state = { fg: null, bg: null, bold: false, italic: false, underline: false };
    var segments = [];
    var last = 0;
    var match;
    ESCAPE.lastIndex = 0;
    while ((match = ESCAPE.exec(line)) !== null) {
      if (match.index > last) segments.push({ text: line.slice(last, match.index), classes: classes(state) });
      if (match[2] === "m") apply(state, match[1]);
      last = ESCAPE.lastIndex;
    }
    if (last < line.length) segments.push({ text: line.slice(last), classes: classes(state) });
    for (var i = 0; i < segments.length; i++) {
      // Other control characters (a lone ESC, bells) are not shown.
      segments[i].text = segments[i].text.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, "");
    }
    return segments;
  }

  // Fill element with the line's segments, as text.
  function render(element, line) {
    element.textContent = "";
    var segments = parse(line);
    for (var i = 0; i < segments.length; i++) {
      var seg = segments[i];
      if (!seg.classes.length) { element.appendChild(document.createTextNode(seg.text)); continue; }
      var span = document.createElement("span");
      span.className = seg.classes.join(" ");
      span.textContent = seg.text;
      element.appendChild(span);
    }
  }

  window.zondaAnsi = { parse: parse, render: render };
})();
