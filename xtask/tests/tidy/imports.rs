//! The import graph among one crate's source files, and its circles.
//!
//! A file imports another when it names a path into that file's module: `crate::a::b`,
//! `super::x`, `self::child` or a child module's name (`child::Item`), grouped ones
//! (`use crate::{a, b::{c, d}}`) included. Comments (doc links too), strings and character
//! literals are ignored, and so is `mod child;`, which declares rather than imports. A path to
//! an item of the crate root (a re-export) is no edge: the root only declares and re-exports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The source files of one crate (from its root, following `mod name;`) and their imports.
pub(crate) struct Tree {
    /// The files; index 0 is the crate root.
    pub(crate) files: Vec<PathBuf>,
    /// `edges[i]`: the files file `i` imports.
    pub(crate) edges: Vec<Vec<usize>>,
}

/// Source text without comments, strings and character literals (each becomes a space).
fn clean(text: &str) -> Vec<char> {
    let s: Vec<char> = text.chars().collect();
    let mut out = Vec::with_capacity(s.len());
    let at = |i: usize| s.get(i).copied().unwrap_or('\0');
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c == '/' && at(i + 1) == '/' {
            while i < s.len() && s[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && at(i + 1) == '*' {
            let mut depth = 0usize;
            while i < s.len() {
                if s[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if s[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
            continue;
        }
        let raw_start = c == 'r' && (i == 0 || !ident(s[i - 1]) || s[i - 1] == 'b');
        if raw_start {
            let hashes = s[i + 1..].iter().take_while(|&&h| h == '#').count();
            if at(i + 1 + hashes) == '"' {
                i += hashes + 2;
                while i < s.len()
                    && !(s[i] == '"'
                        && s[i + 1..].iter().take(hashes).all(|&h| h == '#')
                        && i + hashes < s.len())
                {
                    i += 1;
                }
                i += 1 + hashes;
                out.push(' ');
                continue;
            }
        }
        if c == '"' {
            i += 1;
            while i < s.len() && s[i] != '"' {
                i += if s[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(' ');
            continue;
        }
        if c == '\'' && at(i + 1) == '\\' {
            i += 3;
            while i < s.len() && s[i] != '\'' {
                i += 1;
            }
            i += 1;
            out.push(' ');
            continue;
        }
        if c == '\'' && at(i + 2) == '\'' {
            i += 3;
            out.push(' ');
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    PathSep,
    Punct(char),
}

fn tokens(text: &str) -> Vec<Token> {
    let s = clean(text);
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < s.len() && (s[i].is_alphanumeric() || s[i] == '_') {
                i += 1;
            }
            let word: String = s[start..i].iter().collect();
            if word == "r" && s.get(i) == Some(&'#') {
                i += 1; // a raw identifier: the name follows
            } else {
                out.push(Token::Ident(word));
            }
        } else if c == ':' && s.get(i + 1) == Some(&':') {
            out.push(Token::PathSep);
            i += 2;
        } else {
            out.push(Token::Punct(c));
            i += 1;
        }
    }
    out
}

fn ident(tokens: &[Token], i: usize) -> Option<&str> {
    match tokens.get(i) {
        Some(Token::Ident(w)) => Some(w),
        _ => None,
    }
}

/// The paths of a use tree starting at `i` (`a::b`, `a::{b, c::d}`, `a::*`), and the index
/// after it.
fn use_tree(tokens: &[Token], mut i: usize) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    while let Some(word) = ident(tokens, i) {
        prefix.push(word.to_owned());
        i += 1;
        if tokens.get(i) != Some(&Token::PathSep) {
            return (vec![prefix], i);
        }
        i += 1;
    }
    if tokens.get(i) != Some(&Token::Punct('{')) {
        return (vec![prefix], i); // `*` or something else: the prefix is the path
    }
    i += 1;
    let mut paths = Vec::new();
    while i < tokens.len() && tokens[i] != Token::Punct('}') {
        let (inner, next) = use_tree(tokens, i);
        paths.extend(inner.into_iter().map(|p| [prefix.clone(), p].concat()));
        // Skip `as alias`, `*` and anything else up to the next item.
        i = next.max(i + 1);
        let mut depth = 0usize;
        while let Some(t) = tokens.get(i) {
            match t {
                Token::Punct('{') => depth += 1,
                Token::Punct('}') if depth == 0 => break,
                Token::Punct('}') => depth -= 1,
                Token::Punct(',') if depth == 0 => {
                    i += 1;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
    }
    (paths, i + 1)
}

/// What one file declares and names: `mod name;` declarations and paths, each as an absolute
/// module path (inline modules included).
struct Scan {
    declared: Vec<Vec<String>>,
    named: Vec<Vec<String>>,
}

fn scan(text: &str, module: &[String]) -> Scan {
    let tokens = tokens(text);
    // Pass 1: the modules declared here (inline or in files), so their names start paths.
    let mut children: Vec<Vec<String>> = Vec::new();
    let mut declared = Vec::new();
    walk(&tokens, module, |t, i, current| {
        if ident(t, i) == Some("mod")
            && let Some(name) = ident(t, i + 1)
        {
            let path = [current, &[name.to_owned()]].concat();
            if t.get(i + 2) == Some(&Token::Punct(';')) {
                declared.push(path.clone());
            }
            children.push(path);
        }
    });
    // Pass 2: the paths named.
    let mut named = Vec::new();
    walk(&tokens, module, |t, i, current| {
        let Some(first) = ident(t, i) else { return };
        let after_sep = i > 0 && t[i - 1] == Token::PathSep;
        let in_macro = i > 0 && t[i - 1] == Token::Punct('$');
        if after_sep || in_macro || t.get(i + 1) != Some(&Token::PathSep) {
            return;
        }
        let child = [current, &[first.to_owned()]].concat();
        let base: Vec<String> = match first {
            "crate" => Vec::new(),
            "self" | "super" => current.to_vec(),
            _ if children.contains(&child) => current.to_vec(),
            _ => return,
        };
        for path in use_tree(t, i).0 {
            let mut full = base.clone();
            let mut segments = path.into_iter().peekable();
            if first == "crate" || first == "self" {
                segments.next();
            }
            while segments.peek().is_some_and(|s| s == "super") {
                segments.next();
                full.pop();
            }
            full.extend(segments.filter(|s| s != "self"));
            named.push(full);
        }
    });
    Scan { declared, named }
}

/// Calls `f(tokens, i, current module)` for every token, tracking inline `mod name { … }`.
fn walk(tokens: &[Token], module: &[String], mut f: impl FnMut(&[Token], usize, &[String])) {
    let mut current = module.to_vec();
    let mut open: Vec<usize> = Vec::new(); // brace depth at which each inline module closes
    let mut depth = 0usize;
    for i in 0..tokens.len() {
        f(tokens, i, &current);
        match &tokens[i] {
            Token::Punct('{') => {
                depth += 1;
                if i >= 2
                    && ident(tokens, i - 2) == Some("mod")
                    && let Some(name) = ident(tokens, i - 1)
                {
                    current.push(name.to_owned());
                    open.push(depth);
                }
            }
            Token::Punct('}') => {
                if open.last() == Some(&depth) {
                    open.pop();
                    current.pop();
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
    }
}

/// The file of a module declared as `module` by a file whose children live in `dir`.
fn module_file(dir: &Path, name: &str) -> Option<(PathBuf, PathBuf)> {
    let flat = dir.join(format!("{name}.rs"));
    let nested = dir.join(name).join("mod.rs");
    if flat.exists() {
        Some((flat, dir.join(name)))
    } else if nested.exists() {
        Some((nested, dir.join(name)))
    } else {
        None
    }
}

/// The module tree from a crate root (`lib.rs`, `main.rs`), with its import edges.
pub(crate) fn module_tree(root: &Path) -> Tree {
    let dir = root.parent().expect("a root file is in src/").to_path_buf();
    // (file, module path, the directory of its children)
    let mut files: Vec<(PathBuf, Vec<String>, PathBuf)> = vec![(root.to_path_buf(), vec![], dir)];
    let mut scans = Vec::new();
    let mut next = 0;
    while next < files.len() {
        let (file, module, dir) = files[next].clone();
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let found = scan(&text, &module);
        for declared in &found.declared {
            // An inline module's file children live under its name: `a.rs { mod b { mod c; } }`
            // is `a/b/c.rs`.
            let inner = &declared[module.len()..];
            let (name, inline) = inner.split_last().expect("a declared name");
            let sub = inline.iter().fold(dir.clone(), |d, m| d.join(m));
            if let Some((path, children)) = module_file(&sub, name) {
                files.push((path, declared.clone(), children));
            }
        }
        scans.push(found);
        next += 1;
    }
    let by_module: BTreeMap<&[String], usize> = files
        .iter()
        .enumerate()
        .map(|(i, (_, m, _))| (m.as_slice(), i))
        .collect();
    let edges = scans
        .iter()
        .enumerate()
        .map(|(from, scan)| {
            let mut to: Vec<usize> = scan
                .named
                .iter()
                .filter_map(|path| {
                    (1..=path.len())
                        .rev()
                        .find_map(|n| by_module.get(&path[..n]).copied())
                })
                .filter(|&to| to != from && to != 0)
                .collect();
            to.sort_unstable();
            to.dedup();
            to
        })
        .collect();
    Tree {
        files: files.into_iter().map(|(f, _, _)| f).collect(),
        edges,
    }
}

/// The circles of a tree: its strongly connected components of more than one file.
pub(crate) fn circles(tree: &Tree) -> Vec<Vec<PathBuf>> {
    struct Tarjan<'a> {
        edges: &'a [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        stack: Vec<usize>,
        on_stack: Vec<bool>,
        next: usize,
        found: Vec<Vec<usize>>,
    }
    impl Tarjan<'_> {
        fn visit(&mut self, v: usize) {
            self.index[v] = Some(self.next);
            self.low[v] = self.next;
            self.next += 1;
            self.stack.push(v);
            self.on_stack[v] = true;
            for &w in &self.edges[v] {
                match self.index[w] {
                    None => {
                        self.visit(w);
                        self.low[v] = self.low[v].min(self.low[w]);
                    }
                    Some(iw) if self.on_stack[w] => self.low[v] = self.low[v].min(iw),
                    Some(_) => {}
                }
            }
            if Some(self.low[v]) == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    self.found.push(component);
                }
            }
        }
    }
    let n = tree.files.len();
    let mut t = Tarjan {
        edges: &tree.edges,
        index: vec![None; n],
        low: vec![0; n],
        stack: Vec::new(),
        on_stack: vec![false; n],
        next: 0,
        found: Vec::new(),
    };
    for v in 0..n {
        if t.index[v].is_none() {
            t.visit(v);
        }
    }
    t.found
        .into_iter()
        .map(|c| c.into_iter().map(|i| tree.files[i].clone()).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(text: &str, module: &[&str]) -> Vec<String> {
        let module: Vec<String> = module.iter().map(|m| (*m).to_owned()).collect();
        let mut out: Vec<String> = scan(text, &module)
            .named
            .iter()
            .map(|p| p.join("::"))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn paths_grouped_relative_and_through_children() {
        let text = r"
            use crate::{a, b::{c, d::E}, f::*};
            use super::g::H;
            use self::kid::K;
            mod kid;
            fn x() { kid::run(); other::run(); $crate::m::n(); }
            mod tests {
                use super::*;
                use super::super::up::U;
            }
        ";
        assert_eq!(
            named(text, &["p", "q"]),
            [
                "a",
                "b::c",
                "b::d::E",
                "f",
                "p::g::H",
                "p::q",
                "p::q::kid::K",
                "p::q::kid::run",
                "p::up::U",
            ]
        );
        assert_eq!(scan(text, &[]).declared, [vec!["kid".to_owned()]]);
    }

    #[test]
    fn comments_strings_and_doc_links_are_not_imports() {
        let text = r##"
            //! See [`crate::a`].
            /// [`crate::b::B`]
            // use crate::c;
            /* use crate::d; /* nested */ crate::e */
            const S: &str = "crate::f";
            const R: &str = r#"crate::g "quoted" "#;
            const C: char = '"';
            fn l<'a>(x: &'a str) -> crate::h::H { todo!() }
        "##;
        assert_eq!(named(text, &[]), ["h::H"]);
    }
}
