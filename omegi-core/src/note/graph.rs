//! The link graph of the notes one viewer may see.
//!
//! [`NoteGraph::build`] parses every visible note once and keeps the graph as
//! adjacency lists of `u32` node indices, so traversals never look up strings.
//! Every query answers with note ids; a note the viewer may not see is simply
//! not in the graph, so it never shows up as a node, backlink or mention, and
//! links to it stay unresolved.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

use super::attachment::{attachment_key, is_file_target};
use super::resolve::{name_key, Resolver};
use super::{merge_names, Note, NoteId};
use crate::Fingerprint;

/// Which links a traversal follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Links in both directions (the graph seen as undirected).
    #[default]
    Both,
    /// Only from a note to the notes it links to.
    Outgoing,
    /// Only from a note to the notes that link to it.
    Incoming,
}

/// Options of [`NoteGraph::local_graph`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalGraphOptions {
    /// How many links away from the centre to go (0: the centre alone).
    pub depth: u32,
    /// Which links to follow.
    pub direction: Direction,
    /// When not empty, only notes with one of these tags (or a tag nested
    /// below one, e.g. `db` matches `db/postgres`; case-insensitive) are
    /// shown and traversed. The centre is always shown.
    pub tags: Vec<String>,
    /// Show the notes' tags as tag nodes.
    pub show_tags: bool,
    /// Show the notes' linked issues as issue nodes.
    pub show_issues: bool,
    /// Show unresolved link targets as nodes.
    pub show_unresolved: bool,
    /// Show the files notes embed or link to (`![[shot.png]]`) as
    /// attachment nodes. A file is never an unresolved note.
    pub show_attachments: bool,
}

impl Default for LocalGraphOptions {
    fn default() -> Self {
        LocalGraphOptions {
            depth: 1,
            direction: Direction::Both,
            tags: Vec::new(),
            show_tags: false,
            show_issues: false,
            show_unresolved: false,
            show_attachments: false,
        }
    }
}

/// What a graph node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// A note.
    Note,
    /// A link target that names no visible note.
    Unresolved,
    /// A tag.
    Tag,
    /// An issue (error fingerprint).
    Issue,
    /// A file a note embeds or links to.
    Attachment,
}

/// What a graph edge stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// A note links to a note (or unresolved target).
    Link,
    /// A note has a tag.
    Tag,
    /// A note is about an issue.
    Issue,
}

/// A node of a [`Subgraph`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// What the node is.
    pub kind: NodeKind,
    /// Unique key: the note id, `tag:<name>`, `issue:<fingerprint>`,
    /// `unresolved:<target>` or `attachment:<file name>` (tag, target and
    /// file name lowercased).
    pub key: String,
    /// What to show: the title, `#tag`, the fingerprint or the target.
    pub label: String,
    /// A note's vault folder (`""` at the top, and for other nodes).
    #[serde(default)]
    pub folder: String,
    /// Links from the centre, for notes of a local graph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
}

/// An edge of a [`Subgraph`], between indices into its `nodes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    /// Index of the source node.
    pub from: usize,
    /// Index of the target node.
    pub to: usize,
    /// What the edge is.
    pub kind: EdgeKind,
}

/// A graph to show or export: nodes and the edges between them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subgraph {
    /// Nodes; notes first, in traversal order.
    pub nodes: Vec<Node>,
    /// Edges, by node index.
    pub edges: Vec<Edge>,
}

impl Subgraph {
    /// The note ids among the nodes, in node order.
    pub fn note_ids(&self) -> Vec<NoteId> {
        self.nodes
            .iter()
            .filter(|n| n.kind == NodeKind::Note)
            .filter_map(|n| n.key.parse().ok())
            .collect()
    }
}

