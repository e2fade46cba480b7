//! What a [`Cluster`]'s nodes report, and waiting for it: `/status`, the
//! active controller, a broker's state as another node sees it, and metadata
//! convergence.

use super::*;

impl Cluster {
    /// `GET /v1/cluster` of node `id` (which must be live: a paused node would
    /// hold the request until the read timeout).
    ///
    /// # Errors
    /// The node is not live, the request failed, or the body is not JSON.
    pub fn status(&self, id: i32) -> Result<Value> {
        let n = self.node(id)?;
        if n.state() != NodeState::Running {
            bail!("node {id} is {:?}; its status cannot be read", n.state());
        }
        let body = http_get(n.admin, "/v1/cluster")?;
        serde_json::from_str(&body).with_context(|| format!("node {id}: /v1/cluster is {body:?}"))
    }

    /// `/v1/cluster` of every live node.
    ///
    /// # Errors
    /// As [`Cluster::status`].
    pub fn statuses(&self) -> Result<BTreeMap<i32, Value>> {
        self.live()
            .into_iter()
            .map(|id| Ok((id, self.status(id)?)))
            .collect()
    }

    /// The active controller and its epoch, if every live node names the same
    /// one (and it is itself live or at least named).
    ///
    /// # Errors
    /// A status could not be read, a node knows no active controller, or the
    /// live nodes disagree.
    pub fn active_controller(&self) -> Result<(i32, u64)> {
        let mut seen = BTreeMap::new();
        for (id, s) in self.statuses()? {
            let active = s["controller"]["active"].as_i64();
            let epoch = s["controller"]["epoch"].as_u64();
            match (active, epoch) {
                (Some(a), Some(e)) => {
                    seen.insert(id, (i32::try_from(a)?, e));
                }
                _ => bail!("node {id} knows no active controller: {}", s["controller"]),
            }
        }
        let mut views = seen.values();
        let first = *views
            .next()
            .ok_or_else(|| anyhow!("no live node to ask for the active controller"))?;
        if views.any(|v| *v != first) {
            bail!("live nodes disagree on the active controller (node → (id, epoch)): {seen:?}");
        }
        Ok(first)
    }

    /// Wait until every live node agrees on an active controller that
    /// satisfies `pred(id, epoch)`; returns it.
    ///
    /// # Errors
    /// The deadline passed.
    pub fn wait_active_controller(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(i32, u64) -> bool,
    ) -> Result<(i32, u64)> {
        let mut found = None;
        wait_until(what, timeout, || {
            let (id, epoch) = self.active_controller()?;
            if pred(id, epoch) {
                found = Some((id, epoch));
                Ok(true)
            } else {
                bail!("active controller is {id} at epoch {epoch}")
            }
        })?;
        found.ok_or_else(|| anyhow!("unreachable: wait succeeded without a controller"))
    }

    /// The state node `observer` reports for broker `broker` ("unfenced",
    /// "fenced", "shutting_down"), `None` if it lists no such broker.
    ///
    /// # Errors
    /// As [`Cluster::status`].
    pub fn broker_state(&self, observer: i32, broker: i32) -> Result<Option<String>> {
        Ok(broker_state_in(&self.status(observer)?, broker))
    }

    /// Wait until every live node reports broker `broker` in `state`.
    ///
    /// # Errors
    /// The deadline passed.
    pub fn wait_broker_state(&self, broker: i32, state: &str, timeout: Duration) -> Result<()> {
        wait_until(
            &format!("every live node to report broker {broker} {state}"),
            timeout,
            || {
                for (id, s) in self.statuses()? {
                    let got = broker_state_in(&s, broker);
                    if got.as_deref() != Some(state) {
                        bail!("node {id} reports broker {broker} as {got:?}");
                    }
                }
                Ok(true)
            },
        )
    }

    /// Wait until every live node has applied and published the same metadata
    /// offset with the same image hash, all of them see the same active
    /// controller, and that offset is the end of the active controller's log.
    /// Returns `(applied_offset, image_hash)`.
    ///
    /// # Errors
    /// The deadline passed; the error shows each node's metadata section.
    pub fn wait_converged(&self, timeout: Duration) -> Result<(u64, u64)> {
        let mut result = None;
        wait_until(
            "the live nodes' metadata images to converge",
            timeout,
            || {
                let statuses = self.statuses()?;
                let view = |s: &Value| {
                    let m = &s["metadata"];
                    (
                        m["applied_offset"].as_u64(),
                        m["published_offset"].as_u64(),
                        m["image_hash"].as_u64(),
                        s["controller"]["active"].as_i64(),
                        s["controller"]["epoch"].as_u64(),
                    )
                };
                let views: BTreeMap<i32, _> =
                    statuses.iter().map(|(id, s)| (*id, view(s))).collect();
                let first = views
                    .values()
                    .next()
                    .copied()
                    .ok_or_else(|| anyhow!("no live node"))?;
                let agree = views.values().all(|v| *v == first);
                let (Some(applied), Some(published), Some(hash), Some(active), Some(_)) = first
                else {
                    bail!(
                        "incomplete metadata (applied, published, hash, active, epoch): {views:?}"
                    );
                };
                if !agree || applied != published {
                    bail!("not converged (applied, published, hash, active, epoch): {views:?}");
                }
                // The active controller's log end, if it is live: nothing committed
                // beyond what everyone applied.
                if let Some(s) = statuses.get(&i32::try_from(active)?) {
                    let end = s["metadata"]["log_end_offset"].as_u64();
                    if end != Some(applied) {
                        bail!("active controller {active} log ends at {end:?}, applied {applied}");
                    }
                }
                result = Some((applied, hash));
                Ok(true)
            },
        )?;
        result.ok_or_else(|| anyhow!("unreachable: wait succeeded without a result"))
    }
}
