//! Processes as `/proc` shows them: whether a provider or host process is
//! still running, and whose child it is (Linux only, like the suite).

/// One process.
#[derive(Debug, Clone)]
pub struct Proc {
    /// Its id.
    pub pid: u32,
    /// Its parent's id.
    pub ppid: u32,
    /// State letter from `/proc/{pid}/stat`: `R`, `S`, `Z` (zombie), …
    pub state: char,
    /// Command line, arguments separated by spaces.
    pub cmdline: String,
}

impl Proc {
    /// The process `pid`, if it exists (running or a zombie).
    pub fn of(pid: u32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name in parentheses may hold spaces: fields start after
        // the last `)`.
        let after = stat.get(stat.rfind(')')?.checked_add(2)?..)?;
        let mut fields = after.split(' ');
        let state = fields.next()?.chars().next()?;
        let ppid = fields.next()?.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        Some(Self {
            pid,
            ppid,
            state,
            cmdline,
        })
    }

    /// Whether it has exited (zombie or dead).
    pub fn exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }

    /// The children of `parent`, zombies included.
    pub fn children_of(parent: u32) -> Vec<Self> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(Self::of)
            .filter(|p| p.ppid == parent)
            .collect()
    }
}

/// Whether `pid` is a live process; a zombie (exited, not yet reaped by
/// whoever inherited it) counts as gone.
pub fn alive(pid: u32) -> bool {
    Proc::of(pid).is_some_and(|p| !p.exited())
}
