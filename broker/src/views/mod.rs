//! Materialized views hosted by this broker (DESIGN.md section 10): the
//! definitions stored in the metadata image, one `brook_views::View` per
//! definition under `<data dir>/views/<name>/`, and a follower task per view that
//! applies its changelog topic up to the high-water mark.
//!
//! - Declaring: `[views.NAME]` tables in the config (created at start when
//!   missing), `PUT /v1/views/NAME`, or `brook view create`. A definition naming a
//!   missing topic, an unknown kind or a bad field path is refused with a message
//!   saying which. Dropping a view deletes its directory; recreating it rebuilds it
//!   from the start of the topic.
//! - Following: each view's task runs `Follower::step`, `maybe_flush` and
//!   `maybe_compact` on the blocking pool; once caught up it sleeps until a source
//!   partition's high-water mark moves (or a second passes, in case partitions were
//!   added). Memory: one shared block cache (`view.block.cache.bytes`) plus at most
//!   about `view.memtable.max.bytes` of memtable per view.
//! - Queries: `http` (the admin listener's `/v1/views` routes).
//!
//! # Layout
//! - this file: [`ViewHost`] (open, create, drop, list) and the follower loop.
//! - `source`: [`source::BrokerSource`], the `ChangelogSource` over local logs.
//! - `http`: the admin HTTP routes.

pub mod http;
pub mod source;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use brook_config::BrokerConfig;
use brook_views::{Follower, Progress, SharedResources, View, ViewDef, ViewOptions};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::broker::Broker;
use crate::error::BrokerError;

/// Whether a view has caught up with its topic since it was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewState {
    /// Applying the topic's history; not yet at the high-water mark.
    Restoring,
    /// Caught up at least once; follows new records as they commit.
    Live,
    /// The last step failed (for example, the topic was deleted).
    Failing(String),
}

impl ViewState {
    pub fn name(&self) -> &'static str {
        match self {
            ViewState::Restoring => "restoring",
            ViewState::Live => "live",
            ViewState::Failing(_) => "failing",
        }
    }
}

