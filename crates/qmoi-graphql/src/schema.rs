//! The query, mutation and subscription roots. Reads come from the dashboard's cache and
//! store, as the REST API's do; every mutation is one of the shared admin actions
//! (`qmoi_dashboard::actions`: admin role, audit record, live event), so nothing here
//! decides differently from REST or gRPC.
//!
//! Errors carry `extensions.code`: `UNAUTHENTICATED` is answered by HTTP before GraphQL
//! runs; `FORBIDDEN` (read role, or no auth configured), `NOT_FOUND`, `BAD_USER_INPUT`,
//! `UNAVAILABLE` (no overview yet, or the supervisor could not act) and `INTERNAL` (the
//! history database).

use crate::types::{
    Acknowledgement, Alert, AlertEvent, AlertLevel, AlertState, Component, Label, MaintenanceWindow, Notifications,
    Overview, Point, Report, Series, SeriesName, Silence,
};
use async_graphql::{Context, Error, ErrorExtensions, Json, Object, Result, Subscription};
use futures_util::{Stream, StreamExt as _};
use qmoi_dashboard::Shared;
use qmoi_dashboard::actions::{self, ActionError, SupervisorAction};
use qmoi_dashboard::auth::Identity;
use qmoi_dashboard::hub::{Change, LiveEvent, unix_now};
use qmoi_dashboard::store::{Matcher, Range, Store, StoreError, parse_time};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

/// Who calls, from where: the data of every request and WebSocket connection.
#[derive(Clone)]
pub struct Caller {
    pub id: Identity,
    pub remote: SocketAddr,
}

pub struct QueryRoot;
pub struct MutationRoot;
pub struct SubscriptionRoot;

/// An error with its code in `extensions.code`.
pub(crate) fn coded(code: &'static str, message: impl Into<String>) -> Error {
    Error::new(message).extend_with(|_, e| e.set("code", code))
}

fn action_error(e: ActionError) -> Error {
    let code = match &e {
        ActionError::Forbidden(_) => "FORBIDDEN",
        ActionError::NotFound(_) => "NOT_FOUND",
        ActionError::Invalid(_) => "BAD_USER_INPUT",
        ActionError::Internal(_) => "INTERNAL",
        ActionError::Unavailable(_) => "UNAVAILABLE",
    };
    coded(code, e.to_string())
}

fn shared<'a>(ctx: &Context<'a>) -> Result<&'a Shared> {
    ctx.data::<Shared>()
}

/// The shared admin actions for this caller.
fn with_ctx<'a>(ctx: &Context<'a>) -> Result<actions::Ctx<'a>> {
    let c = ctx.data::<Caller>()?;
    Ok(shared(ctx)?.actions(&c.id, c.remote))
}

/// A store call on a blocking thread (SQLite must not hold an async worker).
async fn on_store<T: Send + 'static>(
    s: &Shared,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T> {
    let store = s.hub.store.clone();
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(coded("INTERNAL", e.to_string())),
        Err(e) => Err(coded("INTERNAL", e.to_string())),
    }
}

fn no_overview() -> Error {
    coded("UNAVAILABLE", "the supervisor has not produced a status yet")
}

#[Object]
impl QueryRoot {
    /// The overview: verdict, reasons, every component.
    async fn overview(&self, ctx: &Context<'_>) -> Result<Overview> {
        shared(ctx)?.hub.overview().map(Overview).ok_or_else(no_overview)
    }

    /// One component: its supervisor state and its latest report.
    async fn component(&self, ctx: &Context<'_>, id: String) -> Result<Component> {
        let s = shared(ctx)?;
        let o = s.hub.overview().ok_or_else(no_overview)?;
        let state = o.components.iter().find(|c| c.id == id).cloned();
        if state.is_none() && qmoi_core::component::find(&id).is_none() {
            return Err(coded("NOT_FOUND", format!("unknown component '{id}'")));
        }
        let report = s.hub.report(&id).map(|r| Report(r.report));
        Ok(Component { id, state, report })
    }

