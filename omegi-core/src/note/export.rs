//! Exporting a [`Subgraph`] as JSON, Graphviz DOT or Mermaid.

use std::fmt::Write;

use super::graph::{EdgeKind, NodeKind, Subgraph};

/// The subgraph as JSON: `{"nodes": [{"kind", "key", "label", "depth"?}],
/// "edges": [{"from", "to", "kind"}]}`, edges by node index, kinds in
/// snake case (`note`, `unresolved`, `tag`, `issue`; `link`, `tag`, `issue`).
pub fn to_json(graph: &Subgraph) -> String {
    // Only strings, integers and unit enums: serialization cannot fail.
    serde_json::to_string_pretty(graph).expect("a subgraph always serializes to JSON")
}

/// Escapes a string for a double-quoted Graphviz DOT id.
fn dot_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// The subgraph in Graphviz DOT: a `digraph` with nodes `n0`, `n1`, ...
/// labelled with their (escaped) labels; notes are boxes, unresolved
/// targets dashed boxes, tags ellipses, issues diamonds; tag and issue
/// edges are dotted.
pub fn to_dot(graph: &Subgraph) -> String {
    let mut out = String::from("digraph notes {\n  node [shape=box];\n");
    for (i, node) in graph.nodes.iter().enumerate() {
        let attrs = match node.kind {
            NodeKind::Note => "",
            NodeKind::Unresolved => ", style=dashed",
            NodeKind::Tag => ", shape=ellipse",
            NodeKind::Issue => ", shape=diamond",
            NodeKind::Attachment => ", shape=note",
        };
        let _ = writeln!(
            out,
            "  n{i} [label=\"{}\"{attrs}];",
            dot_escape(&node.label)
        );
    }
    for edge in &graph.edges {
        let attrs = match edge.kind {
            EdgeKind::Link => "",
            EdgeKind::Tag | EdgeKind::Issue => " [style=dotted]",
        };
        let _ = writeln!(out, "  n{} -> n{}{attrs};", edge.from, edge.to);
    }
    out.push_str("}\n");
    out
}

/// Escapes a label for a double-quoted Mermaid string with entity codes:
/// `"`, `#`, `&`, `<`, `>`, `` ` ``, `;` and line breaks can not break out
/// of the label or be read as markup.
fn mermaid_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            '&' => out.push_str("#amp;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '`' => out.push_str("#96;"),
            ';' => out.push_str("#59;"),
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// The subgraph as a Mermaid flowchart: nodes `n0`, `n1`, ... with quoted,
/// escaped labels; notes are rectangles, tags stadiums, issues hexagons,
/// unresolved targets use the `unresolved` class; tag and issue edges are
/// dotted.
pub fn to_mermaid(graph: &Subgraph) -> String {
    let mut out = String::from("flowchart LR\n");
    for (i, node) in graph.nodes.iter().enumerate() {
        let label = mermaid_escape(&node.label);
        let _ = match node.kind {
            NodeKind::Note => writeln!(out, "  n{i}[\"{label}\"]"),
            NodeKind::Unresolved => writeln!(out, "  n{i}[\"{label}\"]:::unresolved"),
            NodeKind::Tag => writeln!(out, "  n{i}([\"{label}\"])"),
            NodeKind::Issue => writeln!(out, "  n{i}{{{{\"{label}\"}}}}"),
            NodeKind::Attachment => writeln!(out, "  n{i}[/\"{label}\"/]"),
        };
    }
    for edge in &graph.edges {
        let arrow = match edge.kind {
            EdgeKind::Link => "-->",
            EdgeKind::Tag | EdgeKind::Issue => "-.->",
        };
        let _ = writeln!(out, "  n{} {arrow} n{}", edge.from, edge.to);
    }
    if graph.nodes.iter().any(|n| n.kind == NodeKind::Unresolved) {
        out.push_str("  classDef unresolved stroke-dasharray: 5 5\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(dot_escape("a \"b\" \\ c\nd"), "a \\\"b\\\" \\\\ c\\nd");
        assert_eq!(
            mermaid_escape("say \"hi\" #tag <b>&;`"),
            "say #quot;hi#quot; #35;tag #lt;b#gt;#amp;#59;#96;"
        );
    }
}