/// One open view and its follower's status.
#[derive(Debug)]
pub struct Hosted {
    pub view: Arc<View>,
    stop: watch::Sender<bool>,
    status: Mutex<(ViewState, Option<Progress>)>,
    /// The follower task; awaited before the view's files may be deleted.
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Hosted {
    /// The state and the last step's progress.
    pub fn status(&self) -> (ViewState, Option<Progress>) {
        self.status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_status(&self, state: ViewState, progress: Option<Progress>) {
        let mut s = self
            .status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *s = (state, progress.or_else(|| s.1.take()));
    }
}

/// The views of this broker.
#[derive(Debug)]
pub struct ViewHost {
    root: PathBuf,
    shared: SharedResources,
    options: ViewOptions,
    views: RwLock<BTreeMap<String, Arc<Hosted>>>,
    /// Serialises create and drop.
    admin: tokio::sync::Mutex<()>,
}

/// View store options from the broker config.
pub fn options_from(config: &BrokerConfig) -> ViewOptions {
    ViewOptions {
        max_memtable_bytes: u64::try_from(config.view_memtable_max_bytes).unwrap_or(16 << 20),
        max_flush_interval: Duration::from_millis(
            u64::try_from(config.view_flush_interval_ms).unwrap_or(30_000),
        ),
        max_unflushed_offsets: u64::try_from(config.view_flush_max_offsets).unwrap_or(100_000),
        ..ViewOptions::default()
    }
}

/// A view definition from a `[views.NAME]` config table.
///
/// # Errors
/// The definition does not validate (the message names the view).
pub fn def_from_decl(name: &str, d: &brook_config::ViewDecl) -> Result<ViewDef, BrokerError> {
    let mut json = serde_json::json!({"name": name, "topic": d.topic});
    for (key, v) in [
        ("kind", &d.kind),
        ("field", &d.field),
        ("key_format", &d.key_format),
        ("value_format", &d.value_format),
    ] {
        if let Some(v) = v {
            json[key] = serde_json::Value::String(v.clone());
        }
    }
    ViewDef::from_json(&json.to_string())
        .map_err(|e| BrokerError::InvalidConfig(format!("[views.{name}]: {e}")))
}

impl ViewHost {
    /// Views live under `<data dir>/views/`.
    pub fn new(data_dir: &Path, config: &BrokerConfig) -> Self {
        brook_views::install_log_bridge();
        Self {
            root: data_dir.join("views"),
            shared: SharedResources::new(
                u64::try_from(config.view_block_cache_bytes).unwrap_or(64 << 20),
                usize::try_from(config.view_max_open_files).unwrap_or(512),
            ),
            options: options_from(config),
            views: RwLock::new(BTreeMap::new()),
            admin: tokio::sync::Mutex::new(()),
        }
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The hosted view `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Hosted>> {
        self.views
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// Every hosted view.
    pub fn list(&self) -> Vec<Arc<Hosted>> {
        self.views
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// Open `def` (on the blocking pool: it reads the view's tables) and start
    /// following its topic.
    async fn open(&self, broker: &Arc<Broker>, def: ViewDef) -> Result<Arc<Hosted>, BrokerError> {
        let dir = self.dir(&def.name);
        let (options, shared, d) = (self.options.clone(), self.shared.clone(), def.clone());
        let view = tokio::task::spawn_blocking(move || View::open(&dir, d, options, &shared))
            .await
            .map_err(|_| BrokerError::Internal("opening a view panicked"))?
            .map_err(|e| BrokerError::Storage(format!("opening view {}: {e}", def.name)))?;
        let (stop, stop_rx) = watch::channel(false);
        let hosted = Arc::new(Hosted {
            view: Arc::new(view),
            stop,
            status: Mutex::new((ViewState::Restoring, None)),
            task: Mutex::new(None),
        });
        self.views
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(def.name.clone(), hosted.clone());
        let task = tokio::spawn(follow(broker.clone(), hosted.clone(), stop_rx));
        *hosted
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(task);
        Ok(hosted)
    }

    /// Stop `h`'s follower and wait until it has let go of the view (it flushes
    /// on the way out).
    async fn stop(h: &Hosted) {
        let _ = h.stop.send(true);
        let task = h
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }

    /// Open every stored definition, after adding the config's `[views.NAME]`
    /// declarations that are not stored yet. Runs once the broker serves.
    ///
    /// # Errors
    /// A config declaration that does not validate.
    pub async fn start(&self, broker: &Arc<Broker>) -> Result<(), BrokerError> {
        for (name, decl) in &broker.config().views {
            let def = def_from_decl(name, decl)?;
            match broker.put_view_def(def).await {
                Ok(true) => info!(view = %name, "view declared in the config created"),
                Ok(false) => {}
                Err(e) => {
                    warn!(view = %name, error = %e, "config declaration differs from the stored view; keeping the stored one")
                }
            }
        }
        for def in broker.view_defs().await.into_values() {
            let name = def.name.clone();
            if let Err(e) = self.open(broker, def).await {
                warn!(view = %name, error = %e, "view not opened");
            }
        }
        Ok(())
    }

    /// Create a view. Returns false when an identical one exists.
    ///
    /// # Errors
    /// A definition that does not validate, a missing topic, a name taken by
    /// another definition, storage failures.
    pub async fn create(&self, broker: &Arc<Broker>, def: ViewDef) -> Result<bool, BrokerError> {
        def.validate()
            .map_err(|e| BrokerError::InvalidRequest(e.to_string()))?;
        if broker.topic(&def.topic).is_none() {
            return Err(BrokerError::InvalidRequest(format!(
                "view {}: topic {} does not exist",
                def.name, def.topic
            )));
        }
        let _admin = self.admin.lock().await;
        if !broker.put_view_def(def.clone()).await? {
            return Ok(false);
        }
        let name = def.name.clone();
        let dir = self.dir(&name);
        // A directory left by an earlier view of this name would resume its state.
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
        if let Err(e) = self.open(broker, def).await {
            // Not hosted, so not stored either: a retry starts clean.
            let _ = broker.remove_view_def(&name).await;
            return Err(e);
        }
        info!(view = %name, "view created");
        Ok(true)
    }

    /// Drop view `name`: stop it, forget its definition, delete its data.
    /// Returns whether it existed.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn drop_view(&self, broker: &Broker, name: &str) -> Result<bool, BrokerError> {
        let _admin = self.admin.lock().await;
        let existed = broker.remove_view_def(name).await?;
        let hosted = self
            .views
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(name);
        if let Some(h) = &hosted {
            // The follower must be done with the files before they go (a late
            // flush would write into the directory of a view recreated under
            // the same name).
            Self::stop(h).await;
        }
        let dir = self.dir(name);
        if existed || hosted.is_some() {
            drop(hosted);
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
            info!(view = %name, "view dropped");
        }
        Ok(existed)
    }

    /// Stop every follower; each flushes its view on the way out, so the next
    /// start replays nothing.
    pub async fn stop_all(&self) {
        let all = self.list();
        for h in &all {
            let _ = h.stop.send(true);
        }
        for h in &all {
            Self::stop(h).await;
        }
    }
}

/// The follower loop of one view.
async fn follow(broker: Arc<Broker>, hosted: Arc<Hosted>, mut stop: watch::Receiver<bool>) {
    let name = hosted.view.def().name.clone();
    let topic = hosted.view.def().topic.clone();
    let mut follower = Some(Follower::new(
        hosted.view.clone(),
        source::BrokerSource::new(broker.clone()),
    ));
    let mut live = false;
    while !*stop.borrow() {
        let Some(mut f) = follower.take() else { break };
        let joined = tokio::task::spawn_blocking(move || {
            let r = f.step().and_then(|p| {
                f.view().maybe_flush()?;
                f.view().maybe_compact()?;
                Ok(p)
            });
            (f, r)
        })
        .await;
        let Ok((f, r)) = joined else { break };
        follower = Some(f);
        let mut seen = BTreeMap::new();
        let caught_up = match r {
            Ok(p) => {
                seen = p
                    .partitions
                    .iter()
                    .map(|x| (x.partition, x.next_offset))
                    .collect();
                let caught_up = p.caught_up();
                live |= caught_up;
                let state = if live {
                    ViewState::Live
                } else {
                    ViewState::Restoring
                };
                hosted.set_status(state, Some(p.clone()));
                if p.applied > 0 && caught_up && !live {
                    info!(view = %name, "view restored");
                }
                caught_up
            }
            Err(e) => {
                let msg = e.to_string();
                if !matches!(hosted.status().0, ViewState::Failing(ref m) if *m == msg) {
                    warn!(view = %name, error = %msg, "view follower step failed; retrying");
                }
                hosted.set_status(ViewState::Failing(msg), None);
                true
            }
        };
        if caught_up {
            wait_for_data(&broker, &topic, &seen, &mut stop).await;
        }
    }
    let view = hosted.view.clone();
    match tokio::task::spawn_blocking(move || view.flush()).await {
        Ok(Ok(())) | Err(_) => {}
        Ok(Err(e)) => warn!(view = %name, error = %e, "flushing the view on stop failed"),
    }
}

/// Until a partition of `topic` has committed records past `seen` (the view's next
/// offset per partition), `stop` changes, or a second passes (partitions may be
/// added, the topic may appear).
async fn wait_for_data(
    broker: &Broker,
    topic: &str,
    seen: &BTreeMap<i32, i64>,
    stop: &mut watch::Receiver<bool>,
) {
    let mut changes = tokio::task::JoinSet::new();
    if let Some(t) = broker.topic(topic) {
        for p in t.partitions() {
            // Subscribe first, then compare: a commit in between is not missed.
            let mut rx = p.subscribe_hw();
            rx.mark_unchanged();
            if seen
                .get(&p.index)
                .is_some_and(|&next| p.high_watermark() > next)
            {
                return;
            }
            changes.spawn(async move {
                let _ = rx.changed().await;
            });
        }
    }
    tokio::select! {
        _ = stop.changed() => {}
        _ = changes.join_next(), if !changes.is_empty() => {}
        () = tokio::time::sleep(Duration::from_secs(1)) => {}
    }
}
