//! File selection for snapshots: duplicity's `--include`/`--exclude` rules, exactly.
//!
//! This module owns the meaning of the filter rules a user gives to `cairn snapshot`
//! (`--include`, `--exclude`, `--include-filelist`, `--exclude-filelist`,
//! `--include-regexp`, `--exclude-regexp`). It reproduces duplicity's `selection.py` and
//! `globmatch.py` (duplicity 3.0), so that a duplicity command line keeps selecting the
//! same files. It is pure: it never touches the file system, reads no files (the caller
//! passes filelist contents), prints nothing and keeps no state between calls.
//!
//! # Semantics
//!
//! * Rules are tried in order; the first rule that includes or excludes a path decides.
//!   A path no rule matches is included.
//! * Globs match whole absolute paths: `*` and `?` never match `/`, `**` matches anything,
//!   `[abc]`, `[a-z]` and `[!abc]` (or `[^abc]`) match one character (a negated class
//!   also matches `/`, as in duplicity). There is no quoting. A glob that matches a
//!   directory also matches everything below it. A glob ending in `/` matches a path
//!   equal to it only if that path is a directory. The glob `/` means `/**`.
//! * `ignorecase:` (any case) in front of a glob makes it case-insensitive; as in
//!   duplicity the rest of the pattern is Unicode case-folded first (`ß` becomes `ss`).
//! * An include glob also "scans" every directory on the way to what it names (and, for
//!   a glob containing `**`, on the way to the `**`). A scanned directory is traversed but
//!   emitted only if something below it is emitted, and that holds even when a later rule
//!   excludes the directory: with `--include=/s/a/b --exclude=/s/a`, `/s/a/b` is backed
//!   up with `/s/a`, while the rest of `/s/a` is not. Only a later include that matches
//!   the directory itself turns its scan into an include.
//! * Regexps are searched anywhere in the path and never scan. They use Rust `regex`
//!   syntax, which agrees with Python `re` on ordinary expressions; lookaround and
//!   backreferences are refused, and `$` matches only at the very end.
//! * Filelists hold one glob per line; surrounding white space is dropped, blank lines
//!   and lines starting with `#` are skipped, a leading `+ ` or `- ` makes the line an
//!   include or an exclude whatever the list is, and one pair of matching quotes (`'` or
//!   `"`) around the pattern is removed. `\n`, `\r\n` and `\r` all end a line.
//! * Paths are raw bytes. As in duplicity (which decodes names with `surrogateescape`),
//!   each byte that is not part of valid UTF-8 counts as one character. Internally such a
//!   byte `b` stands for the private-use character U+10FF00 + `b`, so a pattern spelling
//!   one of U+10FF80..=U+10FFFF would match it too: the one known difference.
//! * Also as in duplicity (Python's `$`), a path whose last character is a newline is
//!   matched as if that newline were not there.
//!
//! # What the caller must do
//!
//! * Emit every snapshot root itself whatever the rules say (duplicity never tests it).
//! * For each entry below a root, call [`Filter::decide`] with its absolute path and
//!   whether `lstat` says it is a directory (a symlink to a directory is not one):
//!   [`Decision::Include`] → emit it and, for a directory, descend;
//!   [`Decision::Exclude`] → skip it and do not descend;
//!   [`Decision::Scan`] (only ever returned for directories) → descend, and emit the
//!   directory just before the first entry emitted below it, or never.
//! * Call [`Filter::check_roots`] and [`Filter::check_last_rule_excludes`] before a
//!   snapshot to get duplicity's two command-line errors ("cannot match any file in the
//!   base directory", "last rule only includes").
//! * Rules that need the file system (`--exclude-if-present`, `--exclude-device-files`,
//!   `--exclude-other-filesystems`, `--exclude-older-than`) belong to the walker. In
//!   duplicity the first two are tried before all rules given here.

use std::borrow::Cow;
use std::fmt::Write as _;

use regex::bytes::Regex;

/// What to do with one path during the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Emit the path; descend into it if it is a directory.
    Include,
    /// Skip the path and everything below it.
    Exclude,
    /// A directory to traverse, emitted only if something below it is emitted.
    Scan,
}

/// One selection rule, in command-line order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterRule {
    /// `--include=GLOB`
    Include(String),
    /// `--exclude=GLOB`
    Exclude(String),
    /// `--include-filelist FILE`, given as the file's contents.
    IncludeFilelist(String),
    /// `--exclude-filelist FILE`, given as the file's contents.
    ExcludeFilelist(String),
    /// `--include-regexp=REGEX`
    IncludeRegexp(String),
    /// `--exclude-regexp=REGEX`
    ExcludeRegexp(String),
}

/// A rule that cannot be used; every variant names the offending pattern.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// An empty pattern (duplicity refuses empty options).
    #[error("empty pattern in {option}")]
    EmptyPattern {
        /// The option, e.g. `--exclude`.
        option: &'static str,
    },
    /// A glob with `//` before its first `**` (duplicity's "consecutive '/'s").
    #[error("glob {pattern:?}: consecutive '/'s")]
    ConsecutiveSlashes {
        /// The glob as given.
        pattern: String,
    },
    /// A `[...]` class with a range that runs backwards, such as `[z-a]`.
    #[error("glob {pattern:?}: bad character range {lo}-{hi}")]
    BadCharacterRange {
        /// The glob as given.
        pattern: String,
        /// Start of the range.
        lo: char,
        /// End of the range.
        hi: char,
    },
    /// A glob that can match no absolute path, such as `tmp` or `*.log`.
    #[error(
        "glob {pattern:?} cannot match any file: globs must begin with '/' \
         or with a wildcard that matches it, such as '**'"
    )]
    NotAbsolute {
        /// The glob as given.
        pattern: String,
    },
    /// A glob that can match nothing in the backup roots (duplicity's `FilePrefixError`).
    #[error(
        "glob {pattern:?} cannot match any file in {roots}: useful globs begin with \
         the base directory or with a wildcard that matches it, such as '**'"
    )]
    OutsideRoots {
        /// The glob as given.
        pattern: String,
        /// The roots, comma-separated.
        roots: String,
    },
    /// The last rule only includes, which is redundant because everything not excluded
    /// is included (duplicity refuses this).
    #[error(
        "last rule {pattern:?} only includes files; everything not excluded is \
         included anyway, so it has no effect"
    )]
    RedundantInclude {
        /// The pattern of the last rule.
        pattern: String,
    },
    /// A regular expression (or a glob translated to one) that does not compile.
    #[error("pattern {pattern:?}: {source}")]
    Regex {
        /// The pattern as given.
        pattern: String,
        /// What the regex compiler said.
        source: regex::Error,
    },
    /// An error in one line of a filelist.
    #[error("{option} line {line}: {source}")]
    Filelist {
        /// `--include-filelist` or `--exclude-filelist`.
        option: &'static str,
        /// 1-based line number.
        line: usize,
        /// The error in that line.
        source: Box<FilterError>,
    },
}

/// A compiled, ordered list of rules.
#[derive(Debug, Clone)]
pub struct Filter {
    selectors: Vec<Selector>,
}

#[derive(Debug, Clone)]
struct Selector {
    include: bool,
    /// The pattern as the user wrote it (after filelist line clean-up), for errors.
    pattern: String,
    matcher: Matcher,
}

