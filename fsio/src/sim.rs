//! Power-loss recorder (feature `sim`, for tests): what a disk would keep if power failed now.
//!
//! A [`Recorder`] watches one directory tree (the `root`, a test's data dir).
//! Every operation `fsio` reports under it counts as one *operation*; the
//! recorder keeps the durable state a real file system guarantees:
//!
//! - a file's content as of its last `fsync`/`fdatasync` (read back at sync
//!   time; a file never synced is empty),
//! - a directory's entries (name → inode) as of its last `fsync` (a directory
//!   never synced is empty; the root starts with what it held at `start`).
//!
//! Cutting power "after operation N" rebuilds the tree from that state alone
//! into a fresh directory: unsynced appends are dropped, unsynced creates and
//! renames are undone, unsynced deletes come back. A *torn* cut additionally
//! keeps a random prefix (at most one 4 KiB page) of each file's unsynced
//! appended bytes, as a disk that wrote part of the last page would.
//!
//! Inodes are identified by number; the recorder holds a descriptor of every
//! inode it has seen, so a deleted inode's number is never reused while its
//! old directory entry may still come back.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

static ACTIVE: Mutex<Vec<Arc<Recorder>>> = Mutex::new(Vec::new());

/// A rebuilt tree: relative paths, `None` for a directory, parents first.
type Tree = Vec<(PathBuf, Option<Arc<Vec<u8>>>)>;

/// One rebuilt data directory: the tree as power loss after `op` would leave it.
#[derive(Debug, Clone)]
pub struct Image {
    /// The operation after which power failed.
    pub op: u64,
    /// Where [`Image::materialize`] writes the tree.
    pub dir: PathBuf,
    /// The seed of the tear, for a torn cut.
    pub torn: Option<u64>,
    /// The tree to write into `dir`: relative paths, `None` for a directory
    /// (parents come before their entries).
    tree: Tree,
}

impl Image {
    /// Write the tree into `dir` (a fresh directory).
    pub fn materialize(&self) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        for (rel, content) in &self.tree {
            let path = self.dir.join(rel);
            match content {
                None => std::fs::create_dir(&path)?,
                Some(c) => std::fs::write(&path, &**c)?,
            }
        }
        Ok(())
    }
}

/// Write each of `images` (in operation order) and check it with `verify`.
/// On the first failure, the message names the cut and how to replay it
/// (`BROOK_POWER_SEED`, `BROOK_POWER_CUT`, `BROOK_POWER_TORN`); the caller
/// keeps the images' directory for inspection.
///
/// # Errors
/// The first image that could not be written or failed `verify`.
pub async fn check_cuts<F, Fut, E>(
    seed: u64,
    images: &mut [Image],
    mut verify: F,
) -> Result<(), String>
where
    F: FnMut(Image) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    images.sort_by_key(|i| i.op);
    for image in images.iter() {
        let torn = image
            .torn
            .map(|t| format!(" BROOK_POWER_TORN={t}"))
            .unwrap_or_default();
        let checked = match image.materialize() {
            Ok(()) => verify(image.clone()).await.map_err(|e| format!("{e:#}")),
            Err(e) => Err(format!("writing the image: {e}")),
        };
        if let Err(e) = checked {
            return Err(format!(
                "seed {seed}, power cut after operation {} (torn: {:?}): {e}\n\
                 replay with BROOK_POWER_SEED={seed} BROOK_POWER_CUT={}{torn}",
                image.op, image.torn, image.op
            ));
        }
    }
    Ok(())
}

/// Where to cut: after operation `op`, torn when `torn_seed` is set.
#[derive(Debug, Clone, Copy)]
pub struct Cut {
    /// The operation (counted from 1) after which power fails.
    pub op: u64,
    /// Seed of the tear; `None` for a clean cut.
    pub torn_seed: Option<u64>,
}

/// Watches one directory tree and cuts images of it (see the module docs).
#[derive(Debug)]
pub struct Recorder {
    root: PathBuf,
    out: PathBuf,
    /// `false` for a sink: syncs under `root` are skipped and nothing is recorded.
    model: bool,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    ops: u64,
    root_ino: u64,
    files: HashMap<u64, Arc<Vec<u8>>>,
    dirs: HashMap<u64, BTreeMap<OsString, u64>>,
    is_dir: HashMap<u64, bool>,
    pins: HashMap<u64, File>,
    cuts: BTreeMap<u64, Option<u64>>,
    /// Reservoir sampling instead of fixed cuts: keep `k` uniformly chosen
    /// cuts of however many operations there turn out to be.
    sample: Option<(usize, SplitMix)>,
    images: Vec<Image>,
    error: Option<String>,
    /// Operation numbers and the paths they touched (for replaying one cut).
    trace: Vec<(u64, String)>,
    tracing: bool,
}

