// Lays out one DAG's graph with dagre (vendored) off the page's thread, so a big DAG never freezes the page.
// In: {tasks: [[id, groupIndex, mapped, operator, width]], groups: [[id, parentIndex]], edges: [[from, to]]}.
// Out: positions of tasks and groups, and the points of each edge.
/* global dagre, importScripts */
"use strict";
importScripts("/static/vendor/dagre.min.js");

self.onmessage = function (event) {
  const input = event.data;
  const graph = new dagre.graphlib.Graph({ compound: true });
  graph.setGraph({ rankdir: "LR", nodesep: 14, ranksep: 46, marginx: 16, marginy: 16 });
  graph.setDefaultEdgeLabel(function () { return {}; });
  input.groups.forEach(function (group, index) {
    if (group[2]) graph.setNode("g" + index, { paddingTop: 28, paddingLeft: 10, paddingRight: 10, paddingBottom: 10 });
  });
  input.groups.forEach(function (group, index) {
    if (group[2] && group[1] >= 0) graph.setParent("g" + index, "g" + group[1]);
  });
  input.tasks.forEach(function (task, index) {
    graph.setNode("t" + index, { width: task[4], height: 30 });
    if (task[1] >= 0) graph.setParent("t" + index, "g" + task[1]);
  });
  input.edges.forEach(function (edge) { graph.setEdge("t" + edge[0], "t" + edge[1]); });
  dagre.layout(graph);
  const place = function (id) {
    const node = graph.node(id);
    return [node.x - node.width / 2, node.y - node.height / 2, node.width, node.height];
  };
  self.postMessage({
    width: graph.graph().width,
    height: graph.graph().height,
    tasks: input.tasks.map(function (task, index) { return place("t" + index); }),
    groups: input.groups.map(function (group, index) { return group[2] ? place("g" + index) : null; }),
    edges: input.edges.map(function (edge) {
      return graph.edge("t" + edge[0], "t" + edge[1]).points.map(function (p) { return [p.x, p.y]; });
    }),
  });
};