#[derive(Debug, Clone)]
enum Matcher {
    Glob(Glob),
    /// Searched anywhere in the path.
    Regex(Regex),
}

/// One glob, as duplicity's `select_fn_from_glob` sees it.
#[derive(Debug, Clone)]
struct Glob {
    /// The glob's text up to its first wildcard, or empty for an `ignorecase:` glob: a
    /// path the regexes below can match starts with it, or (scan only) is a prefix of
    /// it, give or take a final newline. Checking this first keeps `decide` cheap.
    literal_prefix: Box<[u8]>,
    /// The path matches the glob or lies below something that does.
    matches: Regex,
    /// For a glob ending in `/`: the path matches the glob itself, so it must be a
    /// directory to count.
    exact: Option<Regex>,
    /// The path is a directory on the way to what the glob names.
    scan: Regex,
}

/// What one rule says about one path (duplicity's 0 / 1 / 2 / None).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Include,
    Exclude,
    Scan,
}

/// Python's `$` outside multi-line mode: the end, or just before a final newline.
const END: &str = r"\n?\z";

const IGNORECASE_PREFIX: &str = "ignorecase:";

impl Filter {
    /// Compiles `rules`.
    ///
    /// # Errors
    ///
    /// A pattern duplicity would refuse whatever the backup root is: empty, `//` in a
    /// glob, a backwards range, a glob that cannot match an absolute path, a regexp
    /// that does not compile. [`Filter::check_roots`] adds the root-dependent check.
    pub fn new(rules: &[FilterRule]) -> Result<Filter, FilterError> {
        let mut selectors = Vec::new();
        for rule in rules {
            match rule {
                FilterRule::Include(pattern) => {
                    selectors.push(Selector::glob(pattern, true, "--include")?);
                }
                FilterRule::Exclude(pattern) => {
                    selectors.push(Selector::glob(pattern, false, "--exclude")?);
                }
                FilterRule::IncludeFilelist(contents) => {
                    parse_filelist(contents, true, &mut selectors)?;
                }
                FilterRule::ExcludeFilelist(contents) => {
                    parse_filelist(contents, false, &mut selectors)?;
                }
                FilterRule::IncludeRegexp(pattern) => {
                    selectors.push(Selector::regex(pattern, true, "--include-regexp")?);
                }
                FilterRule::ExcludeRegexp(pattern) => {
                    selectors.push(Selector::regex(pattern, false, "--exclude-regexp")?);
                }
            }
        }
        Ok(Filter { selectors })
    }

    /// True if there are no rules (filelists with only comments count as none), so
    /// everything is included.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.selectors.is_empty()
    }

    /// Decides about one path below a snapshot root.
    ///
    /// `path` is absolute, raw bytes (names need not be UTF-8); `is_dir` tells whether
    /// it is a directory (by `lstat`). [`Decision::Scan`] is only returned for
    /// directories: a file that duplicity would merely scan is never emitted, so it is
    /// reported as [`Decision::Exclude`].
    #[must_use]
    pub fn decide(&self, path: &[u8], is_dir: bool) -> Decision {
        if self.selectors.is_empty() {
            return Decision::Include;
        }
        let text = match_text(path);
        let mut scan_pending = false;
        let mut result = None;
        for selector in &self.selectors {
            match selector.test(&text, is_dir) {
                Some(Verdict::Scan) => scan_pending = true,
                Some(verdict) => {
                    result = Some(verdict);
                    break;
                }
                None => {}
            }
        }
        match result {
            Some(Verdict::Include) => Decision::Include,
            _ if scan_pending => {
                if is_dir {
                    Decision::Scan
                } else {
                    Decision::Exclude
                }
            }
            Some(Verdict::Exclude) => Decision::Exclude,
            _ => Decision::Include,
        }
    }

    /// Duplicity's check that every glob can select something in the backup: a glob
    /// must match one of `roots` or something below it, or lead to something below it
    /// (the roots are taken to be directories). Duplicity has a single root; with
    /// several, one root that fits is enough.
    ///
    /// # Errors
    ///
    /// [`FilterError::OutsideRoots`] for the first glob that fits no root.
    pub fn check_roots(&self, roots: &[&[u8]]) -> Result<(), FilterError> {
        let texts: Vec<Cow<'_, [u8]>> = roots.iter().map(|root| match_text(root)).collect();
        for selector in &self.selectors {
            let Matcher::Glob(glob) = &selector.matcher else {
                continue;
            };
            let fits = texts
                .iter()
                .any(|root| glob.matches.is_match(root) || glob.scan.is_match(root));
            if !fits {
                let roots = roots
                    .iter()
                    .map(|root| String::from_utf8_lossy(root))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(FilterError::OutsideRoots {
                    pattern: selector.pattern.clone(),
                    roots,
                });
            }
        }
        Ok(())
    }

    /// Duplicity's check that the last rule can exclude something: a trailing include
    /// has no effect because everything not excluded is included anyway.
    ///
    /// # Errors
    ///
    /// [`FilterError::RedundantInclude`] if the last rule (after expanding filelists)
    /// is an include.
    pub fn check_last_rule_excludes(&self) -> Result<(), FilterError> {
        match self.selectors.last() {
            Some(last) if last.include => Err(FilterError::RedundantInclude {
                pattern: last.pattern.clone(),
            }),
            _ => Ok(()),
        }
    }
}

impl Selector {
    fn glob(pattern: &str, include: bool, option: &'static str) -> Result<Selector, FilterError> {
        if pattern.is_empty() {
            return Err(FilterError::EmptyPattern { option });
        }
        Ok(Selector {
            include,
            pattern: pattern.to_owned(),
            matcher: Matcher::Glob(Glob::new(pattern)?),
        })
    }

    fn regex(pattern: &str, include: bool, option: &'static str) -> Result<Selector, FilterError> {
        if pattern.is_empty() {
            return Err(FilterError::EmptyPattern { option });
        }
        let regex = Regex::new(pattern).map_err(|source| FilterError::Regex {
            pattern: pattern.to_owned(),
            source,
        })?;
        Ok(Selector {
            include,
            pattern: pattern.to_owned(),
            matcher: Matcher::Regex(regex),
        })
    }

    fn test(&self, text: &[u8], is_dir: bool) -> Option<Verdict> {
        let hit = if self.include {
            Verdict::Include
        } else {
            Verdict::Exclude
        };
        match &self.matcher {
            Matcher::Regex(regex) => regex.is_match(text).then_some(hit),
            Matcher::Glob(glob) => {
                let below = text.starts_with(&glob.literal_prefix);
                let above = self.include && {
                    let text = text.strip_suffix(b"\n").unwrap_or(text);
                    glob.literal_prefix.starts_with(text)
                };
                if !below && !above {
                    return None;
                }
                if glob.matches.is_match(text) {
                    match &glob.exact {
                        // The path is the glob itself, not something below it: a glob
                        // ending in '/' names a directory, so a file does not match,
                        // and (as in duplicity) is not scanned either.
                        Some(exact) if !is_dir && exact.is_match(text) => None,
                        _ => Some(hit),
                    }
                } else if self.include && glob.scan.is_match(text) {
                    Some(Verdict::Scan)
                } else {
                    None
                }
            }
        }
    }
}

