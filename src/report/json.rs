//! Structural comparison of two JSON bodies, Diffy's way: key order does not matter, and
//! each difference is named by a field path (`user.email`) that stays bounded however large
//! the bodies are. Array elements share one path without their index (`items[].price`), and
//! an object whose keys are mostly data rather than names (ids, dates) is a dynamic map whose
//! keys all become `*` (`scores.*`), so paths cannot explode in number.
//!
//! A path is followed by the kind of difference when it is not a plain change of value:
//! `type` (a string became an object; `1` became `1.0`), `missing` (the primary has the field,
//! the other leg does not), `extra` (the reverse), `length` (arrays of different lengths).
//! The whole body, when it is not an object or array that matches, is `$`.

use std::cell::RefCell;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Number;

use super::compare::{abbreviate, Differences};
use super::printable;

/// A key longer than this is data, not a name.
const MAX_KEY_LEN: usize = 64;
/// A path longer than this is cut and ends in `…`, so that every difference deeper down is
/// one field: the statistics keep each field's name for the whole epoch, and a document
/// nested a hundred levels deep in 64-byte keys would make every name kilobytes long (tens of
/// thousands of them: a misbehaving candidate's way to grow memory).
const MAX_PATH_LEN: usize = 256;

/// What kind of difference a path has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Value,
    Type,
    Missing,
    Extra,
    Length,
}

impl Kind {
    fn suffix(self) -> &'static str {
        match self {
            Kind::Value => "",
            Kind::Type => " type",
            Kind::Missing => " missing",
            Kind::Extra => " extra",
            Kind::Length => " length",
        }
    }
}

/// An `--ignore-field` path in the form paths are matched in: without the report's `body `
/// in front, without `[]` markers and without a leading `$` (so `items.id`, `items[].id`,
/// `$.items[].id` and `body items[].id` are the same; `$`, the root, is the whole body).
pub fn normalize_path(path: &str) -> String {
    without_root(path).replace("[]", "")
}

/// The `--ignore-field` paths: whole paths, and differences of one kind at a path.
#[derive(Debug, Clone, Default)]
pub struct Ignored {
    /// Normalized paths (`normalize_path`), everything under them included.
    paths: Vec<String>,
    /// A field's whole name from the report (`body n type`): that kind of difference at
    /// that path. The name may also be a key's (`{"n type": …}`), so it is in `paths` too.
    kinds: Vec<(String, Kind)>,
    /// Names of the whole-body fields (`body`, `body hash`, `body bom`, `body coding`) given
    /// as written, and whether the whole body (`$`) is.
    whole: Vec<String>,
    root: bool,
}

/// The body fields that are not a JSON path: what a body that is not JSON, or is not read
/// as it stands, differs in.
const WHOLE_BODY_FIELDS: &[&str] = &["body", "body hash", "body bom", "body coding"];

impl Ignored {
    pub fn new(written: &[String]) -> Ignored {
        let mut ignored = Ignored::default();
        for path in written {
            let path = &unlisted_name(path);
            // A whole-body field's name is that field's alone: `body` must not also leave
            // out a JSON key `body` (written `body body`, or `$.body`).
            if WHOLE_BODY_FIELDS.contains(&path.as_ref()) {
                ignored.whole.push(path.to_string());
                continue;
            }
            let normalized = normalize_path(path);
            ignored.root |= normalized.is_empty();
            ignored.paths.push(normalized);
            if let Some(named) = path.strip_prefix("body ") {
                for kind in [Kind::Type, Kind::Missing, Kind::Extra, Kind::Length] {
                    if let Some(at) = named.strip_suffix(kind.suffix()) {
                        ignored.kinds.push((normalize_path(at), kind));
                    }
                }
            }
        }
        ignored
    }
}

/// A field's name as the summary lists it (`"body a,b"`, quoted for its `,`: `listed_name`)
/// back to the name itself; any other text as it is. Only the summary's own quoting is
/// undone: of a whole body field's name (`body …`), one the summary would quote. `"a,b"` is
/// a key with its quotes (`body "a,b"`, as the JSON names it; hunt 84).
fn unlisted_name(written: &str) -> std::borrow::Cow<'_, str> {
    let Some(inner) = written
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    else {
        return written.into();
    };
    let mut name = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        name.push(if c == '\\' {
            chars.next().unwrap_or(c)
        } else {
            c
        });
    }
    if name.starts_with("body ") && super::compare::listed_name(&name) == written {
        name.into()
    } else {
        written.into()
    }
}

impl Ignored {
    /// Whether a difference in `field`, one of `WHOLE_BODY_FIELDS`, is left out: by its own
    /// name, as the summary shows it, or with the whole body (`$`).
    pub fn whole_body_field(&self, field: &str) -> bool {
        self.root || self.whole.iter().any(|name| name == field)
    }
}

/// `path` without `body ` and the root's `$` in front.
fn without_root(path: &str) -> &str {
    let path = path.strip_prefix("body ").unwrap_or(path);
    match path.strip_prefix('$') {
        Some(rest) if rest.is_empty() || rest.starts_with('[') => rest,
        Some(rest) if rest.starts_with('.') => &rest[1..],
        // `$id` is a key.
        _ => path,
    }
}

