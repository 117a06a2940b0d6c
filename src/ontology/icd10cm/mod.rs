//! Loader for the CDC ICD-10-CM tabular list XML (`icd10cm-xml`, system `ICD10CM`).
//!
//! # Format
//! The tabular file (`icd10cm-tabular-2026.xml`, ~10 MB) is one `ICD10CM.tabular` element holding
//! `chapter`s; a chapter has `name` (its number), `desc` (title ending in its code range, e.g.
//! `Endocrine, nutritional and metabolic diseases (E00-E89)`) and `section`s (`id="E08-E13"`,
//! `desc`); a section holds `diag`s, and a `diag` has `name` (the code with its dot, `E11.9`),
//! `desc`, optional notes (`inclusionTerm`, `includes`, `excludes1`, `excludes2`, `codeFirst`,
//! `useAdditionalCode`, `codeAlso`, `notes`, each a list of `note`), an optional `sevenChrDef`
//! (the 7th-character extensions, defined before the child `diag`s they apply to) and nested
//! child `diag`s.
//!
//! The file is streamed with quick-xml (pull parser, one event buffer): memory does not grow with
//! the file. Line numbers for errors come from counting the newlines quick-xml has consumed.
//!
//! # What is loaded
//! * every `diag` → a concept: code = `name` as published (with the dot), preferred = `desc`,
//!   `inclusionTerm` notes → terms of kind `inclusion`, and so are its `includes` notes that
//!   are wordings of the code (I10's "high blood pressure"; not those citing codes or longer
//!   than 16 words: see [`includes_term`]);
//!   `includes`/`excludes1`/`excludes2`/`codeFirst`/`useAdditionalCode`/`codeAlso`/`notes` notes →
//!   attributes `includes`, `excludes1`, `excludes2`, `code_first`, `use_additional_code`,
//!   `code_also`, `notes` (notes joined by `"; "`); `sevenChrDef` → attribute `seventh_character`
//!   (`"A=initial encounter; D=subsequent encounter; ..."`); attribute `billable` = `true` for a
//!   code without subdivisions (the CMS order file's non-header codes), `false` for a header.
//! * every 7-character code a `sevenChrDef` makes (`S72.001A`, `S00.00XA`, `T36.0X1A`) → a
//!   concept below the code it extends, named like the CMS order file (see [`seventh`]).
//! * every chapter → a concept whose code is the chapter's code range taken from its title
//!   (`E00-E89`; `Chapter N` when the title has no range), attribute `chapter` = its number.
//! * every section with a range id (`E08-E13`) → a concept with that code. Sections whose id is a
//!   single category (`E36`) are the same thing as that category (same code, same title), so no
//!   separate concept is made: the category hangs directly under its chapter.
//! * hierarchy (`is_a`, to the parent): nested diag → enclosing diag, top diag → its section
//!   (or chapter, see above), section → chapter. Chapters are the roots.
//!
//! On the April 2026 release this gives exactly the CDC code list shipped beside it
//! (`code-list-April-2026.txt`): 98,186 codes (74,719 billable), 22 chapters, 258 sections
//! (tested in `tests/loaders_public.rs`).

pub mod seventh;
mod text;

use super::input::{self, LineCountingBufRead};
use super::{InputFile, LoadError, LoadOptions, Sink};
use crate::domain::model::{Concept, Relation, Term, TermKind};
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use seventh::{Exclusion, SeventhDef};
use std::io::BufReader;
use text::{chapter_code, normalize_space};
pub use text::{includes_term, with_dot};

/// Load an ICD-10-CM tabular XML release from `files` into `sink`.
pub fn load(
    files: &[InputFile],
    _opts: &LoadOptions,
    sink: &mut dyn Sink,
) -> Result<(), LoadError> {
    for f in files {
        if !f.upper_name().ends_with(".XML") {
            return Err(LoadError::Files(format!(
                "{}: not an ICD-10-CM tabular XML file (expected a .xml file such as \
                 icd10cm-tabular-2026.xml)",
                f.name
            )));
        }
    }
    let mut done = 0;
    for f in files {
        done = load_file(f, done, sink)?;
    }
    Ok(())
}