impl Glob {
    fn new(pattern: &str) -> Result<Glob, FilterError> {
        let (glob, ignore_case) = match pattern.get(..IGNORECASE_PREFIX.len()) {
            Some(head) if head.eq_ignore_ascii_case(IGNORECASE_PREFIX) => {
                (full_case_fold(&pattern[IGNORECASE_PREFIX.len()..]), true)
            }
            _ => (pattern.to_owned(), false),
        };
        let (glob, ends_with_slash) = if glob == "/" {
            ("/**", false)
        } else if let Some(stripped) = glob.strip_suffix('/') {
            (stripped, true)
        } else {
            (glob.as_str(), false)
        };
        if glob.is_empty() {
            // `ignorecase:` alone: duplicity crashes; we refuse it.
            return Err(FilterError::NotAbsolute {
                pattern: pattern.to_owned(),
            });
        }
        let flags = if ignore_case { "(?si)" } else { "(?s)" };
        let body = glob_to_regex(glob, pattern)?;
        let matches = compile(&format!("{flags}^{body}(?:{END}|/)"), pattern)?;
        let exact = if ends_with_slash {
            Some(compile(&format!("{flags}^{body}{END}"), pattern)?)
        } else {
            None
        };

        // Directories to scan: those matching a leading run of the glob's '/'-separated
        // parts, looking no further than its first `**`.
        let head = match glob.find("**") {
            Some(at) => &glob[..at + 2],
            None => glob,
        };
        let parts: Vec<&str> = head.split('/').collect();
        if parts.len() > 2 && parts[1..parts.len() - 1].iter().any(|part| part.is_empty()) {
            return Err(FilterError::ConsecutiveSlashes {
                pattern: pattern.to_owned(),
            });
        }
        let mut alternatives = Vec::with_capacity(parts.len());
        for end in 1..=parts.len() {
            let prefix = parts[..end].join("/");
            let prefix = if prefix.is_empty() { "/" } else { &prefix };
            alternatives.push(glob_to_regex(prefix, pattern)?);
        }
        let scan = compile(
            &format!("{flags}^(?:{}){END}", alternatives.join("|")),
            pattern,
        )?;

        if !can_match_absolute(glob) {
            return Err(FilterError::NotAbsolute {
                pattern: pattern.to_owned(),
            });
        }
        let literal_prefix = if ignore_case {
            ""
        } else {
            glob.find(['*', '?', '[']).map_or(glob, |at| &glob[..at])
        };
        Ok(Glob {
            literal_prefix: literal_prefix.as_bytes().into(),
            matches,
            exact,
            scan,
        })
    }
}

fn compile(regex: &str, pattern: &str) -> Result<Regex, FilterError> {
    Regex::new(regex).map_err(|source| FilterError::Regex {
        pattern: pattern.to_owned(),
        source,
    })
}

/// Appends the rules of one filelist, line by line, as duplicity reads them.
fn parse_filelist(
    contents: &str,
    include_default: bool,
    selectors: &mut Vec<Selector>,
) -> Result<(), FilterError> {
    let option = if include_default {
        "--include-filelist"
    } else {
        "--exclude-filelist"
    };
    for (index, line) in universal_lines(contents).enumerate() {
        let Some((pattern, include)) = clean_filelist_line(line, include_default) else {
            continue;
        };
        let selector =
            Selector::glob(pattern, include, option).map_err(|source| FilterError::Filelist {
                option,
                line: index + 1,
                source: Box::new(source),
            })?;
        selectors.push(selector);
    }
    Ok(())
}

/// Lines as Python's text mode yields them: `\n`, `\r\n` and `\r` all end a line.
fn universal_lines(contents: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(contents);
    std::iter::from_fn(move || {
        let text = rest?;
        match text.find(['\n', '\r']) {
            Some(at) => {
                let skip = if text[at..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&text[at + skip..]);
                Some(&text[..at])
            }
            None => {
                rest = None;
                Some(text)
            }
        }
    })
}

/// One filelist line → (pattern, include), or `None` for blanks and comments.
fn clean_filelist_line(line: &str, include_default: bool) -> Option<(&str, bool)> {
    let mut line = line.trim_matches(is_python_space);
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut include = include_default;
    if let Some(rest) = line.strip_prefix("+ ") {
        include = true;
        line = rest;
    } else if let Some(rest) = line.strip_prefix("- ") {
        include = false;
        line = rest;
    }
    for quote in ['\'', '"'] {
        if line.starts_with(quote) && line.ends_with(quote) {
            // A lone quote leaves nothing, as Python's `line[1:-1]` does.
            line = line.get(1..line.len() - 1).unwrap_or("");
            break;
        }
    }
    if line.is_empty() {
        None
    } else {
        Some((line, include))
    }
}

/// Python's `str.isspace`: Rust's white space plus the four information separators.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The text rules are matched against: the path itself if it is UTF-8, otherwise the
/// path with each undecodable byte `b` replaced by U+10FF00 + `b` (one character per
/// byte, as Python's `surrogateescape` gives). A trailing '/' (never passed by a walker)
/// is dropped.
fn match_text(path: &[u8]) -> Cow<'_, [u8]> {
    let mut path = path;
    while path.len() > 1 && path.ends_with(b"/") {
        path = &path[..path.len() - 1];
    }
    if std::str::from_utf8(path).is_ok() {
        return Cow::Borrowed(path);
    }
    let mut text = String::with_capacity(path.len() * 2);
    for chunk in path.utf8_chunks() {
        text.push_str(chunk.valid());
        for &byte in chunk.invalid() {
            text.push(char::from_u32(0x10_FF00 + u32::from(byte)).unwrap_or('\u{FFFD}'));
        }
    }
    Cow::Owned(text.into_bytes())
}

/// Duplicity's `glob_to_regex`: the regex for `glob` (which has no anchors).
fn glob_to_regex(glob: &str, pattern: &str) -> Result<String, FilterError> {
    let chars: Vec<char> = glob.chars().collect();
    let mut regex = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                regex.push_str(".*");
                i += 1;
            }
            '*' => regex.push_str("[^/]*"),
            '?' => regex.push_str("[^/]"),
            '[' => match class_end(&chars, i) {
                Some(end) => {
                    push_class(&mut regex, &chars[i..end], pattern)?;
                    i = end + 1;
                }
                None => regex.push_str(r"\["),
            },
            _ => push_literal(&mut regex, c),
        }
    }
    Ok(regex)
}

/// Given `start` just after a `[`, the index of the `]` closing the class, or `None`
/// if there is none (then the `[` is literal). A `]` right after the `[` (or after
/// `[!` / `[^`) belongs to the class.
fn class_end(chars: &[char], start: usize) -> Option<usize> {
    let mut j = start;
    if matches!(chars.get(j), Some('!' | '^')) {
        j += 1;
    }
    if chars.get(j) == Some(&']') {
        j += 1;
    }
    (j..chars.len()).find(|&k| chars[k] == ']')
}