/// Stops recording when dropped.
#[derive(Debug)]
pub struct Recording(Arc<Recorder>);

impl std::ops::Deref for Recording {
    type Target = Recorder;
    fn deref(&self) -> &Recorder {
        &self.0
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        let mut active = ACTIVE.lock().unwrap_or_else(PoisonError::into_inner);
        active.retain(|r| !Arc::ptr_eq(r, &self.0));
    }
}

impl Recorder {
    /// Record operations under `root` (which must exist; it and everything in it
    /// count as durable now), writing cut images into `out`.
    pub fn start(
        root: &Path,
        out: &Path,
        cuts: impl IntoIterator<Item = Cut>,
        trace: bool,
    ) -> io::Result<Recording> {
        let root = root.canonicalize()?;
        std::fs::create_dir_all(out)?;
        let mut inner = Inner {
            tracing: trace,
            ..Inner::default()
        };
        inner.root_ino = std::fs::metadata(&root)?.ino();
        inner.cuts = cuts.into_iter().map(|c| (c.op, c.torn_seed)).collect();
        inner.sync_tree(&root)?;
        let rec = Arc::new(Self {
            root,
            out: out.to_path_buf(),
            model: true,
            inner: Mutex::new(inner),
        });
        ACTIVE
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(rec.clone());
        Ok(Recording(rec))
    }

    /// [`Recorder::start`] cutting at `k` operations chosen uniformly at random
    /// (by `seed`) among all the run makes; about half of them torn.
    pub fn start_sampled(root: &Path, out: &Path, k: usize, seed: u64) -> io::Result<Recording> {
        let rec = Self::start(root, out, Vec::new(), false)?;
        rec.lock().sample = Some((k, SplitMix(seed)));
        Ok(rec)
    }

    /// Skip every sync under `root` without recording anything: for checking
    /// images, where durability no longer matters and real syncs only cost time.
    pub fn sink(root: &Path) -> io::Result<Recording> {
        let rec = Arc::new(Self {
            root: root.canonicalize()?,
            out: PathBuf::new(),
            model: false,
            inner: Mutex::new(Inner::default()),
        });
        ACTIVE
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(rec.clone());
        Ok(Recording(rec))
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Operations recorded so far.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// The images cut so far, and the first recorder error (a failure to read
    /// or rebuild, which makes the run invalid).
    pub fn images(&self) -> (Vec<Image>, Option<String>) {
        let g = self.lock();
        (g.images.clone(), g.error.clone())
    }

    /// The recorded operations (when started with `trace`).
    pub fn trace(&self) -> Vec<(u64, String)> {
        self.lock().trace.clone()
    }

    fn on_op(&self, sync: Option<&File>, path: &Path) {
        if !self.model {
            return;
        }
        let mut g = self.lock();
        if let Some(f) = sync {
            if let Err(e) = g.on_sync(f) {
                g.error
                    .get_or_insert(format!("sync of {}: {e}", path.display()));
            }
        }
        g.ops += 1;
        let n = g.ops;
        if g.tracing {
            let what = if sync.is_some() { "sync" } else { "op" };
            let thread = std::thread::current();
            g.trace.push((
                n,
                format!(
                    "{what} {} [thread {}]",
                    path.display(),
                    thread.name().unwrap_or("unnamed")
                ),
            ));
        }
        let mut cut = g.cuts.remove(&n).map(|torn| (torn, None));
        if let Some((k, rng)) = g.sample.as_mut() {
            let k = *k;
            let slot = usize::try_from(rng.below(n)).unwrap_or(usize::MAX);
            let torn = (rng.below(2) == 0).then(|| rng.next());
            if g.images.len() < k {
                cut = Some((torn, None));
            } else if slot < k {
                cut = Some((torn, Some(slot)));
            }
        }
        if let Some((torn, replace)) = cut {
            let dir = self.out.join(format!("cut-{n:06}"));
            match g.rebuild(torn) {
                Ok(tree) => {
                    let image = Image {
                        op: n,
                        dir,
                        torn,
                        tree,
                    };
                    match replace {
                        None => g.images.push(image),
                        Some(slot) => g.images[slot] = image,
                    }
                }
                Err(e) => {
                    g.error.get_or_insert(format!("rebuilding cut {n}: {e}"));
                }
            }
        }
    }
}

fn recorder_for(path: &Path) -> Option<Arc<Recorder>> {
    let active = ACTIVE.lock().unwrap_or_else(PoisonError::into_inner);
    active.iter().find(|r| path.starts_with(&r.root)).cloned()
}

fn fd_path(file: &File) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()
}

