// Omegi web UI: the note graph on a <canvas>, laid out by d3-force (a
// Barnes–Hut many-body force, link springs and a pull to the centre;
// vendored under /assets/d3-*.min.js). The layout is computed before the
// first paint, within a time budget, then zoomed to fit the frame. Nodes are
// sized by their links; hubs and the hovered node are labelled and the
// hovered node's neighbours highlighted. Pan by dragging the background,
// zoom with the wheel (or + / −), drag nodes, click a node to open it.
"use strict";

(function () {
  const COLORS = {
    note: "#3b6fd8",
    center: "#d8553b",
    unresolved: "#9aa3b2",
    attachment: "#b07cc6",
    tag: "#2f9e6e",
    issue: "#c23a3a",
  };
  // The layout stops after this much of the browser's time even if it has
  // not settled (it then keeps settling, animated).
  const LAYOUT_BUDGET_MS = 1500;
  // Ticks from the start to a settled layout (d3's default is 300): the
  // many-body force dominates the cost, and 200 ticks settle a vault of a
  // few hundred notes as well.
  const LAYOUT_TICKS = 200;
  // Space kept free around the graph when it is fitted to its frame.
  const PADDING = 16;
  // The largest node radius factor at any zoom.
  const MAX_ZOOM_RADIUS = 1.6;

  function draw(canvas, graph, options) {
    options = options || {};
    const d3 = window.d3;
    const ctx = canvas.getContext("2d");
    const ratio = window.devicePixelRatio || 1;
    const nodes = graph.nodes.map(function (n) {
      return { data: n, degree: 0, neighbours: new Set() };
    });
    const links = [];
    graph.edges.forEach(function (e) {
      const a = nodes[e.from];
      const b = nodes[e.to];
      if (!a || !b || a === b) return;
      a.degree++;
      b.degree++;
      a.neighbours.add(b);
      b.neighbours.add(a);
      links.push({ source: a, target: b, kind: e.kind });
    });
    // Hubs: the best-linked nodes (at most 20, at least 3 links each).
    const hubs = new Set(
      nodes
        .filter(function (n) { return n.degree >= 3; })
        .sort(function (a, b) { return b.degree - a.degree; })
        .slice(0, Math.max(5, Math.min(20, Math.round(nodes.length * 0.05))))
    );
    const view = { x: 0, y: 0, scale: 1 };
    let width = 0;
    let height = 0;
    let hover = null;
    let stopped = false;

    function radius(n) {
      return Math.min(18, 3 + 1.6 * Math.sqrt(n.degree));
    }

    function zoomRadius() {
      return Math.max(0.6, Math.min(MAX_ZOOM_RADIUS, Math.sqrt(view.scale)));
    }

    const simulation = d3
      .forceSimulation(nodes)
      .alphaDecay(1 - Math.pow(0.001, 1 / LAYOUT_TICKS))
      .force("link", d3.forceLink(links).distance(36))
      .force("charge", d3.forceManyBody().strength(-70).theta(0.9).distanceMax(500))
      .force("x", d3.forceX(0).strength(0.07))
      .force("y", d3.forceY(0).strength(0.07))
      .stop();

    // Lay out before the first paint.
    const started = performance.now();
    let ticks = 0;
    while (simulation.alpha() > simulation.alphaMin() && performance.now() - started < LAYOUT_BUDGET_MS) {
      simulation.tick();
      ticks++;
    }
    const settleMs = performance.now() - started;
    const settled = simulation.alpha() <= simulation.alphaMin();

    function resize() {
      const rect = canvas.getBoundingClientRect();
      width = Math.max(100, rect.width);
      height = Math.max(100, rect.height);
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }

    function toScreen(n) {
      return {
        x: width / 2 + (n.x + view.x) * view.scale,
        y: height / 2 + (n.y + view.y) * view.scale,
      };
    }

    function toWorld(px, py) {
      return {
        x: (px - width / 2) / view.scale - view.x,
        y: (py - height / 2) / view.scale - view.y,
      };
    }

    function fit() {
      if (!nodes.length) return;
      let minX = Infinity;
      let minY = Infinity;
      let maxX = -Infinity;
      let maxY = -Infinity;
      let maxR = 0;
      nodes.forEach(function (n) {
        minX = Math.min(minX, n.x);
        minY = Math.min(minY, n.y);
        maxX = Math.max(maxX, n.x);
        maxY = Math.max(maxY, n.y);
        maxR = Math.max(maxR, radius(n));
      });
      // Room for the largest node at the largest zoom factor.
      const margin = PADDING + maxR * MAX_ZOOM_RADIUS;
      view.x = -(minX + maxX) / 2;
      view.y = -(minY + maxY) / 2;
      const sx = Math.max(1, width - 2 * margin) / Math.max(1, maxX - minX);
      const sy = Math.max(1, height - 2 * margin) / Math.max(1, maxY - minY);
      view.scale = Math.max(0.01, Math.min(2, sx, sy));
    }

    function paint() {
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.clearRect(0, 0, width, height);
      const lit = hover ? hover.neighbours : null;
      const zr = zoomRadius();
      ctx.lineWidth = 1;
      links.forEach(function (e) {
        const near = hover && (e.source === hover || e.target === hover);
        if (hover && !near) ctx.strokeStyle = "rgba(80,90,110,0.08)";
        else if (near) ctx.strokeStyle = "rgba(216,85,59,0.9)";
        else ctx.strokeStyle = e.kind === "link" ? "rgba(80,90,110,0.35)" : "rgba(80,90,110,0.18)";
        ctx.setLineDash(e.kind === "link" ? [] : [4, 3]);
        const a = toScreen(e.source);
        const b = toScreen(e.target);
        ctx.beginPath();
        ctx.moveTo(a.x, a.y);
        ctx.lineTo(b.x, b.y);
        ctx.stroke();
      });
      ctx.setLineDash([]);
      const labelled = [];
      nodes.forEach(function (n) {
        const p = toScreen(n);
        const r = radius(n) * zr;
        const dim = hover && n !== hover && !lit.has(n);
        ctx.globalAlpha = dim ? 0.2 : 1;
        ctx.fillStyle = n.data.depth === 0 ? COLORS.center : COLORS[n.data.kind] || COLORS.note;
        ctx.beginPath();
        if (n.data.kind === "issue") {
          ctx.moveTo(p.x, p.y - r);
          ctx.lineTo(p.x + r, p.y);
          ctx.lineTo(p.x, p.y + r);
          ctx.lineTo(p.x - r, p.y);
          ctx.closePath();
        } else {
          ctx.arc(p.x, p.y, r, 0, Math.PI * 2);
        }
        ctx.fill();
        if (n === hover) {
          ctx.strokeStyle = "#111";
          ctx.lineWidth = 2;
          ctx.stroke();
          ctx.lineWidth = 1;
        }
        const showLabel = hover
          ? n === hover || lit.has(n)
          : hubs.has(n) || n.data.depth === 0 || view.scale >= 1.5;
        if (showLabel) labelled.push([n, p, r]);
      });
      ctx.globalAlpha = 1;
      ctx.font = "12px system-ui, sans-serif";
      ctx.textAlign = "center";
      ctx.lineJoin = "round";
      labelled.forEach(function (l) {
        const label = l[0].data.label.length > 40 ? l[0].data.label.slice(0, 39) + "…" : l[0].data.label;
        ctx.strokeStyle = "rgba(255,255,255,0.9)";
        ctx.lineWidth = 3;
        ctx.strokeText(label, l[1].x, l[1].y + l[2] + 12);
        ctx.fillStyle = "#1c2230";
        ctx.fillText(label, l[1].x, l[1].y + l[2] + 12);
      });
      canvas.dataset.labels = String(labelled.length);
    }

    simulation.on("tick", function () {
      if (!canvas.isConnected) stop();
      else paint();
    });

    function nodeAt(px, py) {
      const zr = zoomRadius();
      for (let i = nodes.length - 1; i >= 0; i--) {
        const p = toScreen(nodes[i]);
        const r = radius(nodes[i]) * zr + 3;
        if ((p.x - px) * (p.x - px) + (p.y - py) * (p.y - py) <= r * r) return nodes[i];
      }
      return null;
    }

    function setHover(n) {
      if (n === hover) return;
      hover = n;
      canvas.style.cursor = n ? "pointer" : "grab";
      canvas.dataset.hover = n ? n.data.key : "";
      paint();
    }

    let drag = null;
    function pos(ev) {
      const rect = canvas.getBoundingClientRect();
      return { x: ev.clientX - rect.left, y: ev.clientY - rect.top };
    }
    canvas.addEventListener("pointerdown", function (ev) {
      const p = pos(ev);
      const n = nodeAt(p.x, p.y);
      drag = { node: n, start: p, last: p, moved: false };
      canvas.setPointerCapture(ev.pointerId);
    });
    canvas.addEventListener("pointermove", function (ev) {
      const p = pos(ev);
      if (!drag) {
        setHover(nodeAt(p.x, p.y));
        return;
      }
      if (!drag.moved && Math.abs(p.x - drag.start.x) + Math.abs(p.y - drag.start.y) > 3) {
        drag.moved = true;
        if (drag.node) simulation.alphaTarget(0.3).restart();
      }
      if (drag.node) {
        const w = toWorld(p.x, p.y);
        drag.node.fx = w.x;
        drag.node.fy = w.y;
      } else {
        view.x += (p.x - drag.last.x) / view.scale;
        view.y += (p.y - drag.last.y) / view.scale;
      }
      drag.last = p;
      paint();
    });
    canvas.addEventListener("pointerup", function () {
      if (!drag) return;
      const d = drag;
      drag = null;
      if (d.node) {
        simulation.alphaTarget(0);
        if (!d.moved && options.onOpen) options.onOpen(d.node.data);
      }
    });
    canvas.addEventListener("pointerleave", function () {
      if (!drag) setHover(null);
    });
    canvas.addEventListener(
      "wheel",
      function (ev) {
        ev.preventDefault();
        zoom(ev.deltaY < 0 ? 1.15 : 1 / 1.15);
      },
      { passive: false }
    );

    function zoom(factor) {
      view.scale = Math.max(0.01, Math.min(8, view.scale * factor));
      paint();
    }

    function stop() {
      stopped = true;
      simulation.stop();
      window.removeEventListener("resize", onResize);
    }
    function onResize() {
      if (stopped) return;
      resize();
      fit();
      paint();
    }
    window.addEventListener("resize", onResize);
    resize();
    fit();
    paint();
    if (!settled) simulation.restart();
    canvas.dataset.settleMs = settleMs.toFixed(1);
    canvas.dataset.ticks = String(ticks);
    canvas.dataset.settled = String(settled);

    return {
      stop: stop,
      zoom: zoom,
      fit: function () {
        fit();
        paint();
      },
      // How long the layout took, in ms of the browser's time, its ticks
      // and whether it settled within the budget.
      layout: function () {
        return { ms: settleMs, ticks: ticks, settled: settled, width: width, height: height };
      },
      // Every node as drawn: its centre and radius in the canvas's CSS
      // pixels.
      nodes: function () {
        const zr = zoomRadius();
        return nodes.map(function (n) {
          const p = toScreen(n);
          return {
            key: n.data.key,
            kind: n.data.kind,
            label: n.data.label,
            folder: n.data.folder || "",
            degree: n.degree,
            x: p.x,
            y: p.y,
            r: radius(n) * zr,
          };
        });
      },
      // The keys of the hovered node and its neighbours, highlighted.
      highlighted: function () {
        return hover ? [hover.data.key].concat(Array.from(hover.neighbours).map(function (n) { return n.data.key; })) : [];
      },
    };
  }

  // Filters `f`: { tag, folder, orphans, tags, attachments } (a missing
  // `folder` on a node counts as the top folder ""); answers the graph
  // of the kept nodes, its edges renumbered.
  // Which nodes of a graph (as the API answers it) the filters keep: notes with the tag (or a tag
  // under it), in the folder (or under it), orphans (notes without a link)
  // or not; tag nodes or not; other nodes when linked to a kept note.
  function filterGraph(graph, f) {
    const linked = graph.nodes.map(function () { return false; });
    const tagged = graph.nodes.map(function () { return []; });
    graph.edges.forEach(function (e) {
      if (e.kind === "link") {
        linked[e.from] = true;
        linked[e.to] = true;
      }
      const a = graph.nodes[e.from];
      const b = graph.nodes[e.to];
      if (a && b && b.kind === "tag") tagged[e.from].push(b.key.replace(/^tag:/, ""));
    });
    const tag = (f.tag || "").toLowerCase();
    const folder = f.folder || "";
    const keepNote = graph.nodes.map(function (n, i) {
      if (n.kind !== "note") return false;
      if (n.depth === 0) return true;
      if (tag && !tagged[i].some(function (t) { return t === tag || t.indexOf(tag + "/") === 0; })) return false;
      const nf = n.folder || "";
      if (folder && nf !== folder && nf.indexOf(folder + "/") !== 0) return false;
      if (!f.orphans && !linked[i]) return false;
      return true;
    });
    const keep = graph.nodes.map(function (n, i) {
      if (n.kind === "note") return keepNote[i];
      if (n.kind === "tag" && !f.tags) return false;
      if (n.kind === "attachment" && !f.attachments) return false;
      return graph.edges.some(function (e) {
        return (e.from === i && keepNote[e.to]) || (e.to === i && keepNote[e.from]);
      });
    });
    const index = [];
    const nodes = [];
    graph.nodes.forEach(function (n, i) {
      if (keep[i]) {
        index[i] = nodes.length;
        nodes.push(n);
      }
    });
    const edges = graph.edges
      .filter(function (e) { return keep[e.from] && keep[e.to]; })
      .map(function (e) { return { from: index[e.from], to: index[e.to], kind: e.kind }; });
    return { nodes: nodes, edges: edges };
  }

  window.OmegiGraph = { draw: draw, filter: filterGraph, colors: COLORS };
})();