/// The parsed contents of a `[...]` class: negation and inclusive ranges.
fn parse_class(inner: &[char], pattern: &str) -> Result<(bool, Vec<(char, char)>), FilterError> {
    let (negated, inner) = match inner.split_first() {
        Some((&('!' | '^'), rest)) => (true, rest),
        _ => (false, inner),
    };
    // Python's `re` reads the class; every character is literal (duplicity doubles
    // backslashes), `a-z` is a range and a '-' first or last is literal.
    let mut ranges = Vec::new();
    let mut k = 0;
    while k < inner.len() {
        let lo = inner[k];
        if inner.get(k + 1) == Some(&'-') {
            match inner.get(k + 2) {
                Some(&hi) => {
                    if hi < lo {
                        return Err(FilterError::BadCharacterRange {
                            pattern: pattern.to_owned(),
                            lo,
                            hi,
                        });
                    }
                    ranges.push((lo, hi));
                    k += 3;
                }
                None => {
                    ranges.push((lo, lo));
                    ranges.push(('-', '-'));
                    k += 2;
                }
            }
        } else {
            ranges.push((lo, lo));
            k += 1;
        }
    }
    Ok((negated, ranges))
}

fn push_class(regex: &mut String, inner: &[char], pattern: &str) -> Result<(), FilterError> {
    let (negated, ranges) = parse_class(inner, pattern)?;
    regex.push('[');
    if negated {
        regex.push('^');
    }
    for (lo, hi) in ranges {
        // Writing to a String cannot fail.
        let _ = write!(regex, r"\x{{{:X}}}", u32::from(lo));
        if hi != lo {
            let _ = write!(regex, r"-\x{{{:X}}}", u32::from(hi));
        }
    }
    regex.push(']');
    Ok(())
}

fn push_literal(regex: &mut String, c: char) {
    let mut buf = [0; 4];
    regex.push_str(&regex::escape(c.encode_utf8(&mut buf)));
}

/// Whether `glob` can match some string that begins with '/' (every absolute path
/// does). Globs that cannot are refused by duplicity for every backup root.
fn can_match_absolute(glob: &str) -> bool {
    let chars: Vec<char> = glob.chars().collect();
    let mut i = 0;
    loop {
        match chars.get(i) {
            // Only stars so far: they match nothing, then `/` matches the root.
            None => return true,
            Some('*') if chars.get(i + 1) == Some(&'*') => return true,
            Some('*') => i += 1,
            Some('/') => return true,
            Some('[') => {
                let Some(end) = class_end(&chars, i + 1) else {
                    return false;
                };
                let Ok((negated, ranges)) = parse_class(&chars[i + 1..end], glob) else {
                    return false;
                };
                let has_slash = ranges.iter().any(|&(lo, hi)| lo <= '/' && '/' <= hi);
                return has_slash != negated;
            }
            Some(_) => return false,
        }
    }
}

/// Python's `str.casefold`, as far as it matters under case-insensitive matching: the
/// characters whose full case folding is several characters are expanded (`ß` → `ss`);
/// all others fold to a case variant of themselves, which `(?i)` already matches.
fn full_case_fold(text: &str) -> String {
    let mut folded = String::with_capacity(text.len());
    for c in text.chars() {
        match FULL_CASE_FOLDING.binary_search_by_key(&c, |&(from, _)| from) {
            Ok(index) => folded.push_str(FULL_CASE_FOLDING[index].1),
            Err(_) => folded.push(c),
        }
    }
    folded
}

/// Unicode's full case foldings (status F in CaseFolding.txt), sorted.
#[rustfmt::skip]
const FULL_CASE_FOLDING: &[(char, &str)] = &[
    ('\u{DF}', "\u{73}\u{73}"), ('\u{130}', "\u{69}\u{307}"), ('\u{149}', "\u{2BC}\u{6E}"),
    ('\u{1F0}', "\u{6A}\u{30C}"), ('\u{390}', "\u{3B9}\u{308}\u{301}"), ('\u{3B0}', "\u{3C5}\u{308}\u{301}"),
    ('\u{587}', "\u{565}\u{582}"), ('\u{1E96}', "\u{68}\u{331}"), ('\u{1E97}', "\u{74}\u{308}"),
    ('\u{1E98}', "\u{77}\u{30A}"), ('\u{1E99}', "\u{79}\u{30A}"), ('\u{1E9A}', "\u{61}\u{2BE}"),
    ('\u{1E9E}', "\u{73}\u{73}"), ('\u{1F50}', "\u{3C5}\u{313}"), ('\u{1F52}', "\u{3C5}\u{313}\u{300}"),
    ('\u{1F54}', "\u{3C5}\u{313}\u{301}"), ('\u{1F56}', "\u{3C5}\u{313}\u{342}"), ('\u{1F80}', "\u{1F00}\u{3B9}"),
    ('\u{1F81}', "\u{1F01}\u{3B9}"), ('\u{1F82}', "\u{1F02}\u{3B9}"), ('\u{1F83}', "\u{1F03}\u{3B9}"),
    ('\u{1F84}', "\u{1F04}\u{3B9}"), ('\u{1F85}', "\u{1F05}\u{3B9}"), ('\u{1F86}', "\u{1F06}\u{3B9}"),
    ('\u{1F87}', "\u{1F07}\u{3B9}"), ('\u{1F88}', "\u{1F00}\u{3B9}"), ('\u{1F89}', "\u{1F01}\u{3B9}"),
    ('\u{1F8A}', "\u{1F02}\u{3B9}"), ('\u{1F8B}', "\u{1F03}\u{3B9}"), ('\u{1F8C}', "\u{1F04}\u{3B9}"),
    ('\u{1F8D}', "\u{1F05}\u{3B9}"), ('\u{1F8E}', "\u{1F06}\u{3B9}"), ('\u{1F8F}', "\u{1F07}\u{3B9}"),
    ('\u{1F90}', "\u{1F20}\u{3B9}"), ('\u{1F91}', "\u{1F21}\u{3B9}"), ('\u{1F92}', "\u{1F22}\u{3B9}"),
    ('\u{1F93}', "\u{1F23}\u{3B9}"), ('\u{1F94}', "\u{1F24}\u{3B9}"), ('\u{1F95}', "\u{1F25}\u{3B9}"),
    ('\u{1F96}', "\u{1F26}\u{3B9}"), ('\u{1F97}', "\u{1F27}\u{3B9}"), ('\u{1F98}', "\u{1F20}\u{3B9}"),
    ('\u{1F99}', "\u{1F21}\u{3B9}"), ('\u{1F9A}', "\u{1F22}\u{3B9}"), ('\u{1F9B}', "\u{1F23}\u{3B9}"),
    ('\u{1F9C}', "\u{1F24}\u{3B9}"), ('\u{1F9D}', "\u{1F25}\u{3B9}"), ('\u{1F9E}', "\u{1F26}\u{3B9}"),
    ('\u{1F9F}', "\u{1F27}\u{3B9}"), ('\u{1FA0}', "\u{1F60}\u{3B9}"), ('\u{1FA1}', "\u{1F61}\u{3B9}"),
    ('\u{1FA2}', "\u{1F62}\u{3B9}"), ('\u{1FA3}', "\u{1F63}\u{3B9}"), ('\u{1FA4}', "\u{1F64}\u{3B9}"),
    ('\u{1FA5}', "\u{1F65}\u{3B9}"), ('\u{1FA6}', "\u{1F66}\u{3B9}"), ('\u{1FA7}', "\u{1F67}\u{3B9}"),
    ('\u{1FA8}', "\u{1F60}\u{3B9}"), ('\u{1FA9}', "\u{1F61}\u{3B9}"), ('\u{1FAA}', "\u{1F62}\u{3B9}"),
    ('\u{1FAB}', "\u{1F63}\u{3B9}"), ('\u{1FAC}', "\u{1F64}\u{3B9}"), ('\u{1FAD}', "\u{1F65}\u{3B9}"),
    ('\u{1FAE}', "\u{1F66}\u{3B9}"), ('\u{1FAF}', "\u{1F67}\u{3B9}"), ('\u{1FB2}', "\u{1F70}\u{3B9}"),
    ('\u{1FB3}', "\u{3B1}\u{3B9}"), ('\u{1FB4}', "\u{3AC}\u{3B9}"), ('\u{1FB6}', "\u{3B1}\u{342}"),
    ('\u{1FB7}', "\u{3B1}\u{342}\u{3B9}"), ('\u{1FBC}', "\u{3B1}\u{3B9}"), ('\u{1FC2}', "\u{1F74}\u{3B9}"),
    ('\u{1FC3}', "\u{3B7}\u{3B9}"), ('\u{1FC4}', "\u{3AE}\u{3B9}"), ('\u{1FC6}', "\u{3B7}\u{342}"),
    ('\u{1FC7}', "\u{3B7}\u{342}\u{3B9}"), ('\u{1FCC}', "\u{3B7}\u{3B9}"), ('\u{1FD2}', "\u{3B9}\u{308}\u{300}"),
    ('\u{1FD3}', "\u{3B9}\u{308}\u{301}"), ('\u{1FD6}', "\u{3B9}\u{342}"), ('\u{1FD7}', "\u{3B9}\u{308}\u{342}"),
    ('\u{1FE2}', "\u{3C5}\u{308}\u{300}"), ('\u{1FE3}', "\u{3C5}\u{308}\u{301}"), ('\u{1FE4}', "\u{3C1}\u{313}"),
    ('\u{1FE6}', "\u{3C5}\u{342}"), ('\u{1FE7}', "\u{3C5}\u{308}\u{342}"), ('\u{1FF2}', "\u{1F7C}\u{3B9}"),
    ('\u{1FF3}', "\u{3C9}\u{3B9}"), ('\u{1FF4}', "\u{3CE}\u{3B9}"), ('\u{1FF6}', "\u{3C9}\u{342}"),
    ('\u{1FF7}', "\u{3C9}\u{342}\u{3B9}"), ('\u{1FFC}', "\u{3C9}\u{3B9}"), ('\u{FB00}', "\u{66}\u{66}"),
    ('\u{FB01}', "\u{66}\u{69}"), ('\u{FB02}', "\u{66}\u{6C}"), ('\u{FB03}', "\u{66}\u{66}\u{69}"),
    ('\u{FB04}', "\u{66}\u{66}\u{6C}"), ('\u{FB05}', "\u{73}\u{74}"), ('\u{FB06}', "\u{73}\u{74}"),
    ('\u{FB13}', "\u{574}\u{576}"), ('\u{FB14}', "\u{574}\u{565}"), ('\u{FB15}', "\u{574}\u{56B}"),
    ('\u{FB16}', "\u{57E}\u{576}"), ('\u{FB17}', "\u{574}\u{56D}"),
];