/// A file or directory is being synced; `true` when a recorder took it (the
/// real sync is then skipped: the recorder's state is the disk).
pub(crate) fn synced(file: &File) -> bool {
    if ACTIVE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .is_empty()
    {
        return false;
    }
    let Some(path) = fd_path(file) else {
        return false;
    };
    let Some(r) = recorder_for(&path) else {
        return false;
    };
    r.on_op(Some(file), &path);
    true
}

/// A create, rename or delete at `path`.
pub(crate) fn op(path: &Path) {
    if ACTIVE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .is_empty()
    {
        return;
    }
    // The parent is canonical even when `path` no longer exists.
    let canonical = path
        .parent()
        .and_then(|p| p.canonicalize().ok())
        .map(|p| p.join(path.file_name().unwrap_or_default()));
    let Some(path) = canonical else { return };
    if let Some(r) = recorder_for(&path) {
        r.on_op(None, &path);
    }
}

impl Inner {
    fn pin(&mut self, ino: u64, path: &Path) -> io::Result<()> {
        if let std::collections::hash_map::Entry::Vacant(v) = self.pins.entry(ino) {
            v.insert(File::open(path)?);
        }
        Ok(())
    }

    fn on_sync(&mut self, f: &File) -> io::Result<()> {
        let meta = f.metadata()?;
        let ino = meta.ino();
        let proc = PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()));
        self.pin(ino, &proc)?;
        if meta.is_dir() {
            self.is_dir.insert(ino, true);
            self.sync_dir_entries(ino, &proc)
        } else {
            self.is_dir.insert(ino, false);
            let content = self.current(ino)?;
            self.files.insert(ino, Arc::new(content));
            Ok(())
        }
    }

    fn sync_dir_entries(&mut self, ino: u64, path: &Path) -> io::Result<()> {
        let mut entries = BTreeMap::new();
        for e in std::fs::read_dir(path)? {
            let e = e?;
            let child = e.ino();
            let kind = e.file_type()?;
            if !(kind.is_dir() || kind.is_file()) {
                continue;
            }
            // The entry may vanish between listing and pinning (a concurrent
            // delete): then it was not there at the sync either, near enough.
            if self.pin(child, &e.path()).is_err() {
                continue;
            }
            self.is_dir.insert(child, kind.is_dir());
            entries.insert(e.file_name(), child);
        }
        self.dirs.insert(ino, entries);
        Ok(())
    }

    /// Treat the whole tree under `dir` as durable (the starting state).
    fn sync_tree(&mut self, dir: &Path) -> io::Result<()> {
        let ino = std::fs::metadata(dir)?.ino();
        self.pin(ino, dir)?;
        self.is_dir.insert(ino, true);
        self.sync_dir_entries(ino, dir)?;
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                self.sync_tree(&e.path())?;
            } else {
                let content = std::fs::read(e.path())?;
                self.files.insert(e.ino(), Arc::new(content));
            }
        }
        Ok(())
    }

    /// The content a pinned file has now (page cache included).
    fn current(&mut self, ino: u64) -> io::Result<Vec<u8>> {
        let Some(f) = self.pins.get_mut(&ino) else {
            return Ok(Vec::new());
        };
        let mut buf = Vec::new();
        f.rewind()?;
        f.read_to_end(&mut buf)?;
        Ok(buf)
    }

    /// The durable tree now, in memory (written out only for the cuts kept).
    fn rebuild(&mut self, torn: Option<u64>) -> io::Result<Tree> {
        let mut rng = torn.map(SplitMix);
        let mut seen = BTreeSet::new();
        let mut tree = Vec::new();
        self.rebuild_dir(self.root_ino, Path::new(""), &mut rng, &mut seen, &mut tree)?;
        Ok(tree)
    }

    fn rebuild_dir(
        &mut self,
        ino: u64,
        rel: &Path,
        rng: &mut Option<SplitMix>,
        seen: &mut BTreeSet<u64>,
        tree: &mut Tree,
    ) -> io::Result<()> {
        if !seen.insert(ino) {
            return Ok(()); // a directory reachable twice (unsynced rename): once is enough
        }
        let entries = self.dirs.get(&ino).cloned().unwrap_or_default();
        for (name, child) in entries {
            let path = rel.join(&name);
            if self.is_dir.get(&child).copied().unwrap_or(false) {
                tree.push((path.clone(), None));
                self.rebuild_dir(child, &path, rng, seen, tree)?;
                continue;
            }
            let mut content = self.files.get(&child).cloned().unwrap_or_default();
            let grew = self
                .pins
                .get(&child)
                .and_then(|f| f.metadata().ok())
                .is_some_and(|m| m.len() > content.len() as u64);
            if let Some(rng) = rng.as_mut().filter(|_| grew) {
                let now = self.current(child)?;
                if now.len() > content.len() && now.starts_with(&content) {
                    let unsynced = (now.len() - content.len()).min(4096);
                    let keep = usize::try_from(rng.next() % (unsynced as u64 + 1)).unwrap_or(0);
                    let mut torn = content.to_vec();
                    torn.extend_from_slice(&now[content.len()..content.len() + keep]);
                    content = Arc::new(torn);
                }
            }
            tree.push((path, Some(content)));
        }
        Ok(())
    }
}