/// The link graph of the notes visible to one viewer.
#[derive(Debug, Clone, Default)]
pub struct NoteGraph {
    ids: Vec<NoteId>,
    titles: Vec<String>,
    folders: Vec<String>,
    /// Tags per note, as indices into `tag_names`.
    tags: Vec<Vec<u32>>,
    /// Distinct tags (first spelling) and their lowercase forms.
    tag_names: Vec<String>,
    tag_keys: Vec<String>,
    /// Issues per note, as indices into `issue_names`.
    issues: Vec<Vec<u32>>,
    issue_names: Vec<Fingerprint>,
    /// Distinct resolved link targets, in order of first appearance.
    out: Vec<Vec<u32>>,
    /// Distinct notes linking here, ascending.
    inc: Vec<Vec<u32>>,
    /// Distinct unresolved targets as first written in each note.
    unresolved: Vec<Vec<String>>,
    /// The same as indices into `unresolved_names` (deduplicated by name key).
    unresolved_ids: Vec<Vec<u32>>,
    unresolved_names: Vec<String>,
    /// Files per note, as indices into `attachment_names`.
    attachments: Vec<Vec<u32>>,
    attachment_names: Vec<String>,
    /// Title and aliases, as mentions match them.
    names: Vec<MentionNames>,
    /// Lowercased prose (see `ParsedNote::plain_text`).
    prose: Vec<String>,
    index: HashMap<NoteId, u32>,
}

/// A hasher for `u32` keys (node and table indices): one multiplication.
#[derive(Default, Clone, Copy)]
struct IndexHasher(u64);

impl Hasher for IndexHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type IndexMap<V> = HashMap<u32, V, BuildHasherDefault<IndexHasher>>;

/// Interns `key` in a table, returning its index.
fn intern(
    index: &mut HashMap<String, u32>,
    names: &mut Vec<String>,
    key: String,
    name: &str,
) -> u32 {
    *index.entry(key).or_insert_with(|| {
        names.push(name.to_string());
        (names.len() - 1) as u32
    })
}

fn sort_key(title: &str) -> String {
    title.to_lowercase()
}