/// Why `--ignore-field PATH` looks mistaken, if it does: written like an index (`items[0].id`:
/// paths have none) or with an empty name between dots (`a..b`). Keys may hold any text, so
/// such a path can still name a field (`{"a[0]": …}`): a warning, not a refusal.
pub fn ignore_path_doubt(path: &str) -> Option<&'static str> {
    let rest = without_root(path);
    if rest.is_empty() {
        return None;
    }
    for (i, segment) in rest.split('.').enumerate() {
        let mut name = segment;
        while let Some(inner) = name.strip_suffix("[]") {
            name = inner;
        }
        if name.contains(['[', ']']) {
            return Some("arrays are written [], for every element: paths have no indexes");
        }
        // Only a root array's path starts with `[]` (`[].id`).
        if name.is_empty() && (i > 0 || segment.is_empty()) {
            return Some("an empty name between dots");
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// The tree.

/// A JSON body parsed for comparison. serde_json parses it (the same grammar, numbers and
/// nesting limit as everywhere else), but into one flat list of nodes whose strings stay in
/// the body's bytes unless they hold escapes: a few allocations per body where serde_json's
/// `Value` makes one per node and per string (building and freeing those was most of the
/// reporting thread's time with bodies that differ). Members of an object are sorted by key, and a repeated key keeps its last value:
/// what `Value`'s map makes of them, so paths, their order and samples are unchanged.
#[derive(Debug)]
pub struct Tree {
    root: Node,
    /// The members of every array and object, each container's together, in post-order.
    members: Vec<Member>,
    /// The strings (and keys) that held escapes, unescaped.
    owned: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Null,
    Bool(bool),
    Number(Number),
    String(Text),
    Array(Members),
    Object(Members),
}

/// A string: a span of the body's bytes, or one of the tree's unescaped strings. Offsets
/// and counts are `u32` (a member is 40 bytes instead of 56): `parse` takes no body of
/// 4 GiB or more, and a body holds fewer strings and members than bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Text {
    Input { start: u32, len: u32 },
    Owned(u32),
}

/// A container's members: `Tree::members[start..start + len]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Members {
    start: u32,
    len: u32,
}

/// An array element (with an empty key) or an object member.
#[derive(Debug, Clone, PartialEq)]
struct Member {
    key: Text,
    node: Node,
}

/// The key of array elements.
const NO_KEY: Text = Text::Input { start: 0, len: 0 };

/// Parses `bytes` as one JSON text; `None` if it is not one (or is 4 GiB or more: see
/// `Text`; `--max-compare-bytes` would have to be set that high).
pub fn parse(bytes: &[u8]) -> Option<Tree> {
    u32::try_from(bytes.len()).ok()?;
    let (members, stack) = SPARES.with_borrow_mut(|spares| {
        (
            spares.members.pop().unwrap_or_default(),
            std::mem::take(&mut spares.stack),
        )
    });
    let mut builder = Builder {
        input: bytes,
        members,
        stack,
        owned: Vec::new(),
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let root = NodeSeed(&mut builder)
        .deserialize(&mut deserializer)
        // Only whitespace may follow, as with `serde_json::from_slice`.
        .and_then(|root| deserializer.end().map(|()| root));
    let Builder {
        members,
        mut stack,
        owned,
        ..
    } = builder;
    if stack.capacity() <= SPARE_MEMBERS {
        stack.clear();
        SPARES.with_borrow_mut(|spares| spares.stack = stack);
    }
    let mut tree = Tree {
        root: Node::Null,
        members,
        owned,
    };
    // On an error the tree is dropped here, and its buffer goes back to the spares.
    tree.root = root.ok()?;
    Some(tree)
}

/// The buffers of the trees dropped on this thread, for the next ones: the reporting thread
/// parses up to three bodies per exchange, and reusing their buffers spares it growing new
/// ones (and, for large bodies, the kernel's work of mapping them) every time.
#[derive(Default)]
struct Spares {
    members: Vec<Vec<Member>>,
    stack: Vec<Member>,
}

/// Most buffers kept: the three legs' trees of an exchange.
const SPARE_BUFFERS: usize = 3;
/// A buffer for more members than this (640 KiB; a 200 KiB list response, about) is freed,
/// not kept: what stays after a large body is at most 2.5 MiB, not its tree.
const SPARE_MEMBERS: usize = 16 * 1024;

thread_local! {
    static SPARES: RefCell<Spares> = RefCell::default();
}

impl Drop for Tree {
    fn drop(&mut self) {
        let mut members = std::mem::take(&mut self.members);
        if members.capacity() > SPARE_MEMBERS {
            return;
        }
        members.clear();
        // At thread exit the spares may be gone already: then the buffer is simply freed.
        let _ = SPARES.try_with(|spares| {
            let mut spares = spares.borrow_mut();
            if spares.members.len() < SPARE_BUFFERS {
                spares.members.push(members);
            }
        });
    }
}

/// A parsed body with the bytes its strings point into.
#[derive(Debug, Clone, Copy)]
pub struct Doc<'t> {
    input: &'t [u8],
    tree: &'t Tree,
}

impl<'t> Doc<'t> {
    /// `tree` as parsed from `input` (by `parse`).
    pub fn new(input: &'t [u8], tree: &'t Tree) -> Doc<'t> {
        Doc { input, tree }
    }

    fn text(self, text: Text) -> &'t [u8] {
        text_bytes(self.input, &self.tree.owned, text)
    }

    fn members(self, members: Members) -> &'t [Member] {
        let start = members.start as usize;
        self.tree
            .members
            .get(start..start + members.len as usize)
            .unwrap_or_default()
    }
}

/// Skips the members of `rest` (sorted by key) named below `key`; the one named `key`, if it
/// is next, is taken and returned. Called with keys in ascending order, it merges two lists.
fn advance_to<'t>(doc: Doc<'t>, rest: &mut &'t [Member], key: &[u8]) -> Option<&'t Member> {
    while let Some((member, tail)) = rest.split_first() {
        match doc.text(member.key).cmp(key) {
            std::cmp::Ordering::Less => *rest = tail,
            std::cmp::Ordering::Equal => {
                *rest = tail;
                return Some(member);
            }
            std::cmp::Ordering::Greater => return None,
        }
    }
    None
}

fn text_bytes<'a>(input: &'a [u8], owned: &'a [String], text: Text) -> &'a [u8] {
    match text {
        Text::Input { start, len } => {
            let start = start as usize;
            input.get(start..start + len as usize).unwrap_or_default()
        }
        Text::Owned(at) => owned.get(at as usize).map_or(&[][..], |s| s.as_bytes()),
    }
}