#[cfg(test)]
mod tests {
    use super::*;

    use Decision::{Exclude as E, Include as I, Scan as S};

    const DIR: bool = true;
    const FILE: bool = false;

    fn inc(glob: &str) -> FilterRule {
        FilterRule::Include(glob.to_owned())
    }

    fn exc(glob: &str) -> FilterRule {
        FilterRule::Exclude(glob.to_owned())
    }

    /// Checks `(path, is_dir, expected)` rows against one rule list.
    fn check(rules: &[FilterRule], rows: &[(&[u8], bool, Decision)]) {
        let filter = Filter::new(rules).unwrap();
        for &(path, is_dir, expected) in rows {
            assert_eq!(
                filter.decide(path, is_dir),
                expected,
                "path {:?} (dir: {is_dir}) with rules {rules:?}",
                String::from_utf8_lossy(path),
            );
        }
    }

    /// Rows `(glob, path, is_dir, excluded)` for a lone `--exclude=glob`.
    fn check_exclude_globs(rows: &[(&str, &[u8], bool, bool)]) {
        for &(glob, path, is_dir, excluded) in rows {
            let expected = if excluded { E } else { I };
            check(&[exc(glob)], &[(path, is_dir, expected)]);
        }
    }

    #[test]
    fn no_rules_include_everything() {
        let filter = Filter::new(&[]).unwrap();
        assert!(filter.is_empty());
        assert_eq!(filter.decide(b"/any/thing", FILE), I);
        let comments_only = Filter::new(&[FilterRule::ExcludeFilelist("# x\n\n".into())]).unwrap();
        assert!(comments_only.is_empty());
        assert!(!Filter::new(&[exc("/x")]).unwrap().is_empty());
    }

    #[test]
    fn glob_syntax() {
        check_exclude_globs(&[
            // A plain path matches itself and everything below it, nothing else.
            ("/a/b", b"/a/b", FILE, true),
            ("/a/b", b"/a/b/c/d", FILE, true),
            ("/a/b", b"/a/bc", FILE, false),
            ("/a/b", b"/a", DIR, false),
            // `*` stays within one name.
            ("/a/*/c", b"/a/b/c", FILE, true),
            ("/a/*/c", b"/a/b/x/c", FILE, false),
            ("/a/*/c", b"/a//c", FILE, true),
            ("/a/*.log", b"/a/x.log", FILE, true),
            ("/a/*.log", b"/a/b/x.log", FILE, false),
            // `*` alone matches the empty name before the first '/': every path.
            ("*", b"/b/c", DIR, true),
            // `**` crosses '/'; between slashes it still needs both slashes.
            ("/a/**/c", b"/a/b/x/c", FILE, true),
            ("/a/**/c", b"/a/c", FILE, false),
            ("/a/**", b"/a/b", FILE, true),
            ("/a/**", b"/a", DIR, false),
            ("**/c", b"/x/y/c", FILE, true),
            ("**/c", b"/x/yc", FILE, false),
            ("**.py", b"/a/b/x.py", FILE, true),
            ("/a**", b"/ab/c", FILE, true),
            // `?` is one character other than '/'.
            ("/a?", b"/ab", FILE, true),
            ("/a?", b"/a", FILE, false),
            ("/a?", b"/abc", FILE, false),
            ("/a/?", b"/a/\xc3\xa9", FILE, true),
            // Classes, negated classes, ranges; a ']' first is literal.
            ("/[ab]x", b"/bx", FILE, true),
            ("/[ab]x", b"/cx", FILE, false),
            ("/[!ab]x", b"/cx", FILE, true),
            ("/[^ab]x", b"/ax", FILE, false),
            ("/[a-c]x", b"/bx", FILE, true),
            ("/[a-c]x", b"/dx", FILE, false),
            ("/[]a]x", b"/]x", FILE, true),
            ("/[!]a]x", b"/]x", FILE, false),
            ("/[a-]x", b"/-x", FILE, true),
            // A negated class matches '/' too (duplicity's translation is `[^...]`).
            ("/x[!a]y", b"/x/y", FILE, true),
            // Everything else is literal: regex characters, backslash, a lone '['.
            ("/a.b", b"/axb", FILE, false),
            ("/a.b", b"/a.b", FILE, true),
            ("/a+(b)", b"/a+(b)", FILE, true),
            ("/a\\*", b"/a\\x", FILE, true),
            ("/a\\*", b"/a*", FILE, false),
            ("/a[b", b"/a[b", FILE, true),
            // The glob "/" means everything.
            ("/", b"/x", FILE, true),
        ]);
    }

