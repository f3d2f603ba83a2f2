//! The `qmoi.v1.Monitor` service. Every call is rate limited per client address and
//! authenticated like the REST API (`authorization` metadata: `Bearer …` or `Basic …`);
//! errors are gRPC status codes: UNAUTHENTICATED, PERMISSION_DENIED, NOT_FOUND,
//! INVALID_ARGUMENT, RESOURCE_EXHAUSTED (rate limit, lockout), UNAVAILABLE (no
//! overview yet), INTERNAL (the history database).

use crate::{convert, pb};
use qmoi_dashboard::Shared;
use qmoi_dashboard::actions::{self, ActionError};
use qmoi_dashboard::auth::{AuthOutcome, Identity};
use qmoi_dashboard::hub::{Change, Hub, LiveEvent};
use qmoi_dashboard::store::{Matcher, Range};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// A watch stream with nothing to send for this long sends a heartbeat (proxies and
/// clients see a live stream).
const HEARTBEAT: Duration = Duration::from_secs(15);
/// Points per `HistoryChunk`.
const CHUNK_POINTS: usize = 1000;

pub struct MonitorService {
    shared: Shared,
    stopping: watch::Receiver<bool>,
}

type Stream2<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

impl MonitorService {
    pub fn new(shared: Shared, stopping: watch::Receiver<bool>) -> Self {
        Self { shared, stopping }
    }

    fn remote<T>(req: &Request<T>) -> SocketAddr {
        req.remote_addr().unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0))
    }

    /// Rate limit, then authenticate, as the REST API does for every route.
    async fn identify<T>(&self, req: &Request<T>) -> Result<Identity, Status> {
        let ip = Self::remote(req).ip();
        if let Err(wait) = self.shared.limiter.allow(ip) {
            return Err(Status::resource_exhausted(format!("rate limited: retry in {wait:.1} s")));
        }
        let header = req.metadata().get("authorization").and_then(|v| v.to_str().ok());
        match self.shared.auth.check(header, &self.shared.auth_failures, ip).await {
            AuthOutcome::Authenticated(id) => Ok(id),
            AuthOutcome::LockedOut(wait) => Err(Status::resource_exhausted(format!(
                "too many failed authentications from this address; wait {wait} s (valid tokens still work)"
            ))),
            AuthOutcome::Busy => Err(Status::resource_exhausted("too many password checks at once; try again shortly")),
            AuthOutcome::Missing => Err(Status::unauthenticated(
                "authentication required: authorization metadata with a bearer token or basic auth",
            )),
            AuthOutcome::Invalid => {
                tracing::warn!(remote = %ip, "Failed gRPC authentication.");
                Err(Status::unauthenticated("authentication failed"))
            }
        }
    }

    /// The shared admin actions for this call.
    fn ctx<'a>(&'a self, id: &'a Identity, remote: SocketAddr) -> actions::Ctx<'a> {
        self.shared.actions(id, remote)
    }

    fn overview(&self) -> Result<pb::Overview, Status> {
        self.shared
            .hub
            .overview()
            .map(|o| convert::overview(&o))
            .ok_or_else(|| Status::unavailable("the supervisor has not produced a status yet"))
    }
}

/// An action's refusal as a status code.
fn status(e: ActionError) -> Status {
    match e {
        ActionError::Forbidden(m) => Status::permission_denied(m),
        ActionError::NotFound(m) => Status::not_found(m),
        ActionError::Invalid(m) => Status::invalid_argument(m),
        ActionError::Internal(m) => Status::internal(m),
        ActionError::Unavailable(m) => Status::unavailable(m),
    }
}