/// Element kinds the parser cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Root,
    Chapter,
    Section,
    Diag,
    Name,
    Desc,
    Note,
    /// A note list: its attribute name, or `None` for inclusion terms.
    Notes(Option<&'static str>),
    SevenChrDef,
    Extension,
    Other,
}

fn tag_of(name: &[u8]) -> Tag {
    match name {
        b"chapter" => Tag::Chapter,
        b"section" => Tag::Section,
        b"diag" => Tag::Diag,
        b"name" => Tag::Name,
        b"desc" => Tag::Desc,
        b"note" => Tag::Note,
        b"inclusionTerm" => Tag::Notes(None),
        b"includes" => Tag::Notes(Some("includes")),
        b"excludes1" => Tag::Notes(Some("excludes1")),
        b"excludes2" => Tag::Notes(Some("excludes2")),
        b"codeFirst" => Tag::Notes(Some("code_first")),
        b"useAdditionalCode" => Tag::Notes(Some("use_additional_code")),
        b"codeAlso" => Tag::Notes(Some("code_also")),
        b"notes" => Tag::Notes(Some("notes")),
        b"sevenChrDef" => Tag::SevenChrDef,
        b"extension" => Tag::Extension,
        _ => Tag::Other,
    }
}

/// A chapter, section or diag being read; emitted once its code and title are known.
#[derive(Debug, Default)]
struct Node {
    name: Option<String>,
    desc: Option<String>,
    /// Parent code (`None` for chapters).
    parent: Option<String>,
    concept: Option<Concept>,
    emitted: bool,
    /// False for single-category sections, which are not separate concepts.
    is_concept: bool,
    /// A `diag` (a code), as opposed to a chapter or section.
    is_diag: bool,
    /// A child `diag` has started: this code is a header.
    has_child: bool,
    /// This node's own `sevenChrDef`.
    seventh: Option<SeventhDef>,
    /// 7th-character exclusions stated in this node's `<notes>`.
    exclusions: Vec<Exclusion>,
    line: u64,
}

struct Parser<'s> {
    file: String,
    sink: &'s mut dyn Sink,
    /// Open elements.
    stack: Vec<Tag>,
    /// Open chapter/section/diag nodes, outermost first.
    nodes: Vec<Node>,
    text: String,
    ext_char: Option<String>,
    diags: u64,
    line: u64,
}