    #[test]
    fn trailing_slash_matches_directories_only() {
        check_exclude_globs(&[
            ("/a/", b"/a", DIR, true),
            ("/a/", b"/a", FILE, false),
            ("/a/", b"/a/x", FILE, true),
            ("/a/", b"/ab", DIR, false),
            ("**/", b"/x", DIR, true),
            ("**/", b"/x", FILE, false),
        ]);
        // An include glob ending in '/' does not scan a file of that name either.
        check(
            &[inc("/a/b/"), exc("**")],
            &[
                (b"/a/b", DIR, I),
                (b"/a/b", FILE, E),
                (b"/a/b/c", FILE, I),
                (b"/a", DIR, S),
            ],
        );
    }

    #[test]
    fn raw_byte_paths() {
        // Each byte that is not valid UTF-8 is one character, as under Python's
        // surrogateescape; valid multi-byte characters are one character as well.
        check_exclude_globs(&[
            ("/a/*", b"/a/\xff\xfe", FILE, true),
            ("/a/*/c", b"/a/\xffx/c", FILE, true),
            ("/a/?", b"/a/\xff", FILE, true),
            ("/a/?", b"/a/\xc3", FILE, true),
            ("/a/?", b"/a/\xc3\xa9\xff", FILE, false),
            ("/a/??", b"/a/\xff\xfe", FILE, true),
            ("/a/??", b"/a/\xc3\xa9", FILE, false),
            ("/a/[!x]", b"/a/\x80", FILE, true),
            ("/a/\u{e9}", b"/a/\xe9", FILE, false),
        ]);
        check(
            &[FilterRule::ExcludeRegexp("^/a/.$".into())],
            &[(b"/a/\xff", FILE, E), (b"/a/\xff\xff", FILE, I)],
        );
    }

    #[test]
    fn final_newline_is_ignored_like_python_dollar() {
        check_exclude_globs(&[
            ("/a", b"/a\n", FILE, true),
            ("/a", b"/a\n/b", FILE, false),
            ("/a", b"/a\nb", FILE, false),
        ]);
        check(
            &[inc("/a/b"), exc("**")],
            &[(b"/a\n", DIR, S), (b"/a/b\n", FILE, I), (b"/a\n/b", DIR, E)],
        );
    }

    #[test]
    fn ignorecase_prefix() {
        check_exclude_globs(&[
            ("ignorecase:/Home/*.JPG", b"/home/x.jpg", FILE, true),
            ("ignorecase:/Home/*.JPG", b"/HOME/X.Jpg", FILE, true),
            ("IgnoreCase:/a", b"/A", FILE, true),
            ("/Home/*.JPG", b"/home/x.jpg", FILE, false),
            ("ignorecase:/[a-c]", b"/B", FILE, true),
            (
                "ignorecase:/\u{c9}t\u{c9}",
                b"/\xc3\xa9t\xc3\xa9",
                FILE,
                true,
            ),
            // Duplicity case-folds the pattern first: "ß" becomes "ss", which then no
            // longer matches an "ß" in the path.
            ("ignorecase:/stra\u{df}e", b"/STRASSE", FILE, true),
            ("ignorecase:/stra\u{df}e", b"/stra\xc3\x9fe", FILE, false),
            // Only a prefix counts.
            ("/x/ignorecase:/A", b"/x/ignorecase:/a", FILE, false),
        ]);
    }

    #[test]
    fn regexps_search_the_whole_path_and_never_scan() {
        let regexp = |r: &str| FilterRule::ExcludeRegexp(r.to_owned());
        check(
            &[regexp(r"\.log$")],
            &[(b"/var/x.log", FILE, E), (b"/var/x.log.1", FILE, I)],
        );
        check(
            &[regexp("tmp")],
            &[
                (b"/a/tmp/b", FILE, E),
                (b"/atmpb", FILE, E),
                (b"/a", DIR, I),
            ],
        );
        check(
            &[FilterRule::IncludeRegexp(r"\.py$".into()), exc("**")],
            &[(b"/src/x.py", FILE, I), (b"/src", DIR, E)],
        );
    }

    #[test]
    fn filelists() {
        // Include list: lines include by default; "- " excludes; blank lines and '#'
        // comments are skipped; white space around a line and one pair of quotes go.
        let include_list = "\
            # backup set\n\
            /home/ann\r\n\
            \n\
            - /home/ann/.cache\n\
            + /etc\n\
            \t  '/srv/my data'  \n\
            \"/opt/x\"\r\
            - **\n";
        check(
            &[
                FilterRule::IncludeFilelist(include_list.to_owned()),
                exc("/never"),
            ],
            &[
                // The exclude on line 4 comes after the include on line 2.
                (b"/home/ann/.cache", DIR, I),
                (b"/home/ann/doc", FILE, I),
                (b"/home", DIR, S),
                (b"/home/bob", DIR, E),
                (b"/etc/passwd", FILE, I),
                (b"/srv/my data/f", FILE, I),
                (b"/opt/x", DIR, I),
                (b"/var", DIR, E),
            ],
        );
        // Exclude list: lines exclude by default; "+ " includes.
        let exclude_list = "/b\n'\n+ /a\n\"/c d\"\n  - /e  \n\r\n#/g\n  # /h\n";
        check(
            &[FilterRule::ExcludeFilelist(exclude_list.to_owned())],
            &[
                (b"/a", FILE, I),
                (b"/b", FILE, E),
                (b"/c d", FILE, E),
                (b"/e", FILE, E),
                (b"/g", FILE, I),
                (b"/h", FILE, I),
                (b"/'", FILE, I),
            ],
        );
        // Globbing and ignorecase work in filelists.
        check(
            &[FilterRule::ExcludeFilelist(
                "ignorecase:/**/*.TMP\n+ /keep/**\n".to_owned(),
            )],
            &[(b"/x/y/a.tmp", FILE, E), (b"/keep/z", FILE, I)],
        );
    }

    #[test]
    fn first_matching_rule_wins() {
        check(
            &[exc("/a"), inc("/a/b")],
            &[(b"/a", DIR, E), (b"/a/b", FILE, E), (b"/c", FILE, I)],
        );
        check(
            &[inc("/a/b"), exc("/a")],
            &[
                (b"/a", DIR, S),
                (b"/a/b", FILE, I),
                (b"/a/b/c", FILE, I),
                (b"/a/c", FILE, E),
                (b"/c", FILE, I),
            ],
        );
        check(
            &[exc("/a/b"), inc("/a/b"), exc("**")],
            &[(b"/a/b", FILE, E), (b"/a", DIR, S)],
        );
        check(
            &[inc("/a/b"), exc("/a/b")],
            &[(b"/a/b", FILE, I), (b"/a/b/x", FILE, I)],
        );
    }

