//! Watch rules: which paths, which attributes, which level (AIDE's rule sets as the model).

pub use super::attrs::{Attr, Attrs, attributes};
use crate::config::WatchRule;
use globset::{GlobSet, GlobSetBuilder};
use qmoi_core::Severity;
use std::path::{Path, PathBuf};

/// A compiled watch rule.
#[derive(Debug)]
pub struct Rule {
    pub root: PathBuf,
    pub attrs: Attrs,
    pub level: Severity,
    pub recursive: bool,
    include: Option<GlobSet>,
    exclude: GlobSet,
}

/// All rules, most specific (longest path) first.
#[derive(Debug, Default)]
pub struct Rules {
    rules: Vec<Rule>,
}

impl Rules {
    /// Compile the configured rules; relative paths are taken from the working directory.
    pub fn compile(cfg: &[WatchRule]) -> Result<Self, String> {
        let cwd = std::env::current_dir().unwrap_or_default();
        let mut rules = Vec::with_capacity(cfg.len());
        for r in cfg {
            let p = Path::new(&r.path);
            let root = normalize(&if p.is_absolute() { p.to_path_buf() } else { cwd.join(p) });
            let include = if r.include.is_empty() { None } else { Some(globs(&r.include)?) };
            rules.push(Rule {
                root,
                attrs: attributes(&r.check)?,
                level: r.level,
                recursive: r.recursive,
                include,
                exclude: globs(&r.exclude)?,
            });
        }
        rules.sort_by_key(|r| std::cmp::Reverse(r.root.as_os_str().len()));
        Ok(Self { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The folders and files to walk: each rule's root, except roots inside another
    /// recursive root (walked once, as part of the outer one).
    pub fn walk_roots(&self) -> Vec<(PathBuf, bool)> {
        let mut roots: Vec<(PathBuf, bool)> = Vec::new();
        let mut sorted: Vec<&Rule> = self.rules.iter().collect();
        sorted.sort_by_key(|r| r.root.as_os_str().len());
        for r in sorted {
            if !roots.iter().any(|(root, rec)| *rec && r.root.starts_with(root)) {
                roots.push((r.root.clone(), r.recursive));
            }
        }
        roots
    }

    /// The rule that decides for `path`, or None when no rule covers it or it is excluded.
    pub fn rule_for(&self, path: &Path, is_dir: bool) -> Option<&Rule> {
        let rule = self.rules.iter().find(|r| {
            path.starts_with(&r.root) && (r.recursive || path == r.root || path.parent() == Some(r.root.as_path()))
        })?;
        let rel = path.strip_prefix(&rule.root).unwrap_or(path);
        if rel.as_os_str().is_empty() {
            return Some(rule);
        }
        if rule.exclude.is_match(rel) {
            return None;
        }
        if let Some(inc) = &rule.include {
            // Folders stay in (so that their contents can match); files must match.
            if !is_dir && !inc.is_match(rel) {
                return None;
            }
        }
        Some(rule)
    }

    pub fn roots(&self) -> impl Iterator<Item = &Path> {
        self.rules.iter().map(|r| r.root.as_path())
    }
}

fn globs(patterns: &[String]) -> Result<GlobSet, String> {
    let mut b = GlobSetBuilder::new();
    for g in patterns {
        // `*.swp` should match in any folder, as users expect from .gitignore-like lists.
        let glob = globset::GlobBuilder::new(g)
            .literal_separator(false)
            .build()
            .map_err(|e| format!("invalid glob '{g}': {e}"))?;
        b.add(glob);
    }
    b.build().map_err(|e| e.to_string())
}

/// `a/./b/../c` → `a/c`, without touching the file system (symlinks are not resolved: a
/// watched symlink is watched as a link).
pub fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(path: &str, level: Severity, exclude: &[&str]) -> WatchRule {
        WatchRule {
            path: path.into(),
            level,
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            ..WatchRule::default()
        }
    }

    #[test]
    fn most_specific_rule_decides_and_nested_roots_walk_once() -> Result<(), String> {
        let rules = Rules::compile(&[
            rule("/etc", Severity::Warning, &["*.swp"]),
            rule("/etc/passwd", Severity::Critical, &[]),
            rule("/usr/bin", Severity::Critical, &[]),
        ])?;
        assert_eq!(rules.rule_for(Path::new("/etc/passwd"), false).map(|r| r.level), Some(Severity::Critical));
        assert_eq!(rules.rule_for(Path::new("/etc/hosts"), false).map(|r| r.level), Some(Severity::Warning));
        assert!(rules.rule_for(Path::new("/etc/x/y.swp"), false).is_none());
        assert!(rules.rule_for(Path::new("/var/log/x"), false).is_none());
        let roots: Vec<_> = rules.walk_roots().into_iter().map(|(p, _)| p).collect();
        assert_eq!(roots, vec![PathBuf::from("/etc"), PathBuf::from("/usr/bin")]);
        Ok(())
    }

    #[test]
    fn attribute_sets_and_unknown_names() {
        let a = attributes(&["content".into()]).unwrap_or_default();
        assert!(a.has(Attr::HASH) && a.has(Attr::SIZE) && !a.has(Attr::MODE));
        let e = attributes(&["hash".into(), "colour".into()]).err().unwrap_or_default();
        assert!(e.contains("unknown attribute 'colour'"), "{e}");
        assert!(attributes(&[]).is_err());
    }
}