/// A server stream fed by the hub's live events: `first` (if any), then what `pick` makes
/// of each event (`None` given: this receiver lagged behind and missed some), and
/// `heartbeat()` whenever nothing was sent for `quiet` (events skipped by `pick` do not
/// count: a stream that only skips still beats). It ends when the client goes or the
/// server stops. A small buffer: a client that stops reading holds one task and a few
/// messages.
fn live_stream<T: Send + 'static>(
    hub: &Hub,
    mut stopping: watch::Receiver<bool>,
    first: Option<T>,
    pick: impl Fn(Option<&LiveEvent>) -> Option<T> + Send + 'static,
    heartbeat: impl Fn() -> T + Send + 'static,
    quiet: Duration,
) -> Stream2<T> {
    use tokio::sync::broadcast::error::RecvError;
    let mut events = hub.subscribe();
    let (tx, rx) = mpsc::channel::<Result<T, Status>>(8);
    tokio::spawn(async move {
        if let Some(m) = first
            && tx.send(Ok(m)).await.is_err()
        {
            return;
        }
        let mut quiet_until = tokio::time::Instant::now() + quiet;
        loop {
            let msg = tokio::select! {
                ev = events.recv() => match ev {
                    Ok(e) => pick(Some(&e)),
                    Err(RecvError::Lagged(_)) => pick(None),
                    Err(RecvError::Closed) => break,
                },
                () = tokio::time::sleep_until(quiet_until) => Some(heartbeat()),
                _ = stopping.wait_for(|v| *v) => break,
            };
            if let Some(m) = msg {
                if tx.send(Ok(m)).await.is_err() {
                    break;
                }
                quiet_until = tokio::time::Instant::now() + quiet;
            }
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

#[tonic::async_trait]
impl pb::monitor_server::Monitor for MonitorService {
    async fn get_overview(&self, req: Request<pb::GetOverviewRequest>) -> Result<Response<pb::Overview>, Status> {
        self.identify(&req).await?;
        Ok(Response::new(self.overview()?))
    }

    async fn get_component(&self, req: Request<pb::GetComponentRequest>) -> Result<Response<pb::Component>, Status> {
        self.identify(&req).await?;
        let id = req.into_inner().id;
        let o = self.shared.hub.overview().ok_or_else(|| Status::unavailable("no status yet"))?;
        let state = o.components.iter().find(|c| c.id == id);
        if state.is_none() && qmoi_core::component::find(&id).is_none() {
            return Err(Status::not_found(format!("unknown component '{id}'")));
        }
        Ok(Response::new(pb::Component {
            configured: state.is_some(),
            state: state.map(convert::component_state),
            report: self.shared.hub.report(&id).map(|r| convert::report(&r.report)),
            id,
        }))
    }

    async fn list_alerts(
        &self,
        req: Request<pb::ListAlertsRequest>,
    ) -> Result<Response<pb::ListAlertsResponse>, Status> {
        self.identify(&req).await?;
        let q = req.into_inner();
        if !["", "info", "warning", "critical"].contains(&q.level.as_str()) {
            return Err(Status::invalid_argument(format!(
                "level must be info, warning or critical, got '{}'",
                q.level
            )));
        }
        let store = self.shared.hub.store.clone();
        let now = qmoi_dashboard::hub::unix_now();
        let marks = tokio::task::spawn_blocking(move || store.marks(now)).await.map_err(internal)?.map_err(internal)?;
        let alerts = self
            .shared
            .hub
            .firing()
            .iter()
            .filter(|f| q.component.is_empty() || f.component == q.component)
            .filter(|f| q.level.is_empty() || f.alert.level.as_str() == q.level)
            .map(|f| convert::firing(f, &marks))
            .collect();
        Ok(Response::new(pb::ListAlertsResponse { alerts }))
    }

    type QueryHistoryStream = Stream2<pb::HistoryChunk>;

    async fn query_history(
        &self,
        req: Request<pb::QueryHistoryRequest>,
    ) -> Result<Response<Self::QueryHistoryStream>, Status> {
        self.identify(&req).await?;
        let q = req.into_inner();
        if q.metric.is_empty() {
            return Err(Status::invalid_argument("metric is required"));
        }
        let now = qmoi_dashboard::hub::unix_now();
        // 0: the default (the last hour, the stored resolution).
        let given = |t: i64| (t != 0).then(|| t.to_string());
        let range =
            Range::parse(given(q.from).as_deref(), given(q.to).as_deref(), (q.step != 0).then_some(q.step), now)
                .map_err(Status::invalid_argument)?;
        let store = self.shared.hub.store.clone();
        let component = (!q.component.is_empty()).then_some(q.component);
        let series = tokio::task::spawn_blocking(move || store.query(component.as_deref(), &q.metric, &range, now))
            .await
            .map_err(internal)?
            .map_err(internal)?;
        let chunks: Vec<Result<pb::HistoryChunk, Status>> = series
            .into_iter()
            .flat_map(|s| {
                let points: Vec<pb::Point> = s.points.iter().map(|(t, v)| pb::Point { t: *t, value: *v }).collect();
                let (component, metric) = (s.component, s.metric);
                points
                    .chunks(CHUNK_POINTS)
                    .map(|c| {
                        Ok(pb::HistoryChunk {
                            component: component.clone(),
                            metric: metric.clone(),
                            points: c.to_vec(),
                        })
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }

    type WatchOverviewStream = Stream2<pb::OverviewEvent>;

    async fn watch_overview(
        &self,
        req: Request<pb::WatchOverviewRequest>,
    ) -> Result<Response<Self::WatchOverviewStream>, Status> {
        self.identify(&req).await?;
        let first = pb::OverviewEvent { overview: Some(self.overview()?), heartbeat: false };
        let hub = self.shared.hub.clone();
        // Only overview changes; a receiver that lagged behind catches up with the current one.
        let pick = move |e: Option<&LiveEvent>| {
            if e.is_some_and(|e| !matches!(e.change, Change::Overview)) {
                return None;
            }
            hub.overview().map(|o| pb::OverviewEvent { overview: Some(convert::overview(&o)), heartbeat: false })
        };
        let heartbeat = || pb::OverviewEvent { overview: None, heartbeat: true };
        Ok(Response::new(live_stream(&self.shared.hub, self.stopping.clone(), Some(first), pick, heartbeat, HEARTBEAT)))
    }

    type WatchAlertsStream = Stream2<pb::AlertEvent>;

    async fn watch_alerts(
        &self,
        req: Request<pb::WatchAlertsRequest>,
    ) -> Result<Response<Self::WatchAlertsStream>, Status> {
        self.identify(&req).await?;
        // Events missed by a slow client (lagged: `None`) are gone; the stream goes on.
        let pick = |e: Option<&LiveEvent>| match e.map(|e| &e.change) {
            Some(Change::Alert(a)) => Some(convert::alert_event(a)),
            _ => None,
        };
        let heartbeat = || pb::AlertEvent { heartbeat: true, ..pb::AlertEvent::default() };
        Ok(Response::new(live_stream(&self.shared.hub, self.stopping.clone(), None, pick, heartbeat, HEARTBEAT)))
    }

    async fn acknowledge(
        &self,
        req: Request<pb::AcknowledgeRequest>,
    ) -> Result<Response<pb::AcknowledgeResponse>, Status> {
        let id = self.identify(&req).await?;
        let remote = Self::remote(&req);
        let q = req.into_inner();
        let a = self.ctx(&id, remote).acknowledge(&q.fingerprint, q.comment).await.map_err(status)?;
        Ok(Response::new(pb::AcknowledgeResponse { fingerprint: q.fingerprint, by: a.by, at: a.at }))
    }

    async fn silence(&self, req: Request<pb::SilenceRequest>) -> Result<Response<pb::SilenceResponse>, Status> {
        let id = self.identify(&req).await?;
        let remote = Self::remote(&req);
        let q = req.into_inner();
        if q.duration_s <= 0 {
            return Err(Status::invalid_argument("duration_s must be greater than 0"));
        }
        let expires_at = qmoi_dashboard::hub::unix_now().saturating_add(q.duration_s);
        let m = Matcher { component: q.component, fingerprint: q.fingerprint, level: q.level };
        let sid = self.ctx(&id, remote).silence(m, expires_at, q.comment).await.map_err(status)?;
        Ok(Response::new(pb::SilenceResponse { id: sid, expires_at }))
    }

    async fn restart_component(
        &self,
        req: Request<pb::RestartComponentRequest>,
    ) -> Result<Response<pb::RestartComponentResponse>, Status> {
        let id = self.identify(&req).await?;
        let remote = Self::remote(&req);
        let message = self.ctx(&id, remote).restart(&req.into_inner().id).await.map_err(status)?;
        Ok(Response::new(pb::RestartComponentResponse { message }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt as _;

    /// Regression: the heartbeat's timer restarted on every hub event, also on those the
    /// stream skips, so a WatchAlerts client of a stack whose reports change every second
    /// never got one.
    #[tokio::test]
    async fn a_stream_that_only_skips_events_still_beats() {
        let dir = tempfile::tempdir().unwrap();
        let store = qmoi_dashboard::store::Store::open(&dir.path().join("h.db"), Default::default()).unwrap();
        let hub = std::sync::Arc::new(Hub::new(std::sync::Arc::new(store), dir.path().to_path_buf()));
        let (_stop_tx, stop) = watch::channel(false);
        use qmoi_dashboard::hub::{AlertAction, AlertChange};
        let pick = |e: Option<&LiveEvent>| match e.map(|e| &e.change) {
            Some(Change::Alert(a)) if a.action == AlertAction::Resolved => Some("resolved".to_string()),
            _ => None,
        };
        let mut s = live_stream(&hub, stop, None, pick, || "beat".to_string(), Duration::from_millis(300));
        let noise = hub.clone();
        let publisher = tokio::spawn(async move {
            loop {
                noise.publish_alert(AlertChange { silence: Some(1), ..AlertChange::new(AlertAction::Silenced) });
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let got = tokio::time::timeout(Duration::from_secs(3), s.next()).await;
        publisher.abort();
        assert_eq!(got.ok().flatten().map(|r| r.unwrap()), Some("beat".to_string()));
        hub.publish_alert(AlertChange { fingerprint: Some("a/b".into()), ..AlertChange::new(AlertAction::Resolved) });
        let got = tokio::time::timeout(Duration::from_secs(3), s.next()).await;
        assert_eq!(got.ok().flatten().map(|r| r.unwrap()), Some("resolved".to_string()));
    }
}