    #[test]
    fn scanning() {
        check(
            &[inc("/a/**/z"), exc("**")],
            &[
                // Everything below the `**` may hold a match: all of it is scanned.
                (b"/a", DIR, S),
                (b"/a/x/y", DIR, S),
                (b"/a/x/y/z", FILE, I),
                (b"/a/z", FILE, E),
                (b"/b", DIR, E),
                // A scan of a file means nothing can be below it: it is not emitted.
                (b"/a/x/y", FILE, E),
            ],
        );
        // A directory on the way to an include is scanned even if no rule excludes
        // it, so it is emitted only if something below it is.
        check(
            &[inc("/a/b/c"), exc("/x")],
            &[(b"/a", DIR, S), (b"/a/b", DIR, S), (b"/a/d", FILE, I)],
        );
    }

    #[test]
    fn include_inside_later_exclude() {
        // The docker case from the seed command line.
        check(
            &[
                inc("/source/var/lib/docker/containers"),
                exc("/source/var/lib/docker"),
            ],
            &[
                (b"/source/var/lib/docker", DIR, S),
                (b"/source/var/lib/docker/containers", DIR, I),
                (b"/source/var/lib/docker/containers/x/y", FILE, I),
                (b"/source/var/lib/docker/volumes", DIR, E),
                (b"/source/var/lib/docker/volumes/z", FILE, E),
                (b"/source/var/lib/docker/image", DIR, E),
            ],
        );
        // A single file under a directory excluded later.
        check(
            &[
                inc("/source/etc/app/conf.d/main.conf"),
                exc("/source/etc/app"),
            ],
            &[
                (b"/source/etc/app", DIR, S),
                (b"/source/etc/app/conf.d", DIR, S),
                (b"/source/etc/app/conf.d/main.conf", FILE, I),
                (b"/source/etc/app/conf.d/other.conf", FILE, E),
                (b"/source/etc/app/cache", DIR, E),
                (b"/source/etc/other", FILE, I),
            ],
        );
    }

    #[test]
    fn system_directories() {
        check(
            &[
                exc("/source/proc"),
                exc("/source/sys"),
                exc("/source/tmp"),
                exc("/source/var/tmp"),
            ],
            &[
                (b"/source/proc", DIR, E),
                (b"/source/proc/1/status", FILE, E),
                (b"/source/sys", DIR, E),
                (b"/source/tmp", DIR, E),
                (b"/source/tmp/x", FILE, E),
                (b"/source/tmpfs", DIR, I),
                (b"/source/var", DIR, I),
                (b"/source/var/tmp", DIR, E),
                (b"/source/home/tmp", DIR, I),
            ],
        );
    }

    /// The duplicity command from the seed document (itnerd.space, "Offsite Linux
    /// backup to Mega with duplicity"), backing up the host's `/` mounted at `/source`.
    /// Every outcome here is what duplicity 3.0's `Select` returns for the path.
    #[test]
    fn seed_command_line() {
        const PLEX: &str = "/source/var/lib/plexmediaserver/Library/Application Support/\
                            Plex Media Server";
        let mut rules = vec![
            inc("/source/var/lib/docker/containers"),
            inc(&format!("{PLEX}/Preferences.xml")),
        ];
        for dir in [
            "dev",
            "proc",
            "run",
            "sys",
            "zfs",
            "mnt",
            "media",
            "vol/dupmega/cache",
            "tank",
            "vbox",
            "var/lib/docker",
            "var/lib/plexmediaserver/",
            "tmp",
            "var/tmp",
            "var/cache",
            "var/log",
        ] {
            rules.push(exc(&format!("/source/{dir}")));
        }
        let filter = Filter::new(&rules).unwrap();
        filter.check_roots(&[b"/source"]).unwrap();
        filter.check_last_rule_excludes().unwrap();

        let plex = |rest: &str| format!("{PLEX}{rest}");
        let rows: Vec<(String, bool, Decision)> = vec![
            // Nothing matches: included (the default).
            ("/source/etc".into(), DIR, I),
            ("/source/etc/passwd".into(), FILE, I),
            ("/source/home/ann/notes.txt".into(), FILE, I),
            ("/source/boot/grub/grubenv".into(), FILE, I),
            // Excluded trees, and everything in them.
            ("/source/dev".into(), DIR, E),
            ("/source/dev/null".into(), FILE, E),
            ("/source/proc".into(), DIR, E),
            ("/source/proc/1/cgroup".into(), FILE, E),
            ("/source/run".into(), DIR, E),
            ("/source/sys".into(), DIR, E),
            ("/source/sys/kernel".into(), DIR, E),
            ("/source/zfs".into(), DIR, E),
            ("/source/mnt".into(), DIR, E),
            ("/source/media".into(), DIR, E),
            ("/source/tank".into(), DIR, E),
            ("/source/vbox".into(), DIR, E),
            ("/source/tmp".into(), DIR, E),
            ("/source/tmp/x".into(), FILE, E),
            // A glob is not a string prefix: "dev" does not match "devices".
            ("/source/devices".into(), FILE, I),
            ("/source/tmpfiles".into(), FILE, I),
            // Case matters without `ignorecase:`.
            ("/source/Tmp".into(), DIR, I),
            // Only the cache below /vol/dupmega is excluded.
            ("/source/vol".into(), DIR, I),
            ("/source/vol/dupmega".into(), DIR, I),
            ("/source/vol/dupmega/megafuse.conf".into(), FILE, I),
            ("/source/vol/dupmega/cache".into(), DIR, E),
            ("/source/vol/dupmega/cache/duplicity/x".into(), FILE, E),
            // /source/var and /source/var/lib lead to the two includes: scanned. No
            // rule excludes them, but duplicity still emits them only once something
            // below is emitted (here /source/var/mail at the latest).
            ("/source/var".into(), DIR, S),
            ("/source/var/lib".into(), DIR, S),
            ("/source/var/mail".into(), DIR, I),
            ("/source/var/lib/apt".into(), DIR, I),
            ("/source/var/tmp".into(), DIR, E),
            ("/source/var/cache".into(), DIR, E),
            ("/source/var/log".into(), DIR, E),
            ("/source/var/log/syslog".into(), FILE, E),
            // Docker: the later exclude cannot stop the scan of the directory leading
            // to the earlier include; the containers tree is kept, the rest is not.
            ("/source/var/lib/docker".into(), DIR, S),
            ("/source/var/lib/docker/containers".into(), DIR, I),
            (
                "/source/var/lib/docker/containers/abc/config.v2.json".into(),
                FILE,
                I,
            ),
            ("/source/var/lib/docker/volumes".into(), DIR, E),
            ("/source/var/lib/docker/volumes/z".into(), FILE, E),
            ("/source/var/lib/dockerd".into(), FILE, I),
            // Plex: "plexmediaserver/" ends in '/', so it excludes the directory and
            // its contents; the directories down to Preferences.xml are scanned and
            // only that file is kept.
            ("/source/var/lib/plexmediaserver".into(), DIR, S),
            ("/source/var/lib/plexmediaserver/Library".into(), DIR, S),
            (
                "/source/var/lib/plexmediaserver/Library/Application Support".into(),
                DIR,
                S,
            ),
            (plex(""), DIR, S),
            (plex("/Preferences.xml"), FILE, I),
            (plex("/Cache"), DIR, E),
            (plex("/Plug-ins/x"), FILE, E),
            (
                "/source/var/lib/plexmediaserver/Library/Logs".into(),
                DIR,
                E,
            ),
            ("/source/var/lib/plexmediaserver-old".into(), DIR, I),
            // Odd cases: a *file* on the way to an include is "scanned", which for a
            // file means dropped, even when no exclude matches it (/source/var/lib)
            // or when the only exclude that would match wants a directory
            // ("plexmediaserver/").
            ("/source/var/lib".into(), FILE, E),
            ("/source/var/lib/plexmediaserver".into(), FILE, E),
            ("/source/var/lib/docker".into(), FILE, E),
            // The include names the containers path, whatever its type.
            ("/source/var/lib/docker/containers".into(), FILE, I),
            // Python's `$` also matches before a final newline: a file called
            // "tmp\n" is excluded by --exclude=/source/tmp.
            ("/source/tmp\n".into(), FILE, E),
        ];
        assert!(rows.len() >= 40);
        for (path, is_dir, expected) in rows {
            assert_eq!(
                filter.decide(path.as_bytes(), is_dir),
                expected,
                "{path:?} (dir: {is_dir})"
            );
        }
    }

