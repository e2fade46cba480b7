//! Producer ids: handed out from blocks the active controller reserves in the
//! metadata log, so no id is ever given twice, across restarts and brokers.

use super::Broker;
use crate::controller::rpc::{ControllerRequest, ReplyBody};
use crate::error::BrokerError;

impl Broker {
    /// Hand out a new producer id, reserving ids on disk in blocks so a restart
    /// never reuses one.
    ///
    /// # Errors
    /// Storage failure while reserving a block.
    pub async fn allocate_producer_id(&self) -> Result<i64, BrokerError> {
        if let Ok(id) = self.take_reserved_id() {
            return Ok(id);
        }
        // One reservation at a time; the id counter's std lock is never
        // held across the request to the controller.
        let _guard = self.reserving.lock().await;
        if let Ok(id) = self.take_reserved_id() {
            return Ok(id);
        }
        let reply = self
            .controller
            .submit(ControllerRequest::AllocateProducerIds {
                id: self.node_id(),
                epoch: self.membership.epoch(),
            })
            .await?;
        let ReplyBody::ProducerIds { start, len } = reply else {
            return Err(BrokerError::Internal("unexpected producer id reply"));
        };
        *self
            .producer_ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (start + 1, start + len);
        Ok(start)
    }

    /// The next id of the reserved block, or `Err(end of the block)` when it is used up.
    fn take_reserved_id(&self) -> Result<i64, i64> {
        let mut ids = self
            .producer_ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if ids.0 < ids.1 {
            ids.0 += 1;
            Ok(ids.0 - 1)
        } else {
            Err(ids.1)
        }
    }
}