impl NoteGraph {
    /// Builds the graph of the notes in `notes` that `viewer` may see
    /// (public notes and the viewer's own private notes).
    pub fn build<'a>(notes: impl IntoIterator<Item = &'a Note>, viewer: &str) -> NoteGraph {
        let visible: Vec<&Note> = notes.into_iter().filter(|n| n.visible_to(viewer)).collect();
        let parsed: Vec<_> = visible.iter().map(|n| n.parse()).collect();
        let aliases: Vec<Vec<String>> = visible
            .iter()
            .zip(&parsed)
            .map(|(n, p)| merge_names(n.aliases.iter().chain(&p.front_matter.aliases)))
            .collect();
        let resolver = Resolver::with_aliases(visible.clone(), &aliases);

        let n = visible.len();
        let mut graph = NoteGraph {
            ids: visible.iter().map(|n| n.id).collect(),
            titles: visible.iter().map(|n| n.title.clone()).collect(),
            folders: visible.iter().map(|n| n.folder.clone()).collect(),
            tags: Vec::with_capacity(n),
            tag_names: Vec::new(),
            tag_keys: Vec::new(),
            issues: Vec::with_capacity(n),
            issue_names: Vec::new(),
            out: Vec::with_capacity(n),
            inc: vec![Vec::new(); n],
            unresolved: Vec::with_capacity(n),
            unresolved_ids: Vec::with_capacity(n),
            unresolved_names: Vec::new(),
            attachments: Vec::with_capacity(n),
            attachment_names: Vec::new(),
            names: Vec::with_capacity(n),
            prose: Vec::with_capacity(n),
            index: HashMap::with_capacity(n),
        };
        let mut tag_index: HashMap<String, u32> = HashMap::new();
        let mut issue_index: HashMap<String, u32> = HashMap::new();
        let mut issue_names: Vec<String> = Vec::new();
        let mut unresolved_index: HashMap<String, u32> = HashMap::new();
        let mut attachment_index: HashMap<String, u32> = HashMap::new();
        for (i, (note, p)) in visible.iter().zip(&parsed).enumerate() {
            graph.index.entry(note.id).or_insert(i as u32);
            let tags = merge_names(note.tags.iter().chain(&p.front_matter.tags).chain(&p.tags));
            let tags = tags
                .iter()
                .map(|t| intern(&mut tag_index, &mut graph.tag_names, t.to_lowercase(), t))
                .collect();
            graph.tags.push(tags);
            let mut issues: Vec<u32> = Vec::new();
            for fp in &note.issues {
                let k = intern(&mut issue_index, &mut issue_names, fp.0.clone(), &fp.0);
                if !issues.contains(&k) {
                    issues.push(k);
                }
            }
            graph.issues.push(issues);
            // Each link costs one lookup: distinct targets are kept with
            // sets, so a note with many links (resolved or not, to the same
            // or to distinct names) is linear, not quadratic.
            let mut out: Vec<u32> = Vec::new();
            let mut out_seen: IndexMap<()> = IndexMap::default();
            let mut unresolved: Vec<String> = Vec::new();
            let mut ids: Vec<u32> = Vec::new();
            let mut unresolved_seen: IndexMap<()> = IndexMap::default();
            let mut files: Vec<u32> = Vec::new();
            for link in &p.links {
                if link.target.is_empty() {
                    continue;
                }
                match resolver.resolve_index(&link.target, &note.folder) {
                    Some((j, _)) if j as usize != i => {
                        if out_seen.insert(j, ()).is_none() {
                            out.push(j);
                        }
                    }
                    Some(_) => {}
                    None if is_file_target(&link.target) => {
                        let name = link.target.rsplit('/').next().unwrap_or_default();
                        let k = intern(
                            &mut attachment_index,
                            &mut graph.attachment_names,
                            attachment_key(name),
                            name,
                        );
                        if !files.contains(&k) {
                            files.push(k);
                        }
                    }
                    None => {
                        let k = intern(
                            &mut unresolved_index,
                            &mut graph.unresolved_names,
                            name_key(&link.target),
                            &link.target,
                        );
                        if unresolved_seen.insert(k, ()).is_none() {
                            unresolved.push(link.target.clone());
                            ids.push(k);
                        }
                    }
                }
            }
            for &j in &out {
                graph.inc[j as usize].push(i as u32);
            }
            graph.out.push(out);
            graph.unresolved_ids.push(ids);
            graph.attachments.push(files);
            graph.unresolved.push(unresolved);
            graph
                .names
                .push(MentionNames::with_aliases(&note.title, &aliases[i]));
            graph.prose.push(p.plain_text.to_lowercase());
        }
        graph.tag_keys = graph.tag_names.iter().map(|t| t.to_lowercase()).collect();
        graph.issue_names = issue_names.into_iter().map(Fingerprint).collect();
        graph
    }

    /// Number of notes in the graph.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the graph has no notes.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Whether the note is in the graph (exists and is visible).
    pub fn contains(&self, id: NoteId) -> bool {
        self.index.contains_key(&id)
    }

    /// The title of a note in the graph.
    pub fn title(&self, id: NoteId) -> Option<&str> {
        self.idx(id).map(|i| self.titles[i as usize].as_str())
    }

    fn idx(&self, id: NoteId) -> Option<u32> {
        self.index.get(&id).copied()
    }

    fn to_ids(&self, idx: impl IntoIterator<Item = u32>) -> Vec<NoteId> {
        idx.into_iter().map(|i| self.ids[i as usize]).collect()
    }

    /// Sorts indices by title (case-insensitive), then id.
    fn sort_by_title(&self, idx: &mut [u32]) {
        idx.sort_by_cached_key(|&i| (sort_key(&self.titles[i as usize]), self.ids[i as usize]));
    }

    /// The notes `id` links to, in order of first appearance; links to
    /// itself are left out.
    pub fn outgoing(&self, id: NoteId) -> Vec<NoteId> {
        self.idx(id)
            .map(|i| self.to_ids(self.out[i as usize].iter().copied()))
            .unwrap_or_default()
    }

    /// The targets of `id`'s links that name no visible note, as written.
    pub fn unresolved(&self, id: NoteId) -> Vec<String> {
        self.idx(id)
            .map(|i| self.unresolved[i as usize].clone())
            .unwrap_or_default()
    }

    /// The notes that link to `id`, sorted by title.
    pub fn backlinks(&self, id: NoteId) -> Vec<NoteId> {
        let Some(i) = self.idx(id) else {
            return Vec::new();
        };
        let mut idx = self.inc[i as usize].clone();
        self.sort_by_title(&mut idx);
        self.to_ids(idx)
    }

    /// The notes whose prose names `id`'s title or one of its aliases
    /// (case-insensitive, as a whole word) without linking to it, sorted by
    /// title. Text in code and inside links does not count.
    pub fn unlinked_mentions(&self, id: NoteId) -> Vec<NoteId> {
        let Some(i) = self.idx(id) else {
            return Vec::new();
        };
        let names = &self.names[i as usize];
        let linked = &self.inc[i as usize];
        let mut found: Vec<u32> = (0..self.len() as u32)
            .filter(|&j| j != i && linked.binary_search(&j).is_err())
            .filter(|&j| names.in_lowercase_prose(&self.prose[j as usize]))
            .collect();
        self.sort_by_title(&mut found);
        self.to_ids(found)
    }

    fn neighbours(&self, i: u32, direction: Direction) -> impl Iterator<Item = u32> + '_ {
        let out: &[u32] = match direction {
            Direction::Both | Direction::Outgoing => &self.out[i as usize],
            Direction::Incoming => &[],
        };
        let inc: &[u32] = match direction {
            Direction::Both | Direction::Incoming => &self.inc[i as usize],
            Direction::Outgoing => &[],
        };
        out.iter().chain(inc).copied()
    }

    /// For each distinct tag, whether it matches one of `filters` (itself or
    /// nested below it).
    fn matching_tags(&self, filters: &[String]) -> Vec<bool> {
        self.tag_keys
            .iter()
            .map(|tag| {
                filters.iter().any(|f| {
                    tag.strip_prefix(f.as_str())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
                })
            })
            .collect()
    }

    /// The graph around `id`: notes up to `options.depth` links away (found
    /// breadth-first, the centre first), all links between them, and tag,
    /// issue and unresolved nodes as the options ask. `None` when `id` is not
    /// in the graph.
    pub fn local_graph(&self, id: NoteId, options: &LocalGraphOptions) -> Option<Subgraph> {
        let centre = self.idx(id)?;
        let filters: Vec<String> = options
            .tags
            .iter()
            .map(|t| {
                t.trim_start_matches('#')
                    .trim_end_matches('/')
                    .to_lowercase()
            })
            .filter(|t| !t.is_empty())
            .collect();
        let matching = (!filters.is_empty()).then(|| self.matching_tags(&filters));
        let mut slot: IndexMap<u32> = IndexMap::default();
        let mut order: Vec<(u32, u32)> = vec![(centre, 0)];
        slot.insert(centre, 0);
        let mut head = 0;
        while head < order.len() {
            let (i, d) = order[head];
            head += 1;
            if d >= options.depth {
                continue;
            }
            for j in self.neighbours(i, options.direction) {
                if slot.contains_key(&j) {
                    continue;
                }
                if let Some(matching) = &matching {
                    if !self.tags[j as usize].iter().any(|&t| matching[t as usize]) {
                        continue;
                    }
                }
                slot.insert(j, order.len() as u32);
                order.push((j, d + 1));
            }
        }
        Some(self.subgraph(&order, |j| slot.get(&j).copied(), options))
    }

    /// The whole graph as a [`Subgraph`], with tag, issue and unresolved
    /// nodes as `options` ask (its depth, direction and tag filter are
    /// ignored).
    pub fn full(&self, options: &LocalGraphOptions) -> Subgraph {
        let order: Vec<(u32, u32)> = (0..self.len() as u32).map(|i| (i, 0)).collect();
        let mut sub = self.subgraph(&order, Some, options);
        for node in &mut sub.nodes {
            node.depth = None;
        }
        sub
    }

    fn subgraph(
        &self,
        order: &[(u32, u32)],
        slot: impl Fn(u32) -> Option<u32>,
        options: &LocalGraphOptions,
    ) -> Subgraph {
        let mut sub = Subgraph {
            nodes: Vec::with_capacity(order.len()),
            edges: Vec::new(),
        };
        for &(i, d) in order {
            sub.nodes.push(Node {
                kind: NodeKind::Note,
                key: self.ids[i as usize].to_string(),
                label: self.titles[i as usize].clone(),
                folder: self.folders[i as usize].clone(),
                depth: Some(d),
            });
        }
        for (pos, &(i, _)) in order.iter().enumerate() {
            for &j in &self.out[i as usize] {
                if let Some(to) = slot(j) {
                    sub.edges.push(Edge {
                        from: pos,
                        to: to as usize,
                        kind: EdgeKind::Link,
                    });
                }
            }
        }
        // Node position of each table entry already added, per kind.
        let mut added: [IndexMap<usize>; 4] = Default::default();
        let mut attach = |sub: &mut Subgraph, from: usize, kind: NodeKind, k: u32| {
            let (slot, edge_kind) = match kind {
                NodeKind::Tag => (0, EdgeKind::Tag),
                NodeKind::Issue => (1, EdgeKind::Issue),
                NodeKind::Attachment => (3, EdgeKind::Link),
                _ => (2, EdgeKind::Link),
            };
            let to = *added[slot].entry(k).or_insert_with(|| {
                let k = k as usize;
                let (key, label) = match kind {
                    NodeKind::Tag => (
                        format!("tag:{}", self.tag_keys[k]),
                        format!("#{}", self.tag_names[k]),
                    ),
                    NodeKind::Issue => (
                        format!("issue:{}", self.issue_names[k]),
                        self.issue_names[k].to_string(),
                    ),
                    NodeKind::Attachment => (
                        format!("attachment:{}", attachment_key(&self.attachment_names[k])),
                        self.attachment_names[k].clone(),
                    ),
                    _ => (
                        format!("unresolved:{}", name_key(&self.unresolved_names[k])),
                        self.unresolved_names[k].clone(),
                    ),
                };
                sub.nodes.push(Node {
                    kind,
                    key,
                    label,
                    folder: String::new(),
                    depth: None,
                });
                sub.nodes.len() - 1
            });
            sub.edges.push(Edge {
                from,
                to,
                kind: edge_kind,
            });
        };
        for (pos, &(i, _)) in order.iter().enumerate() {
            let i = i as usize;
            if options.show_unresolved {
                for &k in &self.unresolved_ids[i] {
                    attach(&mut sub, pos, NodeKind::Unresolved, k);
                }
            }
            if options.show_attachments {
                for &k in &self.attachments[i] {
                    attach(&mut sub, pos, NodeKind::Attachment, k);
                }
            }
            if options.show_tags {
                for &k in &self.tags[i] {
                    attach(&mut sub, pos, NodeKind::Tag, k);
                }
            }
            if options.show_issues {
                for &k in &self.issues[i] {
                    attach(&mut sub, pos, NodeKind::Issue, k);
                }
            }
        }
        sub
    }

    /// A shortest chain of links from `from` to `to` (both included), found
    /// breadth-first following `direction`. `None` if there is none or a
    /// note is not in the graph.
    pub fn shortest_path(
        &self,
        from: NoteId,
        to: NoteId,
        direction: Direction,
    ) -> Option<Vec<NoteId>> {
        let start = self.idx(from)?;
        let goal = self.idx(to)?;
        let mut prev = vec![u32::MAX; self.len()];
        prev[start as usize] = start;
        let mut queue = VecDeque::from([start]);
        while let Some(i) = queue.pop_front() {
            if i == goal {
                let mut path = vec![goal];
                let mut cur = goal;
                while cur != start {
                    cur = prev[cur as usize];
                    path.push(cur);
                }
                path.reverse();
                return Some(self.to_ids(path));
            }
            for j in self.neighbours(i, direction) {
                if prev[j as usize] == u32::MAX {
                    prev[j as usize] = i;
                    queue.push_back(j);
                }
            }
        }
        None
    }

    /// The connected components, links taken in both directions. Each
    /// component is sorted by title; components come largest first, ties by
    /// their first title.
    pub fn components(&self) -> Vec<Vec<NoteId>> {
        let mut seen = vec![false; self.len()];
        let mut comps: Vec<Vec<u32>> = Vec::new();
        for s in 0..self.len() as u32 {
            if seen[s as usize] {
                continue;
            }
            seen[s as usize] = true;
            let mut comp = vec![s];
            let mut head = 0;
            while head < comp.len() {
                let i = comp[head];
                head += 1;
                for j in self.neighbours(i, Direction::Both) {
                    if !seen[j as usize] {
                        seen[j as usize] = true;
                        comp.push(j);
                    }
                }
            }
            self.sort_by_title(&mut comp);
            comps.push(comp);
        }
        comps.sort_by_cached_key(|c| {
            (
                std::cmp::Reverse(c.len()),
                c.first().map(|&i| sort_key(&self.titles[i as usize])),
            )
        });
        comps.into_iter().map(|c| self.to_ids(c)).collect()
    }

    /// Notes with no resolved link in or out (links to themselves and
    /// unresolved links do not count), sorted by title.
    pub fn orphans(&self) -> Vec<NoteId> {
        let mut idx: Vec<u32> = (0..self.len() as u32)
            .filter(|&i| self.out[i as usize].is_empty() && self.inc[i as usize].is_empty())
            .collect();
        self.sort_by_title(&mut idx);
        self.to_ids(idx)
    }

    /// Up to `limit` notes with the most backlinks (distinct linking notes),
    /// with their counts; ties by title. Notes without backlinks are left out.
    pub fn most_linked(&self, limit: usize) -> Vec<(NoteId, usize)> {
        let mut idx: Vec<u32> = (0..self.len() as u32)
            .filter(|&i| !self.inc[i as usize].is_empty())
            .collect();
        idx.sort_by_cached_key(|&i| {
            (
                std::cmp::Reverse(self.inc[i as usize].len()),
                sort_key(&self.titles[i as usize]),
                self.ids[i as usize],
            )
        });
        idx.into_iter()
            .take(limit)
            .map(|i| (self.ids[i as usize], self.inc[i as usize].len()))
            .collect()
    }
}

