//! This broker's membership: registration with the active controller,
//! heartbeats, and controlled shutdown (Kafka's BrokerLifecycleManager).
//!
//! A broker registers with a fresh incarnation id at every start and is
//! fenced until its heartbeats show it has applied the metadata log up to its
//! registration. Heartbeats go out every `broker.heartbeat.interval.ms`; when
//! the controller no longer knows the broker's epoch (it was replaced, say
//! after a long pause), the broker registers again. SIGTERM asks for
//! controlled shutdown: the controller moves leadership away, and the broker
//! exits once it leads nothing.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use brook_protocol::codec::Uuid;
use tracing::{info, warn};

use super::rpc::{ControllerRequest, ReplyBody, WireEndpoint};
use super::Controller;
use crate::error::BrokerError;

/// This broker's registration state.
#[derive(Debug)]
pub struct Membership {
    pub id: i32,
    pub incarnation: Uuid,
    endpoints: Vec<WireEndpoint>,
    rack: Option<String>,
    epoch: AtomicI64,
    fenced: AtomicBool,
    shutting_down: AtomicBool,
    /// Hosted partitions (topic id, index) whose log or log directory
    /// failed, reported with every heartbeat so the controller moves their
    /// leadership and ISR membership to healthy replicas.
    offline: std::sync::Mutex<Vec<(String, i32)>>,
}

impl Membership {
    /// Replace the partitions reported offline.
    pub fn set_offline_partitions(&self, parts: Vec<(String, i32)>) {
        *self
            .offline
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = parts;
    }

    /// The partitions reported offline.
    pub fn offline_partitions(&self) -> Vec<(String, i32)> {
        self.offline
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn new(id: i32, endpoints: Vec<WireEndpoint>, rack: Option<String>) -> Self {
        Self {
            id,
            incarnation: Uuid::from_bytes(rand::random()),
            endpoints,
            rack,
            epoch: AtomicI64::new(-1),
            fenced: AtomicBool::new(true),
            shutting_down: AtomicBool::new(false),
            offline: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The broker epoch the controller gave this incarnation (-1: none yet).
    pub fn epoch(&self) -> i64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::Acquire)
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }
}

impl Controller {
    /// Register `m` with the active controller.
    ///
    /// # Errors
    /// No controller reachable; the controller refused.
    pub async fn register(&self, m: &Membership) -> Result<(), BrokerError> {
        let reply = self
            .submit(ControllerRequest::Register {
                id: m.id,
                incarnation: m.incarnation.to_string(),
                endpoints: m.endpoints.clone(),
                rack: m.rack.clone(),
                learner_addr: self.learner_addr(),
            })
            .await?;
        if let ReplyBody::Registered { epoch } = reply {
            m.epoch.store(epoch, Ordering::Release);
            m.fenced.store(true, Ordering::Release);
            info!(broker = m.id, epoch, "registered with the controller");
        }
        Ok(())
    }

    /// Send one heartbeat; re-register when the controller forgot us.
    ///
    /// # Errors
    /// No controller reachable.
    pub async fn heartbeat(&self, m: &Membership) -> Result<(bool, bool), BrokerError> {
        let req = ControllerRequest::Heartbeat {
            id: m.id,
            epoch: m.epoch(),
            applied: self.applied().offset,
            shutting_down: m.is_shutting_down(),
            offline: m.offline_partitions(),
        };
        match self.submit(req).await {
            Ok(ReplyBody::Heartbeat {
                fenced,
                shutdown_ready,
            }) => {
                if m.fenced.swap(fenced, Ordering::AcqRel) != fenced {
                    info!(broker = m.id, fenced, "broker fencing changed");
                }
                Ok((fenced, shutdown_ready))
            }
            Ok(_) => Err(BrokerError::Internal("unexpected heartbeat reply")),
            Err(BrokerError::StaleBrokerEpoch) => {
                warn!(
                    broker = m.id,
                    "controller no longer knows this broker's epoch: registering again"
                );
                self.register(m).await?;
                Ok((true, false))
            }
            Err(e) => Err(e),
        }
    }

    /// Heartbeat until the controller unfences this broker.
    ///
    /// # Errors
    /// Not unfenced within `timeout`.
    pub async fn wait_unfenced(
        &self,
        m: &Membership,
        timeout: Duration,
    ) -> Result<(), BrokerError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut applied = self.subscribe();
        loop {
            match self.heartbeat(m).await {
                Ok((false, _)) => return Ok(()),
                Ok(_) => {}
                Err(e) => warn!(error = %e, "heartbeat failed"),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(BrokerError::Timeout);
            }
            // Unfencing waits for this node to apply more of the log.
            let _ = tokio::time::timeout(Duration::from_millis(100), applied.changed()).await;
        }
    }

    /// Ask for controlled shutdown and wait (up to `timeout`) until this
    /// broker leads no partition.
    pub async fn controlled_shutdown(&self, m: &Membership, timeout: Duration) {
        m.shutting_down.store(true, Ordering::Release);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut applied = self.subscribe();
        loop {
            // Bounded as a whole: without a controller quorum (the last
            // nodes stopping) there is nobody to move leadership to.
            match tokio::time::timeout_at(deadline, self.heartbeat(m)).await {
                Ok(Ok((_, true))) => {
                    info!(broker = m.id, "controlled shutdown: leadership moved away");
                    return;
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => warn!(error = %e, "controlled shutdown heartbeat failed"),
                Err(_) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                warn!(
                    broker = m.id,
                    "controlled shutdown did not finish in time; stopping anyway"
                );
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), applied.changed()).await;
        }
    }
}

/// Heartbeat every `interval` while the controller and the membership live.
pub async fn heartbeat_loop(controller: Weak<Controller>, m: Arc<Membership>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(c) = controller.upgrade() else {
            return;
        };
        if m.is_shutting_down() {
            // Controlled shutdown sends its own heartbeats.
            return;
        }
        if let Err(e) = c.heartbeat(&m).await {
            warn!(error = %e, "broker heartbeat failed");
        }
    }
}