/// The tree under construction: members of the containers still open wait on `stack`, and
/// move to `members` when their container closes.
struct Builder<'de> {
    input: &'de [u8],
    members: Vec<Member>,
    stack: Vec<Member>,
    owned: Vec<String>,
}

impl<'de> Builder<'de> {
    /// A string serde_json found in the input without escapes: kept as a span of it.
    fn borrowed(&mut self, s: &'de str) -> Text {
        let start = (s.as_ptr() as usize).wrapping_sub(self.input.as_ptr() as usize);
        match start.checked_add(s.len()) {
            // Within the input, so both fit in u32 (`parse`).
            Some(end) if end <= self.input.len() => Text::Input {
                start: start as u32,
                len: s.len() as u32,
            },
            _ => self.owned(s.to_owned()),
        }
    }

    fn owned(&mut self, s: String) -> Text {
        self.owned.push(s);
        // Fewer strings than input bytes.
        Text::Owned((self.owned.len() - 1) as u32)
    }

    /// Moves the members pushed since `mark` to the tree; an object's sorted by key, with
    /// only the last of a repeated key.
    fn close(&mut self, mark: usize, object: bool) -> Members {
        let Builder {
            input,
            members,
            stack,
            owned,
        } = self;
        let start = members.len();
        if object {
            let key = |member: &Member| text_bytes(input, owned, member.key);
            // Stable: of a repeated key, the last one stays last.
            stack[mark..].sort_by(|a, b| key(a).cmp(key(b)));
            let mut sorted = stack.drain(mark..).peekable();
            while let Some(member) = sorted.next() {
                if sorted.peek().is_some_and(|next| key(next) == key(&member)) {
                    continue;
                }
                members.push(member);
            }
        } else {
            members.extend(stack.drain(mark..));
        }
        // Fewer members than input bytes.
        Members {
            start: start as u32,
            len: (members.len() - start) as u32,
        }
    }
}

/// Parses one value into the builder; its node is returned, its members are in the tree.
struct NodeSeed<'b, 'de>(&'b mut Builder<'de>);