/// The names by which a note is mentioned: its title and aliases, as
/// lookup keys ([`name_key`]). A note's prose mentions it when one of them
/// stands there as a whole word, case-insensitively; text in code and
/// inside links does not count. [`NoteGraph::unlinked_mentions`] and the
/// store's unlinked mentions both decide here.
///
/// ```
/// use omegi_core::note::{MentionNames, Note, NoteId};
///
/// let mut timeout = Note::new(NoteId::now_v7(), "kim", "Payment timeout", "", 1);
/// timeout.aliases = vec!["결제 지연".into()];
/// let names = MentionNames::of(&timeout);
/// let mention = |body: &str| names.in_note(&Note::new(NoteId::now_v7(), "lee", "Other", body, 2));
/// assert!(mention("After a payment timeout, retry."));
/// assert!(mention("결제 지연 발생"));
/// assert!(!mention("payment timeouts")); // not the whole word
/// assert!(!mention("`payment timeout`")); // code
/// assert!(!mention("[[Payment timeout]]")); // a link, not a mention
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MentionNames(Vec<String>);

impl MentionNames {
    /// The names of `note`: its title and all its aliases (front matter's
    /// included).
    pub fn of(note: &Note) -> MentionNames {
        MentionNames::with_aliases(&note.title, &note.all_aliases())
    }

