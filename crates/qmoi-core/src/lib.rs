//! # qmoi-core
//!
//! The shared foundation of every QMOI binary:
//!
//! - [`report`]: the report wire format (schema_version 1, docs/ARCHITECTURE.md), the atomic writer,
//!   history files with pruning, and a reader that never panics on a bad file.
//! - [`config`]: TOML/JSON config loading, `${ENV}` substitution, secrets, validation that
//!   collects every problem and names the file, line/column and key.
//! - [`status`], [`threshold`], [`alerts`]: statuses with "worst of" ordering,
//!   warning/critical thresholds, alerts with stable fingerprints and `since`.
//! - [`cli`], [`logging`], [`runner`]: the common flags, rotating log files, and the
//!   monitor run loop, so a monitor binary is a few lines of `main`.
//! - [`follow`]: following a log file across rotation, line by line.
//! - [`human`]: durations, sizes and clipping for people to read.
//! - [`overview`]: the supervisor's view of the stack (states, verdict) as served and stored.
//! - [`child`]: spawning commands that die with the process that started them.
//! - [`component`]: the component table (ids, binaries, file names, priorities).
//! - `serve` (feature `server`): the bounded accept loop of QMOI's HTTP servers.
//! - `slo` (feature `slo`): service level objectives, error budgets, burn-rate alerts and
//!   the monthly report, shared by the endpoint and heartbeat monitors.
//!
//! Monitors know only the report schema: nothing here speaks to the supervisor.

pub mod alerts;
pub mod child;
pub mod cli;
pub mod component;
pub mod config;
#[cfg(feature = "cron")]
pub mod cron;
pub mod follow;
#[cfg(feature = "http")]
pub mod http;
pub mod human;
pub mod logging;
#[cfg(feature = "sqlite")]
pub mod maintenance;
pub mod mem;
pub mod net;
pub mod overview;
pub mod procfs;
pub mod ratelimit;
pub mod report;
pub mod retry;
pub mod runner;
#[cfg(feature = "server")]
pub mod serve;
#[cfg(feature = "slo")]
pub mod slo;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod statefile;
pub mod stats;
pub mod status;
pub mod threshold;

pub use report::{Alert, CheckResult, Report};
pub use status::{AlertLevel, Severity, Status};
