// Omegi web UI: an interactive force-directed graph on a <canvas>.
// Pan by dragging the background, zoom with the wheel (or the + / - keys),
// drag nodes, click a node to open it.
"use strict";

(function () {
  const COLORS = {
    note: "#3b6fd8",
    center: "#d8553b",
    unresolved: "#9aa3b2",
    tag: "#2f9e6e",
    issue: "#c23a3a",
  };

  function draw(canvas, graph, options) {
    options = options || {};
    const ctx = canvas.getContext("2d");
    const ratio = window.devicePixelRatio || 1;
    const nodes = graph.nodes.map(function (n, i) {
      const angle = (i / Math.max(1, graph.nodes.length)) * Math.PI * 2;
      const r = 60 + 12 * Math.sqrt(i);
      return {
        data: n,
        x: Math.cos(angle) * r,
        y: Math.sin(angle) * r,
        vx: 0,
        vy: 0,
        degree: 0,
        fixed: false,
      };
    });
    const edges = [];
    graph.edges.forEach(function (e) {
      const a = nodes[e.from];
      const b = nodes[e.to];
      if (!a || !b || a === b) return;
      a.degree++;
      b.degree++;
      edges.push({ a: a, b: b, kind: e.kind });
    });
    const view = { x: 0, y: 0, scale: 1 };
    let width = 0;
    let height = 0;
    let alpha = 1;
    let frame = null;
    let stopped = false;

    function radius(n) {
      return (n.data.kind === "note" ? 7 : 5) + Math.min(8, Math.sqrt(n.degree) * 2);
    }

    function resize() {
      const rect = canvas.getBoundingClientRect();
      width = Math.max(100, rect.width);
      height = Math.max(100, rect.height);
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }

    function step() {
      // Repulsion between every pair (graphs here are small), springs on
      // edges, a weak pull to the centre.
      const k = 80;
      for (let i = 0; i < nodes.length; i++) {
        const a = nodes[i];
        for (let j = i + 1; j < nodes.length; j++) {
          const b = nodes[j];
          let dx = a.x - b.x;
          let dy = a.y - b.y;
          let d2 = dx * dx + dy * dy;
          if (d2 < 0.01) {
            dx = Math.random() - 0.5;
            dy = Math.random() - 0.5;
            d2 = 0.25;
          }
          const f = (k * k) / d2;
          const fx = dx * f * 0.02;
          const fy = dy * f * 0.02;
          a.vx += fx;
          a.vy += fy;
          b.vx -= fx;
          b.vy -= fy;
        }
      }
      edges.forEach(function (e) {
        const dx = e.b.x - e.a.x;
        const dy = e.b.y - e.a.y;
        const d = Math.sqrt(dx * dx + dy * dy) || 1;
        const f = (d - k) * 0.02;
        const fx = (dx / d) * f;
        const fy = (dy / d) * f;
        e.a.vx += fx;
        e.a.vy += fy;
        e.b.vx -= fx;
        e.b.vy -= fy;
      });
      nodes.forEach(function (n) {
        n.vx -= n.x * 0.004;
        n.vy -= n.y * 0.004;
        if (n.fixed) {
          n.vx = 0;
          n.vy = 0;
          return;
        }
        const max = 20;
        n.x += Math.max(-max, Math.min(max, n.vx * alpha));
        n.y += Math.max(-max, Math.min(max, n.vy * alpha));
        n.vx *= 0.6;
        n.vy *= 0.6;
      });
      alpha = Math.max(0.02, alpha * 0.985);
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

    let hover = null;

    function paint() {
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.clearRect(0, 0, width, height);
      ctx.lineWidth = 1;
      edges.forEach(function (e) {
        const a = toScreen(e.a);
        const b = toScreen(e.b);
        ctx.strokeStyle = e.kind === "link" ? "rgba(80,90,110,0.55)" : "rgba(80,90,110,0.25)";
        ctx.setLineDash(e.kind === "link" ? [] : [4, 3]);
        ctx.beginPath();
        ctx.moveTo(a.x, a.y);
        ctx.lineTo(b.x, b.y);
        ctx.stroke();
      });
      ctx.setLineDash([]);
      ctx.font = "12px system-ui, sans-serif";
      ctx.textAlign = "center";
      nodes.forEach(function (n) {
        const p = toScreen(n);
        const r = radius(n) * Math.sqrt(view.scale);
        const isCenter = n.data.depth === 0;
        ctx.fillStyle = isCenter ? COLORS.center : COLORS[n.data.kind] || COLORS.note;
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
        if (view.scale > 0.45 || n === hover) {
          const label = n.data.label.length > 40 ? n.data.label.slice(0, 39) + "…" : n.data.label;
          ctx.fillStyle = "#1c2230";
          ctx.fillText(label, p.x, p.y + r + 13);
        }
      });
    }

    function tick() {
      if (stopped) return;
      if (!canvas.isConnected) {
        stop();
        return;
      }
      step();
      paint();
      frame = window.requestAnimationFrame(tick);
    }

    function nodeAt(px, py) {
      for (let i = nodes.length - 1; i >= 0; i--) {
        const p = toScreen(nodes[i]);
        const r = radius(nodes[i]) * Math.sqrt(view.scale) + 3;
        if ((p.x - px) * (p.x - px) + (p.y - py) * (p.y - py) <= r * r) return nodes[i];
      }
      return null;
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
      if (n) n.fixed = true;
      canvas.setPointerCapture(ev.pointerId);
    });
    canvas.addEventListener("pointermove", function (ev) {
      const p = pos(ev);
      if (!drag) {
        const h = nodeAt(p.x, p.y);
        if (h !== hover) {
          hover = h;
          canvas.style.cursor = h ? "pointer" : "grab";
          paint();
        }
        return;
      }
      if (Math.abs(p.x - drag.start.x) + Math.abs(p.y - drag.start.y) > 3) drag.moved = true;
      if (drag.node) {
        const w = toWorld(p.x, p.y);
        drag.node.x = w.x;
        drag.node.y = w.y;
        alpha = Math.max(alpha, 0.3);
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
        d.node.fixed = d.moved;
        if (!d.moved && options.onOpen) options.onOpen(d.node.data);
      }
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
      view.scale = Math.max(0.2, Math.min(5, view.scale * factor));
      paint();
    }

    function stop() {
      stopped = true;
      if (frame) window.cancelAnimationFrame(frame);
      window.removeEventListener("resize", onResize);
    }
    function onResize() {
      resize();
      paint();
    }
    window.addEventListener("resize", onResize);
    resize();
    // Settle most of the layout before the first paint.
    for (let i = 0; i < 150; i++) step();
    fit();
    tick();

    function fit() {
      if (!nodes.length) return;
      let minX = Infinity;
      let minY = Infinity;
      let maxX = -Infinity;
      let maxY = -Infinity;
      nodes.forEach(function (n) {
        minX = Math.min(minX, n.x);
        minY = Math.min(minY, n.y);
        maxX = Math.max(maxX, n.x);
        maxY = Math.max(maxY, n.y);
      });
      view.x = -(minX + maxX) / 2;
      view.y = -(minY + maxY) / 2;
      const sx = (width - 80) / Math.max(1, maxX - minX);
      const sy = (height - 80) / Math.max(1, maxY - minY);
      view.scale = Math.max(0.3, Math.min(2, sx, sy));
    }

    return {
      stop: stop,
      zoom: zoom,
      fit: function () {
        fit();
        paint();
      },
      nodes: function () {
        return nodes.map(function (n) {
          const p = toScreen(n);
          return { key: n.data.key, kind: n.data.kind, label: n.data.label, x: p.x, y: p.y };
        });
      },
    };
  }

  window.OmegiGraph = { draw: draw, colors: COLORS };
})();