/// splitmix64: a tiny seeded generator, enough for cut points and tears.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next value.
    #[expect(
        clippy::should_implement_trait,
        reason = "a generator the campaigns call directly, not an iterator to adapt"
    )]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::{ensure, Result};

    #[test]
    fn unsynced_creates_renames_and_appends_are_lost() -> Result<()> {
        let root = tempfile::tempdir()?;
        let out = tempfile::tempdir()?;
        let cuts = (1..=6).map(|op| Cut {
            op,
            torn_seed: None,
        });
        let rec = Recorder::start(root.path(), out.path(), cuts, false)?;
        let r = rec.root().to_path_buf();
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true);
        let a = r.join("a");
        let f = crate::open(&o, &a)?; // op 1: created, not durable
        std::io::Write::write_all(&mut &f, b"hello")?;
        crate::sync_data(&f)?; // op 2: content durable, entry not
        crate::sync_dir(&r)?; // op 3: entry durable
        std::io::Write::write_all(&mut &f, b" world")?;
        crate::rename(&a, &r.join("b"))?; // op 4: rename not durable
        crate::sync_dir(&r)?; // op 5
        crate::remove_file(&r.join("b"))?; // op 6: delete not durable
        let (images, err) = rec.images();
        ensure!(err.is_none(), "{err:?}");
        ensure!(images.len() == 6);
        let list = |i: usize| -> Result<Vec<(String, Vec<u8>)>> {
            images[i].materialize()?;
            let mut v = Vec::new();
            for e in std::fs::read_dir(&images[i].dir)? {
                let e = e?;
                v.push((
                    e.file_name().to_string_lossy().into(),
                    std::fs::read(e.path())?,
                ));
            }
            v.sort();
            Ok(v)
        };
        ensure!(list(0)?.is_empty());
        ensure!(list(1)?.is_empty());
        ensure!(list(2)? == vec![("a".into(), b"hello".to_vec())]);
        ensure!(list(3)? == vec![("a".into(), b"hello".to_vec())]);
        ensure!(list(4)? == vec![("b".into(), b"hello".to_vec())]);
        ensure!(list(5)? == vec![("b".into(), b"hello".to_vec())]);
        Ok(())
    }

    #[test]
    fn a_torn_cut_keeps_a_prefix_of_the_unsynced_tail() -> Result<()> {
        let root = tempfile::tempdir()?;
        let out = tempfile::tempdir()?;
        let cuts = (0..40).map(|i| Cut {
            op: 3 + i,
            torn_seed: Some(i),
        });
        let rec = Recorder::start(root.path(), out.path(), cuts, false)?;
        let r = rec.root().to_path_buf();
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true);
        let f = crate::open(&o, &r.join("a"))?;
        std::io::Write::write_all(&mut &f, b"durable")?;
        crate::sync_data(&f)?;
        crate::sync_dir(&r)?;
        std::io::Write::write_all(&mut &f, b"-unsynced")?;
        for _ in 0..40 {
            crate::sync_dir(&r)?;
        }
        let (images, _) = rec.images();
        let mut lens = BTreeSet::new();
        for i in &images {
            i.materialize()?;
            let c = std::fs::read(i.dir.join("a"))?;
            ensure!(b"durable-unsynced".starts_with(&c) && c.len() >= 7, "{c:?}");
            lens.insert(c.len());
        }
        ensure!(lens.len() > 3, "tears should vary: {lens:?}");
        Ok(())
    }
}
