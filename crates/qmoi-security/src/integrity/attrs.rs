//! The attributes a watch rule compares with the baseline (`check = [...]`), as bits: a
//! leaf module, so the config's validation can parse them without the rest of integrity.

/// One attribute compared with the baseline, as a bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr(u16);

impl Attr {
    pub const HASH: Attr = Attr(1);
    pub const SIZE: Attr = Attr(1 << 1);
    pub const MODE: Attr = Attr(1 << 2);
    pub const OWNER: Attr = Attr(1 << 3);
    pub const GROUP: Attr = Attr(1 << 4);
    pub const MTIME: Attr = Attr(1 << 5);
    pub const INODE: Attr = Attr(1 << 6);
    pub const LINK: Attr = Attr(1 << 7);
    pub const TYPE: Attr = Attr(1 << 8);
    pub const SUID: Attr = Attr(1 << 9);

    pub const ALL: [(Attr, &'static str); 10] = [
        (Attr::HASH, "hash"),
        (Attr::SIZE, "size"),
        (Attr::MODE, "mode"),
        (Attr::OWNER, "owner"),
        (Attr::GROUP, "group"),
        (Attr::MTIME, "mtime"),
        (Attr::INODE, "inode"),
        (Attr::LINK, "link"),
        (Attr::TYPE, "type"),
        (Attr::SUID, "suid"),
    ];
}

/// A set of attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attrs(u16);

impl Attrs {
    pub fn has(self, a: Attr) -> bool {
        self.0 & a.0 != 0
    }
    fn with(self, a: Attr) -> Self {
        Self(self.0 | a.0)
    }
}

/// Parse `check = [...]`: attribute names and the named sets.
pub fn attributes(names: &[String]) -> Result<Attrs, String> {
    let mut set = Attrs::default();
    for n in names {
        let add: &[Attr] = match n.as_str() {
            "all" => &[
                Attr::HASH,
                Attr::SIZE,
                Attr::MODE,
                Attr::OWNER,
                Attr::GROUP,
                Attr::MTIME,
                Attr::INODE,
                Attr::LINK,
                Attr::TYPE,
                Attr::SUID,
            ],
            "content" => &[Attr::HASH, Attr::SIZE, Attr::TYPE, Attr::LINK],
            "permissions" => &[Attr::MODE, Attr::OWNER, Attr::GROUP, Attr::TYPE, Attr::SUID, Attr::LINK],
            "growing" => &[Attr::MODE, Attr::OWNER, Attr::GROUP, Attr::TYPE, Attr::SUID, Attr::LINK, Attr::INODE],
            other => match Attr::ALL.iter().find(|(_, name)| *name == other) {
                Some((a, _)) => std::slice::from_ref(a),
                None => {
                    return Err(format!(
                        "unknown attribute '{other}' (known: hash size mode owner group mtime inode link type suid, \
                         or the sets all content permissions growing)"
                    ));
                }
            },
        };
        for a in add {
            set = set.with(*a);
        }
    }
    if set == Attrs::default() {
        return Err("must name at least one attribute".into());
    }
    Ok(set)
}