impl Parser<'_> {
    fn err(&self, message: impl Into<String>) -> LoadError {
        LoadError::malformed(&self.file, self.line, message)
    }

    /// Code of the nearest enclosing node that is a concept (the parent of a new node).
    fn parent_code(&self) -> Option<String> {
        self.nodes
            .iter()
            .rev()
            .find(|n| n.is_concept)
            .and_then(|n| n.concept.as_ref().map(|c| c.code.clone()))
    }

    /// The `sevenChrDef` that applies to the innermost node: its own or the nearest ancestor's.
    fn seventh_def(&self) -> Option<&SeventhDef> {
        self.nodes.iter().rev().find_map(|n| n.seventh.as_ref())
    }

    /// Emit the innermost node's concept (and its `is_a` relation) if not done yet; called when
    /// a child node starts and when the node ends, so parents always precede their children.
    fn emit_top(&mut self) -> Result<(), LoadError> {
        let extended = self.seventh_def().is_some();
        let Some(node) = self.nodes.last_mut() else {
            return Ok(());
        };
        if node.emitted || !node.is_concept {
            node.emitted = true;
            return Ok(());
        }
        node.emitted = true;
        let Some(mut concept) = node.concept.take() else {
            let what = if node.parent.is_none() {
                "<chapter> has no <desc>"
            } else {
                "<diag> has no <name> (code)"
            };
            return Err(LoadError::malformed(&self.file, node.line, what));
        };
        if concept.preferred_term.is_empty() {
            return Err(LoadError::malformed(
                &self.file,
                node.line,
                format!("{} has no <desc>", concept.code),
            ));
        }
        if node.is_diag {
            let billable = !(node.has_child || extended);
            concept
                .attributes
                .insert("billable".into(), billable.to_string());
        }
        let code = concept.code.clone();
        let parent = node.parent.clone();
        node.concept = Some(Concept {
            code: code.clone(),
            preferred_term: concept.preferred_term.clone(),
            active: true,
            ..Default::default()
        });
        self.sink.concept(concept)?;
        if let Some(parent) = parent {
            self.sink.relation(Relation {
                from: code,
                rel: "is_a".into(),
                to: parent,
            })?;
        }
        Ok(())
    }

    fn start(&mut self, e: &BytesStart<'_>) -> Result<(), LoadError> {
        let tag = tag_of(e.name().as_ref());
        if self.stack.is_empty() {
            if e.name().as_ref() != b"ICD10CM.tabular" {
                return Err(self.err(format!(
                    "root element is <{}>, expected <ICD10CM.tabular>",
                    String::from_utf8_lossy(e.name().as_ref())
                )));
            }
            self.stack.push(Tag::Root);
            return Ok(());
        }
        let parent_tag = self.stack.last().copied().unwrap_or(Tag::Other);
        match tag {
            Tag::Chapter if parent_tag == Tag::Root => {
                self.nodes.push(Node {
                    is_concept: true,
                    line: self.line,
                    ..Default::default()
                });
            }
            Tag::Section if parent_tag == Tag::Chapter => {
                self.emit_top()?;
                let id = attribute(e, b"id").map_err(|m| self.err(m))?;
                let chapter = self.parent_code();
                let is_concept = id.contains('-') && Some(&id) != chapter.as_ref();
                self.nodes.push(Node {
                    parent: chapter,
                    concept: is_concept.then(|| Concept {
                        code: id.clone(),
                        active: true,
                        ..Default::default()
                    }),
                    name: Some(id),
                    is_concept,
                    line: self.line,
                    ..Default::default()
                });
            }
            Tag::Diag if matches!(parent_tag, Tag::Section | Tag::Diag) => {
                if let Some(parent) = self.nodes.last_mut() {
                    parent.has_child = true;
                }
                self.emit_top()?;
                self.diags += 1;
                self.nodes.push(Node {
                    parent: self.parent_code(),
                    is_concept: true,
                    is_diag: true,
                    line: self.line,
                    ..Default::default()
                });
            }
            Tag::SevenChrDef if parent_tag == Tag::Diag => {
                let line = self.line;
                if let Some(node) = self.nodes.last_mut() {
                    if node.has_child {
                        let code = node.name.clone().unwrap_or_default();
                        return Err(LoadError::malformed(
                            &self.file,
                            line,
                            format!(
                                "<sevenChrDef> of {code} comes after its child codes; it must \
                                 precede the codes it applies to"
                            ),
                        ));
                    }
                    node.seventh = Some(SeventhDef::new());
                }
            }
            Tag::Chapter | Tag::Section | Tag::Diag => {
                return Err(self.err(format!(
                    "<{}> is not allowed here",
                    String::from_utf8_lossy(e.name().as_ref())
                )));
            }
            Tag::Extension => {
                self.ext_char = attribute(e, b"char").ok();
            }
            _ => {}
        }
        self.text.clear();
        self.stack.push(tag);
        Ok(())
    }

    fn end(&mut self) -> Result<(), LoadError> {
        let Some(tag) = self.stack.pop() else {
            return Err(self.err("unexpected closing tag"));
        };
        let parent_tag = self.stack.last().copied();
        let text = normalize_space(&self.text);
        self.text.clear();
        match tag {
            Tag::Chapter | Tag::Section | Tag::Diag => {
                self.emit_top()?;
                if tag == Tag::Diag {
                    self.emit_extensions()?;
                }
                if let Some(node) = self.nodes.pop() {
                    // Notes that came after the first child diag: emit them as a fragment.
                    if let Some(c) = node.concept {
                        if !c.terms.is_empty() || !c.attributes.is_empty() {
                            self.sink.concept(c)?;
                        }
                    }
                }
            }
            Tag::Name | Tag::Desc => self.name_or_desc(tag, parent_tag, text)?,
            Tag::Note => {
                let grand = self.stack.iter().rev().nth(1).copied();
                if let (Some(Tag::Notes(kind)), Some(Tag::Diag)) = (parent_tag, grand) {
                    if let Some(node) = self.nodes.last_mut() {
                        if kind == Some("notes") {
                            node.exclusions.extend(seventh::parse_exclusion(&text));
                        }
                        if let Some(c) = node.concept.as_mut() {
                            match kind {
                                None => c.add_term(Term::new(text, TermKind::Inclusion)),
                                Some(attr) => {
                                    if attr == "includes" {
                                        if let Some(t) = includes_term(&text) {
                                            c.add_term(Term::new(t, TermKind::Inclusion));
                                        }
                                    }
                                    append_attr(c, attr, &text)
                                }
                            }
                        }
                    }
                }
            }
            Tag::Extension => {
                let ch = self.ext_char.take();
                let line = self.line;
                if let (Some(ch), Some(node)) = (ch, self.nodes.last_mut()) {
                    if ch.len() != 1 || !ch.chars().all(|c| c.is_ascii_alphanumeric()) {
                        return Err(LoadError::malformed(
                            &self.file,
                            line,
                            format!(
                                "<extension char=\"{ch}\">: a 7th character is one letter or digit"
                            ),
                        ));
                    }
                    if let Some(def) = node.seventh.as_mut() {
                        def.push((ch.clone(), text.clone()));
                    }
                    if let Some(c) = node.concept.as_mut() {
                        append_attr(c, "seventh_character", &format!("{ch}={text}"));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// At the end of a code without child codes: emit the 7-character codes the applicable
    /// `sevenChrDef` adds below it.
    fn emit_extensions(&mut self) -> Result<(), LoadError> {
        let Some(def) = self.seventh_def() else {
            return Ok(());
        };
        let Some(node) = self.nodes.last() else {
            return Ok(());
        };
        let (true, false, Some(leaf)) = (node.is_diag, node.has_child, node.concept.as_ref())
        else {
            return Ok(());
        };
        let exclusions: Vec<Exclusion> = self
            .nodes
            .iter()
            .flat_map(|n| n.exclusions.iter().cloned())
            .collect();
        let codes = seventh::extensions(leaf, def, &exclusions);
        let from = leaf.code.clone();
        for c in codes {
            let code = c.code.clone();
            self.sink.concept(c)?;
            self.sink.relation(Relation {
                from: code,
                rel: "is_a".into(),
                to: from.clone(),
            })?;
        }
        Ok(())
    }

    fn name_or_desc(
        &mut self,
        tag: Tag,
        parent_tag: Option<Tag>,
        text: String,
    ) -> Result<(), LoadError> {
        let line = self.line;
        let Some(node) = self.nodes.last_mut() else {
            return Ok(());
        };
        match (tag, parent_tag) {
            (Tag::Name, Some(Tag::Diag)) => {
                if text.is_empty() {
                    return Err(self.err("empty <name> in <diag>"));
                }
                node.concept = Some(Concept {
                    code: text.clone(),
                    active: true,
                    ..Default::default()
                });
                node.name = Some(text);
                node.line = line;
            }
            (Tag::Name, Some(Tag::Chapter)) => node.name = Some(text),
            (Tag::Desc, Some(Tag::Chapter)) => {
                let number = node.name.clone().unwrap_or_default();
                let code = chapter_code(&text)
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("Chapter {number}"));
                let mut c = Concept::new(code, text.clone());
                c.attributes.insert("chapter".into(), number);
                node.concept = Some(c);
                node.desc = Some(text);
            }
            (Tag::Desc, Some(Tag::Section | Tag::Diag)) => {
                if let Some(c) = node.concept.as_mut() {
                    if c.preferred_term.is_empty() {
                        c.preferred_term = text.clone();
                        c.terms
                            .insert(0, Term::new(text.clone(), TermKind::Preferred));
                    }
                }
                node.desc = Some(text);
            }
            _ => {}
        }
        Ok(())
    }
}

fn append_attr(c: &mut Concept, key: &str, value: &str) {
    if value.is_empty() {
        return;
    }
    c.attributes
        .entry(key.to_string())
        .and_modify(|v| {
            v.push_str("; ");
            v.push_str(value);
        })
        .or_insert_with(|| value.to_string());
}

fn attribute(e: &BytesStart<'_>, key: &[u8]) -> Result<String, String> {
    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
    match e.try_get_attribute(key) {
        Ok(Some(a)) => a
            .unescape_value()
            .map(|v| v.trim().to_string())
            .map_err(|err| format!("bad attribute in <{name}>: {err}")),
        Ok(None) => Err(format!(
            "<{name}> has no '{}' attribute",
            String::from_utf8_lossy(key)
        )),
        Err(err) => Err(format!("bad attribute in <{name}>: {err}")),
    }
}

fn load_file(file: &InputFile, done_before: u64, sink: &mut dyn Sink) -> Result<u64, LoadError> {
    let (reader, _count) = input::open(file)?;
    let mut reader = Reader::from_reader(LineCountingBufRead::new(BufReader::new(reader)));
    reader.config_mut().check_end_names = true;
    let mut parser = Parser {
        file: file.name.clone(),
        sink,
        stack: Vec::new(),
        nodes: Vec::new(),
        text: String::new(),
        ext_char: None,
        diags: 0,
        line: 1,
    };
    let mut buf = Vec::with_capacity(4096);
    let mut seen_root = false;
    let mut next_report = input::PROGRESS_EVERY;
    loop {
        buf.clear();
        let event = reader.read_event_into(&mut buf);
        parser.line = reader.get_ref().line();
        match event {
            Err(e) => return Err(parser.err(format!("XML error: {e}"))),
            Ok(Event::Start(e)) => {
                seen_root = true;
                parser.start(&e)?;
            }
            Ok(Event::Empty(e)) => {
                seen_root = true;
                parser.start(&e)?;
                parser.end()?;
            }
            Ok(Event::End(_)) => {
                parser.end()?;
                if parser.diags >= next_report {
                    next_report = parser.diags + input::PROGRESS_EVERY;
                    parser
                        .sink
                        .progress(done_before + reader.get_ref().consumed())?;
                }
            }
            Ok(Event::Text(t)) => {
                if !parser.stack.is_empty() {
                    let s = t
                        .unescape()
                        .map_err(|e| parser.err(format!("bad text: {e}")))?;
                    parser.text.push_str(&s);
                } else if !t.iter().all(u8::is_ascii_whitespace) {
                    return Err(parser.err("text outside the root element"));
                }
            }
            Ok(Event::CData(t)) => {
                let s = t
                    .decode()
                    .map_err(|e| parser.err(format!("bad CDATA: {e}")))?;
                parser.text.push_str(&s);
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
        }
    }
    if !seen_root {
        return Err(parser.err("empty file: no <ICD10CM.tabular> element"));
    }
    if !parser.stack.is_empty() {
        return Err(parser.err("unexpected end of file: the XML is truncated (unclosed elements)"));
    }
    let total = done_before + reader.get_ref().consumed();
    parser.sink.progress(total)?;
    Ok(total)
}

#[cfg(test)]
mod tests;