    #[test]
    fn trailing_slash_on_the_path_is_ignored() {
        check(&[exc("/a/")], &[(b"/a/", DIR, E), (b"/", DIR, I)]);
    }

    #[test]
    fn pattern_errors() {
        fn error(rules: &[FilterRule]) -> FilterError {
            match Filter::new(rules) {
                Ok(filter) => panic!("{rules:?} accepted: {filter:?}"),
                Err(error) => error,
            }
        }
        assert!(matches!(
            error(&[exc("")]),
            FilterError::EmptyPattern { .. }
        ));
        assert!(matches!(
            error(&[FilterRule::ExcludeRegexp(String::new())]),
            FilterError::EmptyPattern { .. }
        ));
        for glob in [
            "tmp",
            "*.log",
            "?/x",
            "a/",
            "[ab]/x",
            "ignorecase:",
            "ignorecase:tmp",
        ] {
            assert!(
                matches!(error(&[exc(glob)]), FilterError::NotAbsolute { .. }),
                "{glob}"
            );
        }
        // Globs that can match an absolute path are fine.
        for glob in ["**", "**/x", "*", "*/x", "[!a]x", "/", "//", "/a/**//b"] {
            Filter::new(&[exc(glob)]).unwrap();
        }
        assert!(matches!(
            error(&[inc("/a//b")]),
            FilterError::ConsecutiveSlashes { .. }
        ));
        assert!(matches!(
            error(&[exc("/[z-a]")]),
            FilterError::BadCharacterRange {
                lo: 'z',
                hi: 'a',
                ..
            }
        ));
        assert!(matches!(
            error(&[FilterRule::ExcludeRegexp("(".into())]),
            FilterError::Regex { .. }
        ));
        let in_list = error(&[FilterRule::IncludeFilelist("/ok\n\n- tmp\n".into())]);
        assert!(
            matches!(&in_list, FilterError::Filelist { line: 3, source, .. }
                if matches!(**source, FilterError::NotAbsolute { .. })),
            "{in_list:?}"
        );
        assert_eq!(
            in_list.to_string(),
            "--include-filelist line 3: glob \"tmp\" cannot match any file: globs must \
             begin with '/' or with a wildcard that matches it, such as '**'"
        );
    }

    #[test]
    fn roots_check() {
        let filter = |rules: &[FilterRule]| Filter::new(rules).unwrap();
        // Matches the root, something below it, or a directory on the way to it.
        for glob in ["/source", "/source/x", "/", "**", "*", "/sou*", "/source/"] {
            filter(&[exc(glob)]).check_roots(&[b"/source"]).unwrap();
        }
        filter(&[exc("/source")])
            .check_roots(&[b"/source/sub"])
            .unwrap();
        let error = filter(&[exc("/other/x")])
            .check_roots(&[b"/source"])
            .unwrap_err();
        assert!(matches!(error, FilterError::OutsideRoots { .. }));
        assert_eq!(
            error.to_string(),
            "glob \"/other/x\" cannot match any file in /source: useful globs begin \
             with the base directory or with a wildcard that matches it, such as '**'"
        );
        // With several roots one is enough.
        filter(&[exc("/home/ann/tmp")])
            .check_roots(&[b"/etc", b"/home"])
            .unwrap();
        // A glob that only works for some roots: "[!a]b" can match "/b", not "/".
        filter(&[exc("[!a]b")]).check_roots(&[b"/b"]).unwrap();
        assert!(filter(&[exc("[!a]b")]).check_roots(&[b"/"]).is_err());
        // Regexps are not checked.
        filter(&[FilterRule::ExcludeRegexp("x".into())])
            .check_roots(&[b"/source"])
            .unwrap();
    }

    #[test]
    fn last_rule_must_exclude() {
        let filter = |rules: &[FilterRule]| Filter::new(rules).unwrap();
        let error = filter(&[exc("/a"), inc("/b")])
            .check_last_rule_excludes()
            .unwrap_err();
        assert!(matches!(&error, FilterError::RedundantInclude { pattern } if pattern == "/b"));
        // What counts is the last line of a filelist, whatever the list's default.
        assert!(
            filter(&[FilterRule::IncludeFilelist("- /b\n+ /a\n# c\n".into())])
                .check_last_rule_excludes()
                .is_err()
        );
        filter(&[FilterRule::IncludeFilelist("/a\n- /b\n".into())])
            .check_last_rule_excludes()
            .unwrap();
        // An empty filelist adds no rule.
        filter(&[exc("/a"), FilterRule::IncludeFilelist("# nothing\n".into())])
            .check_last_rule_excludes()
            .unwrap();
        filter(&[]).check_last_rule_excludes().unwrap();
    }

    #[test]
    fn case_folding_table_is_sorted() {
        assert!(FULL_CASE_FOLDING.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(full_case_fold("Stra\u{df}e \u{fb01}"), "Strasse fi");
    }

    #[test]
    fn python_line_handling() {
        let lines: Vec<&str> = universal_lines("a\r\nb\rc\n\nd").collect();
        assert_eq!(lines, ["a", "b", "c", "", "d"]);
        assert_eq!(
            clean_filelist_line("\u{1c} /a \u{a0}", false),
            Some(("/a", false))
        );
        assert_eq!(clean_filelist_line("+ '/a'", false), Some(("/a", true)));
        assert_eq!(clean_filelist_line("-  /a", true), Some((" /a", false)));
        assert_eq!(clean_filelist_line("'", true), None);
        assert_eq!(clean_filelist_line("  # x", true), None);
    }
}