    /// Alerts: by default those firing now, with their acknowledgement and silence.
    /// `RESOLVED` lists the most recent ones that ended (at most `limit`).
    #[allow(clippy::too_many_arguments)]
    async fn alerts(
        &self,
        ctx: &Context<'_>,
        component: Option<String>,
        level: Option<AlertLevel>,
        #[graphql(default_with = "AlertState::Firing")] state: AlertState,
        acknowledged: Option<bool>,
        silenced: Option<bool>,
        #[graphql(default = 100, validator(minimum = 1, maximum = 1000))] limit: usize,
    ) -> Result<Vec<Alert>> {
        let s = shared(ctx)?;
        let now = unix_now();
        let list: Vec<Alert> = match state {
            AlertState::Firing => {
                let marks = on_store(s, move |st| st.marks(now)).await?;
                s.hub.firing().iter().map(|f| Alert::firing(f, &marks)).collect()
            }
            AlertState::Resolved => {
                let past = on_store(s, move |st| st.recent_alerts(1000)).await?;
                past.iter().filter(|p| p.ended_at.is_some()).map(Alert::past).collect()
            }
        };
        Ok(list
            .into_iter()
            .filter(|a| component.as_ref().is_none_or(|c| *c == a.component))
            .filter(|a| level.is_none_or(|l| l == a.level))
            .filter(|a| acknowledged.is_none_or(|k| k == a.acknowledged.is_some()))
            .filter(|a| silenced.is_none_or(|k| k == a.silenced))
            .take(limit)
            .collect())
    }

    /// Maintenance windows in force or to come.
    async fn maintenance(&self, ctx: &Context<'_>) -> Result<Vec<MaintenanceWindow>> {
        let now = unix_now();
        let list = on_store(shared(ctx)?, move |st| st.maintenance(now)).await?;
        Ok(list.iter().map(|w| MaintenanceWindow::of(w, now)).collect())
    }

    /// The silences in force.
    async fn silences(&self, ctx: &Context<'_>) -> Result<Vec<Silence>> {
        let now = unix_now();
        Ok(on_store(shared(ctx)?, move |st| st.active_silences(now)).await?.iter().map(Silence::from).collect())
    }

    /// A metric's history (`metric` exactly, or every series of that name when it has no
    /// labels), at the stored resolution that fits the range, averaged over `step`
    /// seconds. `from`/`to`: unix seconds or RFC 3339; default the last hour.
    async fn history(
        &self,
        ctx: &Context<'_>,
        metric: String,
        component: Option<String>,
        from: Option<String>,
        to: Option<String>,
        step: Option<i64>,
    ) -> Result<Vec<Series>> {
        let now = unix_now();
        let range = Range::parse(from.as_deref(), to.as_deref(), step, now).map_err(|e| coded("BAD_USER_INPUT", e))?;
        let series = on_store(shared(ctx)?, move |st| st.query(component.as_deref(), &metric, &range, now)).await?;
        Ok(series
            .into_iter()
            .map(|s| Series {
                component: s.component,
                metric: s.metric,
                points: s.points.into_iter().map(|(t, value)| Point { t, value }).collect(),
            })
            .collect())
    }

    /// Every metric with history.
    async fn series(&self, ctx: &Context<'_>) -> Result<Vec<SeriesName>> {
        let list = on_store(shared(ctx)?, Store::list_series).await?;
        Ok(list.into_iter().map(|(component, metric)| SeriesName { component, metric }).collect())
    }

    /// The notifier's recent deliveries, dead letters and backlog (null before its first
    /// report, or when it is not configured).
    async fn notifications(&self, ctx: &Context<'_>) -> Result<Option<Notifications>> {
        let Some(r) = shared(ctx)?.hub.report("notification") else { return Ok(None) };
        let mut n: Notifications = serde_json::from_str(r.report.details.get())
            .map_err(|e| coded("INTERNAL", format!("the notifier's report details: {e}")))?;
        n.report_at = crate::types::rfc3339(&r.report.generated_at);
        Ok(Some(n))
    }

    /// The effective configuration of every component, secrets masked.
    async fn config(&self, ctx: &Context<'_>) -> Result<Json<serde_json::Value>> {
        Ok(Json(shared(ctx)?.backend.config()))
    }
}

