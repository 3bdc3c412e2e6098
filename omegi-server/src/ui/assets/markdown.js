// Omegi web UI: a small Markdown renderer for notes (Obsidian dialect:
// [[links]], [[Note|alias]], [[Note#Heading]], ![[embeds]], #tags, front
// matter). It builds DOM nodes directly: text from a note is only ever set
// as text, never parsed as HTML.
"use strict";

(function () {
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  // Only these URL schemes become links; anything else stays text.
  function safeHref(url) {
    const u = url.trim();
    if (/^(https?:|mailto:)/i.test(u)) return u;
    if (/^[#/]/.test(u) && !/^\/\//.test(u)) return u;
    if (/^[\w.-]+(\/[\w./-]*)?$/.test(u) && !/:/.test(u)) return u;
    return null;
  }

  // Splits `Note#Heading|alias` into its parts.
  function parseTarget(inner) {
    let alias = null;
    const bar = inner.indexOf("|");
    if (bar >= 0) {
      alias = inner.slice(bar + 1).trim();
      inner = inner.slice(0, bar);
    }
    let heading = null;
    const hash = inner.indexOf("#");
    if (hash >= 0) {
      heading = inner.slice(hash + 1).trim();
      inner = inner.slice(0, hash);
    }
    return { title: inner.trim(), heading: heading, alias: alias };
  }

  const INLINE = new RegExp(
    [
      "(`+)([\\s\\S]*?[^`])\\1(?!`)", // 1,2 code span
      "!\\[\\[([^\\]\\n]+)\\]\\]", // 3 embed
      "\\[\\[([^\\]\\n]+)\\]\\]", // 4 wiki link
      "\\[([^\\]\\n]+)\\]\\(([^)\\s]+)\\)", // 5,6 markdown link
      "\\*\\*([^*\\n]+)\\*\\*", // 7 strong
      "\\*([^*\\n]+)\\*", // 8 emphasis
      "(^|[^\\w&])#([\\w/-]*[A-Za-z_/-][\\w/-]*)", // 9,10 tag
      "(https?:\\/\\/[^\\s<>()]+[^\\s<>().,;:!?'\"])", // 11 bare url
    ].join("|"),
    "g"
  );

  function inline(text, ctx, parent) {
    // A regex of its own: links and emphasis recurse into this function.
    const re = new RegExp(INLINE.source, "g");
    let last = 0;
    let m;
    while ((m = re.exec(text)) !== null) {
      let start = m.index;
      if (m[10] !== undefined) start += m[9].length;
      if (start > last) parent.appendChild(document.createTextNode(text.slice(last, start)));
      if (m[2] !== undefined) {
        parent.appendChild(el("code", null, m[2]));
      } else if (m[3] !== undefined) {
        parent.appendChild(embed(parseTarget(m[3]), ctx, true));
      } else if (m[4] !== undefined) {
        parent.appendChild(wikiLink(parseTarget(m[4]), ctx));
      } else if (m[5] !== undefined) {
        const href = safeHref(m[6]);
        if (href) {
          const a = el("a");
          a.href = href;
          if (/^https?:/i.test(href)) a.rel = "noopener noreferrer";
          inline(m[5], ctx, a);
          parent.appendChild(a);
        } else {
          parent.appendChild(document.createTextNode(m[0]));
        }
      } else if (m[7] !== undefined) {
        const s = el("strong");
        inline(m[7], ctx, s);
        parent.appendChild(s);
      } else if (m[8] !== undefined) {
        const s = el("em");
        inline(m[8], ctx, s);
        parent.appendChild(s);
      } else if (m[10] !== undefined) {
        const a = el("a", "tag", "#" + m[10]);
        a.href = "#/search?q=" + encodeURIComponent("#" + m[10]);
        parent.appendChild(a);
      } else if (m[11] !== undefined) {
        const a = el("a", null, m[11]);
        a.href = m[11];
        a.rel = "noopener noreferrer";
        parent.appendChild(a);
      }
      last = re.lastIndex;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  function wikiLink(target, ctx) {
    const found = ctx.resolve ? ctx.resolve(target.title) : null;
    let label = target.alias || target.title + (target.heading ? " › " + target.heading : "");
    const a = el("a", found ? "wikilink" : "wikilink unresolved", label);
    a.href = found ? found.href : "#/notes/new?title=" + encodeURIComponent(target.title);
    a.title = found ? target.title : "No note named " + target.title + " yet: click to write it";
    return a;
  }

  function embed(target, ctx, isInline) {
    const box = el(isInline ? "span" : "div", "embed");
    const found = ctx.resolve ? ctx.resolve(target.title) : null;
    const depth = ctx.depth || 0;
    if (!found || !found.note || depth >= 2) {
      box.appendChild(wikiLink(target, ctx));
      return box;
    }
    const head = el("div", "embed-title");
    head.appendChild(wikiLink(target, ctx));
    box.appendChild(head);
    let body = found.note.body || "";
    if (target.heading) body = section(body, target.heading) || "";
    const inner = render(body, Object.assign({}, ctx, { depth: depth + 1 }));
    box.appendChild(inner);
    return box;
  }

  // The text under `heading`, up to the next heading of the same or a
  // higher level.
  function section(markdown, heading) {
    const lines = markdown.split("\n");
    let level = 0;
    const out = [];
    for (const line of lines) {
      const h = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
      if (level === 0) {
        if (h && h[2].toLowerCase() === heading.toLowerCase()) level = h[1].length;
        continue;
      }
      if (h && h[1].length <= level) break;
      out.push(line);
    }
    return level ? out.join("\n") : null;
  }

  function stripFrontMatter(text) {
    if (!/^---\r?\n/.test(text)) return text;
    const end = text.indexOf("\n---", 4);
    if (end < 0) return text;
    const after = text.indexOf("\n", end + 4);
    return after < 0 ? "" : text.slice(after + 1);
  }

  function render(text, ctx) {
    ctx = ctx || {};
    const root = el("div", "md");
    const lines = stripFrontMatter(String(text || "")).replace(/\r\n?/g, "\n").split("\n");
    let i = 0;
    let para = [];
    function flush() {
      if (para.length) {
        const p = el("p");
        para.forEach(function (line, k) {
          if (k) p.appendChild(el("br"));
          inline(line, ctx, p);
        });
        root.appendChild(p);
        para = [];
      }
    }
    while (i < lines.length) {
      const line = lines[i];
      let m;
      if ((m = /^\s*(```|~~~)\s*([\w+-]*)/.exec(line))) {
        flush();
        const fence = m[1];
        const body = [];
        i++;
        while (i < lines.length && !lines[i].trim().startsWith(fence)) body.push(lines[i++]);
        i++;
        const pre = el("pre");
        const code = el("code", null, body.join("\n"));
        if (m[2]) code.dataset.lang = m[2];
        pre.appendChild(code);
        root.appendChild(pre);
        continue;
      }
      if (/^\s*$/.test(line)) {
        flush();
        i++;
        continue;
      }
      if ((m = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line))) {
        flush();
        const h = el("h" + m[1].length);
        inline(m[2], ctx, h);
        root.appendChild(h);
        i++;
        continue;
      }
      if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) {
        flush();
        root.appendChild(el("hr"));
        i++;
        continue;
      }
      if ((m = /^\s*!\[\[([^\]]+)\]\]\s*$/.exec(line))) {
        flush();
        root.appendChild(embed(parseTarget(m[1]), ctx, false));
        i++;
        continue;
      }
      if (/^\s*>/.test(line)) {
        flush();
        const quoted = [];
        while (i < lines.length && /^\s*>/.test(lines[i])) quoted.push(lines[i++].replace(/^\s*>\s?/, ""));
        const bq = el("blockquote");
        bq.appendChild(render(quoted.join("\n"), ctx));
        root.appendChild(bq);
        continue;
      }
      if ((m = /^\s*([-*+]|\d+[.)])\s+/.exec(line))) {
        flush();
        const ordered = /\d/.test(m[1]);
        const list = el(ordered ? "ol" : "ul");
        while (i < lines.length && (m = /^\s*([-*+]|\d+[.)])\s+(.*)$/.exec(lines[i]))) {
          const li = el("li");
          let item = m[2];
          const task = /^\[([ xX])\]\s+(.*)$/.exec(item);
          if (task) {
            const box = el("input");
            box.type = "checkbox";
            box.disabled = true;
            box.checked = task[1] !== " ";
            li.appendChild(box);
            li.appendChild(document.createTextNode(" "));
            item = task[2];
          }
          inline(item, ctx, li);
          list.appendChild(li);
          i++;
        }
        root.appendChild(list);
        continue;
      }
      para.push(line);
      i++;
    }
    flush();
    return root;
  }

  window.OmegiMarkdown = { render: render, parseTarget: parseTarget, section: section };
})();