    pub(crate) fn with_aliases(title: &str, aliases: &[String]) -> MentionNames {
        let mut names = vec![name_key(title)];
        names.extend(aliases.iter().map(|a| name_key(a)));
        names.retain(|s| !s.is_empty());
        names.dedup();
        MentionNames(names)
    }

    /// Whether `other`'s prose names one of these names (whether it also
    /// links to the note is the caller's question).
    pub fn in_note(&self, other: &Note) -> bool {
        self.in_lowercase_prose(&other.parse().plain_text.to_lowercase())
    }

    /// Whether lowercased prose (`ParsedNote::plain_text`) names one of them.
    pub(crate) fn in_lowercase_prose(&self, prose: &str) -> bool {
        self.0.iter().any(|name| contains_word(prose, name))
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether `needle` occurs in `haystack` with no word character right
/// before or after it.
pub(crate) fn contains_word(haystack: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return false;
    }
    haystack.match_indices(needle).any(|(at, _)| {
        let before = haystack[..at].chars().next_back();
        let after = haystack[at + needle.len()..].chars().next();
        // `#payments` is a tag, not a mention of a note named "payments".
        !before.is_some_and(|c| is_word_char(c) || c == '#') && !after.is_some_and(is_word_char)
    })
}

#[cfg(test)]
mod tests {
    use super::contains_word;

    #[test]
    fn word_bounds() {
        assert!(contains_word("see payment timeout here", "payment timeout"));
        assert!(contains_word("payment timeout.", "payment timeout"));
        assert!(!contains_word("payment timeouts", "payment timeout"));
        assert!(!contains_word("xpayment timeout", "payment timeout"));
        assert!(contains_word("결제 오류 발생", "결제 오류"));
        assert!(!contains_word("", ""));
        assert!(!contains_word("tagged #payments here", "payments"));
    }
}
