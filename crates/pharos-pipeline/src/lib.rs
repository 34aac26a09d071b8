//! Pharos' configuration tree and, as they arrive, its pipeline pieces
//! (processors, connectors, exporters).
//!
//! The configuration has the OpenTelemetry Collector's shape — `receivers`,
//! `processors`, `exporters`, `service.pipelines` — plus Pharos' own
//! sections: `storage`, `retention` and `query`. Start at [`config::Config`]:
//! [`config::Config::from_yaml`] parses and validates once and hands out an
//! immutable tree; engines get the part they need as an argument.
//!
//! Architecture invariant: this crate knows no store, no HTTP and no gRPC.

pub mod config;