#[Object]
impl MutationRoot {
    /// Acknowledge a firing alert (admin).
    async fn acknowledge(
        &self,
        ctx: &Context<'_>,
        fingerprint: String,
        #[graphql(default)] comment: String,
    ) -> Result<Acknowledgement> {
        let a = with_ctx(ctx)?.acknowledge(&fingerprint, comment).await.map_err(action_error)?;
        Ok(Acknowledgement::of(&fingerprint, &a))
    }

    /// Silence the alerts matched by every given field (at least one) for `duration`
    /// (`"2h"`, `"30m"`, seconds) or until `expiresAt` (unix seconds or RFC 3339) (admin).
    #[allow(clippy::too_many_arguments)]
    async fn silence(
        &self,
        ctx: &Context<'_>,
        component: Option<String>,
        fingerprint: Option<String>,
        level: Option<AlertLevel>,
        duration: Option<String>,
        expires_at: Option<String>,
        #[graphql(default)] comment: String,
    ) -> Result<Silence> {
        let c = with_ctx(ctx)?;
        c.require_admin().map_err(action_error)?;
        let now = unix_now();
        let bad = |m: String| coded("BAD_USER_INPUT", m);
        let expires = match (duration, expires_at) {
            (Some(d), None) => {
                let d = qmoi_core::config::ConfigDuration::parse(&d).map_err(|e| bad(format!("duration: {e}")))?;
                now.saturating_add(i64::try_from(d.get().as_secs()).unwrap_or(i64::MAX / 2))
            }
            (None, Some(t)) => parse_time(Some(&t), now, "expiresAt").map_err(bad)?,
            _ => return Err(bad("give exactly one of duration (e.g. \"2h\") or expiresAt".into())),
        };
        let m = Matcher { component, fingerprint, level: level.map(|l| l.as_str().to_string()) };
        let sid = c.silence(m.clone(), expires, comment.clone()).await.map_err(action_error)?;
        Ok(Silence::from(&qmoi_dashboard::store::Silence {
            id: sid,
            matcher: m,
            created_by: c.id.name.clone(),
            created_at: now,
            expires_at: expires,
            comment,
        }))
    }

    /// End a silence (admin). Returns its id.
    async fn unsilence(&self, ctx: &Context<'_>, id: i64) -> Result<i64> {
        with_ctx(ctx)?.unsilence(id).await.map_err(action_error)?;
        Ok(id)
    }

    /// Open a maintenance window for `component` (or only its `subject`: an endpoint, a
    /// heartbeat check; or only what carries all of `labels`, of every component when
    /// `component` is null) for `duration` (`"2h"`, seconds) from `startsAt` (unix
    /// seconds or RFC 3339; default now) (admin).
    #[allow(clippy::too_many_arguments)] // each is a GraphQL argument
    async fn open_maintenance(
        &self,
        ctx: &Context<'_>,
        component: Option<String>,
        duration: String,
        reason: String,
        starts_at: Option<String>,
        subject: Option<String>,
        labels: Option<Vec<Label>>,
    ) -> Result<MaintenanceWindow> {
        let component = component.unwrap_or_default();
        let labels: qmoi_core::report::Labels =
            labels.unwrap_or_default().into_iter().map(|l| (l.name, l.value)).collect();
        let now = unix_now();
        let bad = |m: String| coded("BAD_USER_INPUT", m);
        let start = match starts_at {
            None => now,
            Some(t) => parse_time(Some(&t), now, "startsAt").map_err(bad)?,
        };
        let d = qmoi_core::config::ConfigDuration::parse(&duration).map_err(|e| bad(format!("duration: {e}")))?;
        let end = start.saturating_add(i64::try_from(d.get().as_secs()).unwrap_or(i64::MAX / 2));
        let window = qmoi_dashboard::actions::NewWindow {
            component: &component,
            subject: subject.as_deref(),
            labels: &labels,
            starts_at: start,
            ends_at: end,
            reason: &reason,
        };
        let w = with_ctx(ctx)?.add_maintenance(window).await.map_err(action_error)?;
        Ok(MaintenanceWindow::of(&w, now))
    }

