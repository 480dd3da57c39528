// The graph of one DAG from /dags/<id>/graph.json, laid out by dagre in a web worker, drawn as SVG. Nodes are
// coloured by the newest run's states and open that run's task instance; task groups are boxes around their
// tasks. Names from the DAG are set with textContent, never parsed as markup.
(function () {
  "use strict";

  const SVG = "http://www.w3.org/2000/svg";
  const CHAR_WIDTH = 7.2;

  const { debounce, fetchJson, enc } = window.zondaFetch;

  function svg(tag, attributes, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function shortName(name, groups, groupIndex) {
    const prefix = groupIndex >= 0 ? groups[groupIndex][0] + "." : "";
    return prefix && name.startsWith(prefix) ? name.slice(prefix.length) : name;
  }

  class Graph {
    constructor(root) {
      this.root = root;
      this.dagId = root.dataset.dagId;
      this.status = root.querySelector(".graph-status");
      this.canvas = root.querySelector(".graph-canvas");
      this.worker = new Worker(root.dataset.worker);
      this.worker.onmessage = (event) => this.draw(event.data);
      this.worker.onerror = (event) => { this.status.textContent = "The graph could not be laid out: " + event.message; };
      this.nodes = [];
    }

    fetchData() {
      return fetchJson("/dags/" + enc(this.dagId) + "/graph.json");
    }

    async load() {
      try {
        this.data = await this.fetchData();
      } catch (error) {
        this.status.textContent = "The graph could not be loaded: " + error.message;
        return;
      }
      const data = this.data;
      const used = data.groups.map(() => false);
      for (const task of data.tasks) {
        for (let g = task[1], guard = 0; g >= 0 && guard <= data.groups.length; g = data.groups[g][1], guard++) used[g] = true;
      }
      this.worker.postMessage({
        groups: data.groups.map((group, index) => [group[0], group[1], used[index]]),
        tasks: data.tasks.map((task) => {
          const label = shortName(task[0], data.groups, task[1]) + (task[2] ? " [mapped]" : "");
          return [task[0], task[1], task[2], task[3], Math.min(320, Math.max(60, label.length * CHAR_WIDTH + 24))];
        }),
        edges: data.edges,
      });
    }

    async refreshStates() {
      try {
        const fresh = await this.fetchData();
        if (JSON.stringify(fresh.tasks) !== JSON.stringify(this.data.tasks)) return this.load();
        this.data = fresh;
        this.nodes.forEach((node, index) => this.colour(node, index));
      } catch (ignored) { /* the next change tries again */ }
    }

    stateOf(index) {
      const run = this.data.latest_run;
      if (!run) return null;
      const code = run.states.charAt(index);
      return code && code !== "." ? this.data.codes[code] || "none" : null;
    }

    colour(node, index) {
      const state = this.stateOf(index);
      node.setAttribute("class", "node" + (state ? " st-" + state : ""));
      node.querySelector("title").textContent = this.data.tasks[index][0] + " (" + this.data.tasks[index][3] + ")" + (state ? ": " + state : "");
    }

    draw(layout) {
      const data = this.data;
      // A group, not an image: its nodes are focusable links (controls nested in an image are hidden from readers).
      const root = svg("svg", { width: Math.ceil(layout.width), height: Math.ceil(layout.height), role: "group" });
      root.setAttribute("aria-label", "Graph of " + this.dagId);
      layout.groups.forEach((box, index) => {
        if (!box) return;
        const cluster = svg("g", { class: "cluster" });
        cluster.appendChild(svg("rect", { x: box[0], y: box[1], width: box[2], height: box[3] }));
        cluster.appendChild(svg("text", { x: box[0] + 8, y: box[1] + 17 }, shortName(data.groups[index][0], data.groups, data.groups[index][1])));
        root.appendChild(cluster);
      });
      layout.edges.forEach((points, index) => {
        const d = points.map((p, i) => (i ? "L" : "M") + p[0].toFixed(1) + " " + p[1].toFixed(1)).join(" ");
        root.appendChild(svg("path", { class: "edge", d: d }));
        const label = data.edges[index][2];
        if (label) {
          const middle = points[Math.floor(points.length / 2)];
          root.appendChild(svg("text", { class: "edge-label", x: middle[0], y: middle[1] - 4, "text-anchor": "middle" }, label));
        }
      });
      const run = data.latest_run;
      this.nodes = data.tasks.map((task, index) => {
        const box = layout.tasks[index];
        let node;
        if (run) {
          let href = "/dags/" + enc(this.dagId) + "/runs/" + enc(run.run_id) + "/tasks/" + enc(task[0]);
          if (!task[2]) href += "?map_index=-1";
          node = svg("a", { href: href });
          node.dataset.runId = run.run_id;
        } else {
          node = svg("g", { tabindex: 0 });
        }
        node.dataset.dagId = this.dagId;
        node.dataset.taskId = task[0];
        node.appendChild(svg("title", {}));
        node.appendChild(svg("rect", { x: box[0], y: box[1], width: box[2], height: box[3] }));
        const label = shortName(task[0], data.groups, task[1]) + (task[2] ? " [mapped]" : "");
        node.appendChild(svg("text", { x: box[0] + 12, y: box[1] + 19 }, label));
        this.colour(node, index);
        root.appendChild(node);
        return node;
      });
      this.canvas.replaceChildren(root);
      this.status.textContent = run ? "Colours: the states of run " + run.run_id + "." : "No runs yet.";
    }
  }

  function start() {
    const root = document.getElementById("graph");
    if (!root) return;
    const graph = new Graph(root);
    graph.load();
    if (window.zondaLive) window.zondaLive.on({ dag_id: graph.dagId }, debounce(() => graph.refreshStates(), 400));
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