impl<'de> DeserializeSeed<'de> for NodeSeed<'_, 'de> {
    type Value = Node;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_, 'de> {
    type Value = Node;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    // Numbers are made as serde_json's `Value` makes them, so `1` and `1.0` stay apart.
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Number::from_f64(v).map_or(Node::Null, Node::Number))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Node, E> {
        Ok(Node::String(self.0.borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::String(self.0.owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::String(self.0.owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mark = self.0.stack.len();
        while let Some(node) = seq.next_element_seed(NodeSeed(&mut *self.0))? {
            self.0.stack.push(Member { key: NO_KEY, node });
        }
        Ok(Node::Array(self.0.close(mark, false)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mark = self.0.stack.len();
        while let Some(key) = map.next_key_seed(KeySeed(&mut *self.0))? {
            let node = map.next_value_seed(NodeSeed(&mut *self.0))?;
            self.0.stack.push(Member { key, node });
        }
        Ok(Node::Object(self.0.close(mark, true)))
    }
}

/// Parses an object key into the builder.
struct KeySeed<'b, 'de>(&'b mut Builder<'de>);

impl<'de> DeserializeSeed<'de> for KeySeed<'_, 'de> {
    type Value = Text;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Text, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_, 'de> {
    type Value = Text;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text, E> {
        Ok(self.0.borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Text, E> {
        Ok(self.0.owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Text, E> {
        Ok(self.0.owned(v))
    }
}

// ---------------------------------------------------------------------------------------------
// The comparison.

/// Appends the differences between `primary` and `other` to `out`, as `body PATH[ KIND]`
/// fields, skipping the paths in `ignore` and everything under them, and the kinds of
/// difference it names at a path.
pub fn diff(primary: Doc<'_>, other: Doc<'_>, ignore: &Ignored, out: &mut Differences) {
    let mut walk = Walk {
        a: primary,
        b: other,
        path: Vec::new(),
        field: String::new(),
        ignore,
        out,
    };
    // `--ignore-field $` leaves the whole body out.
    if !walk.ignored() {
        walk.value(&primary.tree.root, &other.tree.root);
    }
}

struct Walk<'t, 'o> {
    /// The primary's body and the other leg's.
    a: Doc<'t>,
    b: Doc<'t>,
    /// The path of the current node, `user.emails[]`; empty at the root. Bytes: keys are
    /// compared as bytes, and only a difference makes the path text.
    path: Vec<u8>,
    /// Scratch for the field name of a difference.
    field: String,
    ignore: &'o Ignored,
    out: &'o mut Differences,
}

impl<'t> Walk<'t, '_> {
    fn value(&mut self, x: &'t Node, y: &'t Node) {
        // Once full, walking on only to learn that there is `more`.
        if self.out.more {
            return;
        }
        match (x, y) {
            (Node::Object(a), Node::Object(b)) => self.object(*a, *b),
            (Node::Array(a), Node::Array(b)) => {
                if a.len != b.len {
                    self.record(Kind::Length, Some(x), Some(y));
                    return;
                }
                let mark = self.path.len();
                self.path.extend_from_slice(b"[]");
                if !self.ignored() {
                    let (da, db) = (self.a, self.b);
                    for (m, n) in da.members(*a).iter().zip(db.members(*b)) {
                        self.value(&m.node, &n.node);
                    }
                }
                self.path.truncate(mark);
            }
            // Diffy lifts integers to Long and the rest to Double: `1` and `1.0` differ in
            // type, as a strictly typed client would see them.
            (Node::Number(m), Node::Number(n)) => {
                // `-0` may be either type (below), so it differs only in value.
                let signed_zero = negative_zero(m) || negative_zero(n);
                if m != n && !(signed_zero && is_zero(m) && is_zero(n)) {
                    let kind = if signed_zero || m.is_f64() == n.is_f64() {
                        Kind::Value
                    } else {
                        Kind::Type
                    };
                    self.record(kind, Some(x), Some(y));
                }
            }
            (Node::String(s), Node::String(t)) => {
                if self.a.text(*s) != self.b.text(*t) {
                    self.record(Kind::Value, Some(x), Some(y));
                }
            }
            (Node::Bool(p), Node::Bool(q)) => {
                if p != q {
                    self.record(Kind::Value, Some(x), Some(y));
                }
            }
            (Node::Null, Node::Null) => {}
            _ => self.record(Kind::Type, Some(x), Some(y)),
        }
    }

    /// The primary's members in key order, each against the other's of the same key (or
    /// `missing`), then the other's that the primary lacks (`extra`). Both lists are sorted,
    /// so each pass is one merge; the second is skipped when every key was matched.
    fn object(&mut self, a: Members, b: Members) {
        let (da, db) = (self.a, self.b);
        let (a, b) = (da.members(a), db.members(b));
        let mark = self.path.len();
        // Keys are data in a dynamic map: one path for all of them, as Diffy's
        // MapDifference does.
        let dynamic = is_dynamic(da, a) || is_dynamic(db, b);
        if dynamic {
            self.push_key(b"*");
            if self.ignored() {
                self.path.truncate(mark);
                return;
            }
        }
        let mut matched = 0;
        let mut rest = b;
        for m in a {
            let key = da.text(m.key);
            let other = advance_to(db, &mut rest, key);
            matched += usize::from(other.is_some());
            if !dynamic {
                self.push_key(key);
                if self.ignored() {
                    self.path.truncate(mark);
                    continue;
                }
            }
            match other {
                Some(n) => self.value(&m.node, &n.node),
                None => self.record(Kind::Missing, Some(&m.node), None),
            }
            if !dynamic {
                self.path.truncate(mark);
            }
        }
        if matched < b.len() {
            let mut rest = a;
            for n in b {
                let key = db.text(n.key);
                if advance_to(da, &mut rest, key).is_some() {
                    continue;
                }
                if dynamic {
                    self.record(Kind::Extra, None, Some(&n.node));
                } else {
                    self.push_key(key);
                    if !self.ignored() {
                        self.record(Kind::Extra, None, Some(&n.node));
                    }
                    self.path.truncate(mark);
                }
            }
        }
        self.path.truncate(mark);
    }

    fn push_key(&mut self, key: &[u8]) {
        if !self.path.is_empty() {
            self.path.push(b'.');
        }
        // The upstream's text: a newline in a key must not start a line of the output.
        let key = String::from_utf8_lossy(key);
        self.path.extend_from_slice(printable(&key).as_bytes());
    }

    fn ignored(&self) -> bool {
        self.ignore
            .paths
            .iter()
            .any(|path| same_without_markers(&self.path, path.as_bytes()))
    }

    fn record(&mut self, kind: Kind, primary: Option<&Node>, other: Option<&Node>) {
        let path = &self.path;
        if (self.ignore.kinds.iter())
            .any(|(at, k)| *k == kind && same_without_markers(path, at.as_bytes()))
        {
            return;
        }
        self.field.clear();
        self.field.push_str("body ");
        if self.path.is_empty() {
            self.field.push('$');
        } else {
            // Only what the name keeps is decoded: a path of a 100 KB key over 200 000 changed
            // elements decoded whole for each cost seconds. 3 bytes more complete a character
            // begun before the cut, and decoding never shortens, so the cut falls as it would.
            let kept = self.path.len().min(MAX_PATH_LEN + 3);
            let path = String::from_utf8_lossy(&self.path[..kept]);
            if path.len() > MAX_PATH_LEN {
                // Keys may be any text: the cut goes back to a character's start.
                let mut cut = MAX_PATH_LEN;
                while !path.is_char_boundary(cut) {
                    cut -= 1;
                }
                self.field.push_str(&path[..cut]);
                self.field.push('…');
            } else {
                self.field.push_str(&path);
            }
        }
        self.field.push_str(kind.suffix());
        let text = |doc: Doc<'_>, node: Option<&Node>| {
            node.map_or_else(|| "absent".to_string(), |node| render(doc, node))
        };
        let (da, db) = (self.a, self.b);
        self.out
            .push_with(&self.field, || text(da, primary), || text(db, other));
    }
}

/// Whether `path` with every `[]` taken out (left to right, as `str::replace` does) is
/// `normalized`: `normalize_path`'s form, without building the string at every node.
/// `-0` and `-0.0` alike: serde_json has no negative integer zero, so both are the float
/// -0.0. Go writes a negative zero float as `-0`, and Jackson (Diffy) reads `-0` as the
/// integer 0, so a negative zero is taken as either type.
fn negative_zero(n: &Number) -> bool {
    n.as_f64().is_some_and(|v| v == 0.0 && v.is_sign_negative())
}

fn is_zero(n: &Number) -> bool {
    n.as_f64() == Some(0.0)
}

fn same_without_markers(path: &[u8], normalized: &[u8]) -> bool {
    let (mut i, mut j) = (0, 0);
    while i < path.len() {
        if path[i..].starts_with(b"[]") {
            i += 2;
            continue;
        }
        if normalized.get(j) != Some(&path[i]) {
            return false;
        }
        i += 1;
        j += 1;
    }
    j == normalized.len()
}

/// A value as JSON, cut to a sample's length.
fn render(doc: Doc<'_>, node: &Node) -> String {
    let mut out = Vec::new();
    // The writer refuses bytes past the limit; the error only stops the serialisation.
    let _ = serde_json::to_writer(abbreviate::Limited::new(&mut out), &Rendered { doc, node });
    abbreviate::finish(out)
}

/// A node serialised as serde_json writes the `Value` it would have parsed: the same text.
struct Rendered<'t> {
    doc: Doc<'t>,
    node: &'t Node,
}

impl Serialize for Rendered<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let doc = self.doc;
        let text = |text: Text| std::str::from_utf8(doc.text(text)).unwrap_or_default();
        match self.node {
            Node::Null => serializer.serialize_unit(),
            Node::Bool(b) => serializer.serialize_bool(*b),
            Node::Number(n) => n.serialize(serializer),
            Node::String(s) => serializer.serialize_str(text(*s)),
            Node::Array(members) => {
                let members = doc.members(*members);
                let mut seq = serializer.serialize_seq(Some(members.len()))?;
                for m in members {
                    seq.serialize_element(&Rendered { doc, node: &m.node })?;
                }
                seq.end()
            }
            Node::Object(members) => {
                let members = doc.members(*members);
                let mut map = serializer.serialize_map(Some(members.len()))?;
                for m in members {
                    map.serialize_entry(text(m.key), &Rendered { doc, node: &m.node })?;
                }
                map.end()
            }
        }
    }
}

/// The fuzz check's model test: `bytes` parse as a tree exactly when serde_json parses them
/// as a `Value`, and the tree serialises to the same text.
pub(super) fn check_tree(bytes: &[u8]) {
    let value = serde_json::from_slice::<serde_json::Value>(bytes).ok();
    let tree = parse(bytes);
    let ours = tree.as_ref().map(|tree| {
        let doc = Doc::new(bytes, tree);
        serde_json::to_string(&Rendered {
            doc,
            node: &tree.root,
        })
        .unwrap_or_else(|err| panic!("the tree does not serialise: {err}"))
    });
    let theirs = value.map(|value| value.to_string());
    assert!(
        ours == theirs,
        "the tree of {:?} is {ours:?}, serde_json's value {theirs:?}",
        String::from_utf8_lossy(bytes)
    );
}

/// An object is a dynamic map when most of its keys look like data rather than names (`"7"`,
/// `"2024-01-01"`, `"a b"`, long ones). Not on a few odd keys among names, nor on many names:
/// all of a record's fields would become one, `*`, and a noisy one (a timestamp, an
/// `@odata.etag`) would hide every real change beside it.
fn is_dynamic(doc: Doc<'_>, members: &[Member]) -> bool {
    let data = members.iter().filter(|m| !is_name(doc.text(m.key))).count();
    data * 2 > members.len()
}

/// An identifier as APIs name fields: `user_id`, `@odata.etag`, `$ref`, `xml:lang`.
fn is_name(key: &[u8]) -> bool {
    let Some((&first, rest)) = key.split_first() else {
        return false;
    };
    key.len() <= MAX_KEY_LEN
        && (first.is_ascii_alphabetic() || matches!(first, b'_' | b'$' | b'@'))
        && rest.iter().all(|&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'@' | b'$')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The field names of the differences between two JSON texts.
    fn fields(primary: &str, other: &str) -> Vec<String> {
        fields_ignoring(primary, other, &[])
    }

    fn fields_ignoring(primary: &str, other: &str, ignore: &[&str]) -> Vec<String> {
        let ignore: Vec<String> = ignore.iter().map(|p| p.to_string()).collect();
        differences(primary, other, &Ignored::new(&ignore))
            .iter()
            .map(|d| d.field.clone())
            .collect()
    }

    fn differences(primary: &str, other: &str, ignore: &Ignored) -> Differences {
        let p = parse(primary.as_bytes()).unwrap();
        let o = parse(other.as_bytes()).unwrap();
        let mut out = Differences::default();
        diff(
            Doc::new(primary.as_bytes(), &p),
            Doc::new(other.as_bytes(), &o),
            ignore,
            &mut out,
        );
        out
    }

    #[test]
    fn a_path_past_the_length_limit_is_cut_and_what_lies_below_it_is_one_field() {
        // 40 levels of 40-byte keys (about 1.6 KB of path), then two leaves that differ.
        let key = "k".repeat(39);
        let nest = |leaves: &str| {
            let mut text = leaves.to_string();
            for level in 0..40 {
                text = format!(r#"{{"{key}{}":{text}}}"#, level % 10);
            }
            text
        };
        let found = fields(&nest(r#"{"a":1,"b":1}"#), &nest(r#"{"a":2,"b":2}"#));
        assert_eq!(found.len(), 1, "{found:?}");
        let field = &found[0];
        assert!(
            field.starts_with(&format!("body {key}9.{key}8.")),
            "{field}"
        );
        assert!(field.ends_with('…'), "{field}");
        assert_eq!(field.len(), "body ".len() + MAX_PATH_LEN + '…'.len_utf8());
    }

    #[test]
    fn differences_and_their_paths() {
        let rows: &[(&str, &str, &[&str])] = &[
            // Equal, whatever the key order and spacing.
            (r#"{"a":1,"b":[1,2]}"#, r#"{ "b": [1, 2], "a": 1 }"#, &[]),
            (r#"{"a":1}"#, r#"{"a":2}"#, &["body a"]),
            // Nested objects.
            (
                r#"{"user":{"name":"ada","email":"a@x"}}"#,
                r#"{"user":{"name":"ada","email":"b@x"}}"#,
                &["body user.email"],
            ),
            (
                r#"{"user":{"address":{"city":"Paris"}}}"#,
                r#"{"user":{"address":{"city":"Lyon"}}}"#,
                &["body user.address.city"],
            ),
            // Type changes.
            (r#"{"a":"1"}"#, r#"{"a":1}"#, &["body a type"]),
            (r#"{"a":{"x":1}}"#, r#"{"a":[1]}"#, &["body a type"]),
            (r#"{"a":null}"#, r#"{"a":false}"#, &["body a type"]),
            (r#"{"a":true}"#, r#"{"a":false}"#, &["body a"]),
            // Numbers: 1 and 1.0 differ in type (Diffy's Long vs Double); 1.0 and 1.00 do not.
            (r#"{"n":1}"#, r#"{"n":1.0}"#, &["body n type"]),
            (r#"{"n":1.0}"#, r#"{"n":1.00}"#, &[]),
            (r#"{"n":1.5}"#, r#"{"n":2.5}"#, &["body n"]),
            (r#"{"n":-1}"#, r#"{"n":1}"#, &["body n"]),
            (r#"{"n":1e2}"#, r#"{"n":100.0}"#, &[]),
            // `-0` is parsed as a float (serde_json has no negative integer zero), but Go
            // writes a negative zero float as `-0` and Jackson reads it as the integer 0: it
            // equals either zero. `0` and `0.0` still differ in type, as 1 and 1.0 do.
            (r#"{"n":-0}"#, r#"{"n":0}"#, &[]),
            (r#"{"n":0}"#, r#"{"n":-0.0}"#, &[]),
            (r#"{"n":-0.0}"#, r#"{"n":0.0}"#, &[]),
            (r#"{"n":0}"#, r#"{"n":0.0}"#, &["body n type"]),
            (r#"{"n":-0}"#, r#"{"n":1}"#, &["body n"]),
            // Missing and extra fields.
            (r#"{"a":1,"b":2}"#, r#"{"a":1}"#, &["body b missing"]),
            (r#"{"a":1}"#, r#"{"a":1,"c":{"d":1}}"#, &["body c extra"]),
            (
                r#"{"a":1,"b":2}"#,
                r#"{"a":1,"c":2}"#,
                &["body b missing", "body c extra"],
            ),
            // Arrays: one path for all elements, counted once; lengths differ as a whole.
            (
                r#"{"items":[{"p":1},{"p":2},{"p":3}]}"#,
                r#"{"items":[{"p":9},{"p":2},{"p":8}]}"#,
                &["body items[].p"],
            ),
            (
                r#"{"items":[1,2,3]}"#,
                r#"{"items":[1,2]}"#,
                &["body items length"],
            ),
            (r#"[{"id":1}]"#, r#"[{"id":2}]"#, &["body [].id"]),
            (r#"[[1],[2]]"#, r#"[[1],[3]]"#, &["body [][]"]),
            // The root itself.
            (r#"{"a":1}"#, r#"[1]"#, &["body $ type"]),
            (r#""x""#, r#""y""#, &["body $"]),
            // Dynamic-key maps: keys become `*`.
            (
                r#"{"scores":{"7":{"v":1},"8":{"v":2}}}"#,
                r#"{"scores":{"7":{"v":1},"8":{"v":3},"9":{"v":1}}}"#,
                &["body scores.*.v", "body scores.* extra"],
            ),
            (
                r#"{"by_day":{"2024-01-01":1}}"#,
                r#"{"by_day":{"2024-01-02":1}}"#,
                &["body by_day.* missing", "body by_day.* extra"],
            ),
        ];
        for (primary, other, expected) in rows {
            assert_eq!(fields(primary, other), *expected, "{primary} vs {other}");
        }
    }

    /// A record with many fields, one of them data, is still a record: only keys that are
    /// mostly data make a map.
    #[test]
    fn many_names_stay_fields_however_many_there_are() {
        let object = |n: usize, changed: usize| {
            let fields: Vec<String> = (0..n)
                .map(|i| format!(r#""k{i}":{}"#, if i == changed { 1 } else { 0 }))
                .collect();
            format!("{{{}}}", fields.join(","))
        };
        assert_eq!(fields(&object(10, 99), &object(10, 3)), ["body k3"]);
        // A wide record keeps its field names, a data key among them too.
        assert_eq!(fields(&object(61, 99), &object(61, 3)), ["body k3"]);
        let with_data = |changed: usize| object(61, changed).replacen("\"k0\"", "\"7\"", 1);
        assert_eq!(fields(&with_data(99), &with_data(3)), ["body k3"]);
    }

    /// One key that is data, or a name with dots, among a record's names does not make the
    /// record a map: its noisy field would hide every real change beside it (all `*`).
    #[test]
    fn a_record_with_an_odd_key_keeps_its_field_names() {
        assert_eq!(
            fields(
                r#"{"@odata.etag":"W/1","id":1,"total":5}"#,
                r#"{"@odata.etag":"W/2","id":1,"total":6}"#
            ),
            ["body @odata.etag", "body total"]
        );
        assert_eq!(
            fields(r#"{"id":1,"7":2,"total":5}"#, r#"{"id":1,"7":3,"total":6}"#),
            ["body 7", "body total"]
        );
        // Most keys data: a map.
        assert_eq!(
            fields(r#"{"id":1,"7":2,"8":5}"#, r#"{"id":1,"7":3,"8":6}"#),
            ["body *"]
        );
    }

    #[test]
    fn ignored_paths_and_what_is_under_them_are_skipped() {
        let p = r#"{"ts":1,"user":{"id":"a","name":"x"},"items":[{"id":1,"v":1}]}"#;
        let o = r#"{"ts":2,"user":{"id":"b","name":"y"},"items":[{"id":2,"v":2}]}"#;
        assert_eq!(
            fields_ignoring(p, o, &["ts", "user.id", "items[].id"]),
            ["body items[].v", "body user.name"]
        );
        assert_eq!(
            fields_ignoring(p, o, &["$.user", "items.id", "items[].v"]),
            ["body ts"]
        );
        // A missing field that is ignored is not reported either.
        assert_eq!(
            fields_ignoring(r#"{"a":1,"b":2}"#, r#"{"a":1}"#, &["b"]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn samples_show_both_values_cut_short() {
        let long = "x".repeat(500);
        let out = differences(
            &format!(r#"{{"a":"{long}","b":1}}"#),
            r#"{"a":"short"}"#,
            &Ignored::default(),
        );
        let got: Vec<_> = out.iter().collect();
        assert_eq!(got[0].field, "body a");
        assert!(got[0].primary.starts_with("\"xxxx"), "{}", got[0].primary);
        assert!(got[0].primary.chars().count() <= 101, "{}", got[0].primary);
        assert!(got[0].primary.ends_with('…'));
        assert_eq!(got[0].other, "\"short\"");
        assert_eq!(
            (
                got[1].field.as_str(),
                got[1].primary.as_str(),
                got[1].other.as_str()
            ),
            ("body b missing", "1", "absent")
        );
    }

    #[test]
    fn differences_are_bounded() {
        let object = |v: usize| {
            let fields: Vec<String> = (0..50).map(|i| format!(r#""a{i}":{v}"#)).collect();
            let groups: Vec<String> = (0..6)
                .map(|g| format!(r#""g{g}":{{{}}}"#, fields.join(",")))
                .collect();
            format!("{{{}}}", groups.join(","))
        };
        let out = differences(&object(1), &object(2), &Ignored::default());
        assert!(out.is_full());
        assert!(out.more);
        assert!(out.len() <= crate::report::compare::MAX_DIFFERENCES);
    }

    /// Every JSON text here is parsed both ways: the tree must be what serde_json's `Value`
    /// makes of it, down to the text a sample shows (sorted keys, the last of a repeated
    /// key, `1` against `1.0`, escapes undone).
    #[test]
    fn the_tree_is_what_serde_json_makes_of_a_body() {
        let texts = [
            r#"{"b":1,"a":[1,2.5,-3,1e2,-0,18446744073709551615,18446744073709551616]}"#,
            r#"{"k":1,"k":2,"j":{"x":null,"x":true}}"#,
            r#"{"\u00e9t\u00e9":"caf\u00e9","plain":"no escapes","tab":"a\tb","q":"\"\\"}"#,
            r#"[[],{},[[[]]],"",0,false]"#,
            "  \"top\"  ",
            "3.14",
            r#"{"z":{"y":{"x":[{"w":"deep"}]}},"a":"first"}"#,
        ];
        for text in texts {
            assert!(parse(text.as_bytes()).is_some(), "{text}");
            check_tree(text.as_bytes());
        }
        for bad in [
            "",
            "{",
            r#"{"a":1} x"#,
            "[1,]",
            r#"{"a" 1}"#,
            "nul",
            "\"\\x\"",
        ] {
            assert!(parse(bad.as_bytes()).is_none(), "{bad:?} parsed");
            check_tree(bad.as_bytes());
        }
    }

    #[test]
    fn escaped_and_plain_texts_of_one_string_are_equal() {
        assert_eq!(
            fields(
                r#"{"a":"A","\u0062":"é"}"#,
                r#"{"\u0061":"\u0041","b":"\u00e9"}"#
            ),
            Vec::<String>::new()
        );
        // A repeated key counts with its last value, whichever leg repeats it.
        assert_eq!(
            fields(r#"{"a":1,"a":2}"#, r#"{"a":2}"#),
            Vec::<String>::new()
        );
        assert_eq!(fields(r#"{"a":2,"a":1}"#, r#"{"a":2}"#), ["body a"]);
    }

    /// Paths are written as the report names them, with or without `body ` and `$`; `$` is
    /// the whole body, a root array's elements are `[]`.
    #[test]
    fn ignore_paths_in_the_reports_forms_and_the_root() {
        // A name the summary quotes (for its `,`, `"` or `\`) works as listed (hunt 82).
        let (p, o) = (
            r#"{"a,b":1,"q\"":1,"c":1,"d":0,"e":0}"#,
            r#"{"a,b":2,"q\"":2,"c":2,"d":0,"e":0}"#,
        );
        assert_eq!(
            fields_ignoring(p, o, &[r#""body a,b""#]),
            ["body c", "body q\""]
        );
        assert_eq!(
            fields_ignoring(p, o, &[r#""body q\"""#]),
            ["body a,b", "body c"]
        );
        // Quotes the summary would not write are the key's own: around a name it would not
        // quote, or one without `body ` (hunt 84: `"a,b"` left out `a,b`).
        let (p, o) = (r#"{"\"c\"":1,"c":1,"d":0}"#, r#"{"\"c\"":2,"c":2,"d":0}"#);
        assert_eq!(fields_ignoring(p, o, &[r#""c""#]), ["body c"]);
        let (p, o) = (
            r#"{"a,b":1,"\"a,b\"":1,"c":0,"d":0,"e":0}"#,
            r#"{"a,b":2,"\"a,b\"":2,"c":0,"d":0,"e":0}"#,
        );
        assert_eq!(fields_ignoring(p, o, &[r#""a,b""#]), ["body a,b"]);
        let (p, o) = (r#"{"a":1,"b":{"c":1}}"#, r#"{"a":2,"b":{"c":2}}"#);
        assert_eq!(fields_ignoring(p, o, &["body a"]), ["body b.c"]);
        assert_eq!(fields_ignoring(p, o, &["$.b.c"]), ["body a"]);
        for root in ["$", "body $"] {
            assert_eq!(
                fields_ignoring(p, o, &[root]),
                Vec::<String>::new(),
                "{root}"
            );
        }
        let (p, o) = (r#"[{"id":1,"v":1}]"#, r#"[{"id":2,"v":2}]"#);
        assert_eq!(fields(p, o), ["body [].id", "body [].v"]);
        for id in ["[].id", "$[].id", "body [].id"] {
            assert_eq!(fields_ignoring(p, o, &[id]), ["body [].v"], "{id}");
        }
        for all in ["$[]", "[]"] {
            assert_eq!(fields_ignoring(p, o, &[all]), Vec::<String>::new(), "{all}");
        }
        // `$id` is a key, not the root.
        let (p, o) = (r#"{"$id":1,"id":1}"#, r#"{"$id":2,"id":2}"#);
        assert_eq!(fields_ignoring(p, o, &["$id"]), ["body id"]);
        // A field's whole name from the report, its kind of difference included.
        let (p, o) = (
            r#"{"email":"a","n":1,"tags":[1],"x":1}"#,
            r#"{"email_address":"a","n":"1","tags":[1,2],"x":2}"#,
        );
        assert_eq!(
            fields(p, o),
            [
                "body email missing",
                "body n type",
                "body tags length",
                "body x",
                "body email_address extra"
            ]
        );
        let copied = [
            "body email missing",
            "body email_address extra",
            "body n type",
            "body tags length",
        ];
        assert_eq!(fields_ignoring(p, o, &copied), ["body x"]);
        // Without `body ` a space is a key's own.
        assert_eq!(fields_ignoring(p, o, &["n type"]).len(), 5);
        // Only that kind of difference is left out: a value difference at the path is not.
        // The name is also a key's, which the report names alike, so that key is left out.
        let (p, o) = (r#"{"x":1,"n":1,"n type":1}"#, r#"{"x":1,"n":2,"n type":2}"#);
        assert_eq!(fields(p, o), ["body n", "body n type"]);
        assert_eq!(fields_ignoring(p, o, &["body n type"]), ["body n"]);
    }

    /// A path written like an index or with an empty name is doubted (a warning), yet
    /// matches a key that is written so: keys are any text.
    #[test]
    fn ignore_paths_that_look_mistaken_are_doubted_and_still_match_such_keys() {
        for good in [
            "a",
            "a.b",
            "items[].id",
            "[].id",
            "$",
            "$[]",
            "$[].id",
            "$.a",
            "body a.b",
            "scores.*.v",
            "@odata.etag",
            "a[][]",
            "$id",
            "first name",
            "body first name",
        ] {
            assert_eq!(ignore_path_doubt(good), None, "{good}");
        }
        for odd in [
            "a..b",
            "a.",
            ".a",
            "a[0]",
            "items[1].id",
            "a]",
            "a.[]",
            "[]..a",
        ] {
            assert!(ignore_path_doubt(odd).is_some(), "{odd}");
        }
        let (p, o) = (
            r#"{"a[0]":1,"first name":1,"b":1,"c":0,"d":0}"#,
            r#"{"a[0]":2,"first name":2,"b":2,"c":0,"d":0}"#,
        );
        assert_eq!(fields(p, o), ["body a[0]", "body b", "body first name"]);
        assert_eq!(
            fields_ignoring(p, o, &["a[0]", "body first name"]),
            ["body b"]
        );
    }

    #[test]
    fn keys_with_control_characters_are_escaped_in_paths() {
        // As JSON escapes in the body: a newline, ESC, a backslash, a right-to-left override.
        let key = r"x\nVERDICT candidate: PASS\n\u001b[2J\\\u202e";
        let p = format!(r#"{{"a":0,"b":0,"c":0,"{key}":0}}"#);
        let o = format!(r#"{{"a":0,"b":0,"c":0,"{key}":1}}"#);
        assert_eq!(
            fields(&p, &o),
            [r"body x\nVERDICT candidate: PASS\n\u001b[2J\\\u202e"]
        );
        // Names and other text as they are.
        let (p, o) = (r#"{"prénom":"a","b":0}"#, r#"{"prénom":"b","b":0}"#);
        assert_eq!(fields(p, o), ["body prénom"]);
    }

    /// A long path cut where byte 256 falls inside a character is cut before it.
    #[test]
    fn a_long_path_of_other_scripts_is_cut_at_a_character() {
        let key = "é".repeat(15); // 30 bytes: byte 256 falls inside a character
        let nest = |leaf: &str| {
            let mut text = leaf.to_string();
            for level in 0..20 {
                text = format!(r#"{{"{key}{level}":{text},"b":0}}"#);
            }
            text
        };
        let found = fields(&nest("1"), &nest("2"));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].ends_with('…'), "{}", found[0]);
        let path = found[0]
            .strip_prefix("body ")
            .unwrap()
            .strip_suffix('…')
            .unwrap();
        assert!(
            path.len() <= MAX_PATH_LEN && path.len() > MAX_PATH_LEN - 4,
            "{}",
            path.len()
        );
    }

    /// Only the bytes the name keeps are decoded: a 4-byte character across the cut is left
    /// out whole, as when the path was decoded whole.
    #[test]
    fn a_long_key_is_cut_the_same_when_only_its_start_is_decoded() {
        let key = "😀".repeat(70); // 280 bytes: the 65th character spans bytes 256 to 259
        let found = fields(
            &format!(r#"{{"{key}":[1,1],"b":0}}"#),
            &format!(r#"{{"{key}":[2,2],"b":0}}"#),
        );
        assert_eq!(found, [format!("body {}…", "😀".repeat(64))]);
    }

    #[test]
    fn ignore_paths_match_as_if_markers_were_taken_out() {
        let rows: &[(&str, &str, bool)] = &[
            ("items[].id", "items.id", true),
            ("[].id", ".id", true),
            ("a[][]", "a", true),
            ("items[].id", "items[].id", false),
            ("a", "ab", false),
            ("ab", "a", false),
            ("k[[]", "k[", true),
            ("[[]]", "[]", true),
            ("", "", true),
        ];
        for (path, normalized, expected) in rows {
            assert_eq!(
                same_without_markers(path.as_bytes(), normalized.as_bytes()),
                *expected,
                "{path:?} against {normalized:?}"
            );
            assert_eq!(
                path.replace("[]", "") == *normalized,
                *expected,
                "the model"
            );
        }
    }
}