    /// End maintenance window `id` now (admin). Returns its id.
    async fn end_maintenance(&self, ctx: &Context<'_>, id: i64) -> Result<i64> {
        with_ctx(ctx)?.end_maintenance(id).await.map_err(action_error)?;
        Ok(id)
    }

    /// Restart one component, as `qmoi-supervisor restart-component` (admin).
    async fn restart_component(&self, ctx: &Context<'_>, id: String) -> Result<String> {
        with_ctx(ctx)?.restart(&id).await.map_err(action_error)
    }

    /// Restart every enabled component, as `qmoi-supervisor restart-all` (admin).
    async fn restart_all(&self, ctx: &Context<'_>) -> Result<String> {
        with_ctx(ctx)?.supervisor(SupervisorAction::RestartAll).await.map_err(action_error)
    }

    /// Clear restart counters and failures, as `qmoi-supervisor reset` (admin).
    async fn reset(&self, ctx: &Context<'_>) -> Result<String> {
        with_ctx(ctx)?.supervisor(SupervisorAction::Reset).await.map_err(action_error)
    }
}

/// The hub's events as a stream; `Err` when this subscriber lagged behind and missed some.
fn events(s: &Shared) -> impl Stream<Item = Result<LiveEvent, BroadcastStreamRecvError>> + Send + use<> {
    BroadcastStream::new(s.hub.subscribe())
}

#[Subscription]
impl SubscriptionRoot {
    /// The overview now, then again on every change.
    async fn overview(&self, ctx: &Context<'_>) -> Result<impl Stream<Item = Overview> + use<>> {
        let s = shared(ctx)?;
        let hub = s.hub.clone();
        let first = hub.overview();
        // A subscriber that lagged behind catches up with the current overview.
        let changes = events(s).filter_map(move |e| {
            let o = match e {
                Ok(LiveEvent { change: Change::Overview, .. }) | Err(_) => hub.overview(),
                Ok(_) => None,
            };
            std::future::ready(o)
        });
        Ok(futures_util::stream::iter(first).chain(changes).map(Overview))
    }

    /// Alerts as they change: fired, resolved, acknowledged, silenced, unsilenced (of one
    /// component, or of one level, when given).
    async fn alerts(
        &self,
        ctx: &Context<'_>,
        component: Option<String>,
        level: Option<AlertLevel>,
    ) -> Result<impl Stream<Item = AlertEvent> + use<>> {
        let s = shared(ctx)?;
        Ok(events(s).filter_map(move |e| {
            let ev = match e {
                Ok(LiveEvent { change: Change::Alert(a), .. }) => {
                    // Fired alerts carry their component and level; the other changes of
                    // an alert name it by fingerprint (`<component>/<subject>`); silences
                    // match by matcher and always go out.
                    let keep = match (&a.alert, &a.fingerprint) {
                        (Some(f), _) => {
                            component.as_ref().is_none_or(|c| *c == f.component)
                                && level.is_none_or(|l| l == AlertLevel::from(f.alert.level))
                        }
                        (None, Some(fp)) => {
                            component.as_ref().is_none_or(|c| fp.split_once('/').is_some_and(|(of, _)| of == c))
                        }
                        (None, None) => true,
                    };
                    keep.then(|| AlertEvent::from(a.as_ref()))
                }
                // Events missed by a slow subscriber are gone; the stream goes on.
                _ => None,
            };
            std::future::ready(ev)
        }))
    }

    /// A component's reports as they are written.
    async fn reports(&self, ctx: &Context<'_>, component: String) -> Result<impl Stream<Item = Report> + use<>> {
        let s = shared(ctx)?;
        if qmoi_core::component::find(&component).is_none() {
            return Err(coded("NOT_FOUND", format!("unknown component '{component}'")));
        }
        let hub = s.hub.clone();
        let wanted: Arc<str> = Arc::from(component.as_str());
        Ok(events(s).filter_map(move |e| {
            let r = match e {
                Ok(LiveEvent { change: Change::Report(c), .. }) if c == wanted => {
                    hub.report(&c).map(|r| Report(r.report))
                }
                _ => None,
            };
            std::future::ready(r)
        }))
    }
}
