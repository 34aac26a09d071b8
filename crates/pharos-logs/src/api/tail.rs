//! `GET /loki/api/v1/tail`: live tailing over a WebSocket, as Loki and Grafana's live
//! view speak it.
//!
//! On connect the client gets the newest `limit` (default 100) entries since `start`
//! (default an hour ago), oldest first, then every entry applied afterwards that the
//! query selects, each batch as one text message:
//! `{"streams":[{"stream":{...},"values":[["<ns>","<line>"]]}]}`. A client too slow for
//! the server's backlog gets `"dropped_entries":[{"labels":{...},"timestamp":"<ns>"}]`
//! for what it missed, as Loki reports entries its tailer dropped. Metric queries and
//! bad parameters are refused before the upgrade with a plain-text 400.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::params::{Params, parse_form, parse_time};
use super::{BadRequest, MAX_ENTRIES_LIMIT, now_ns};
use crate::logql::eval::{LogRow, QueryParams, select};
use crate::logql::pipeline;
use crate::logql::{LogExpr, parse};
use crate::store::{Direction, LogStore};

const DEFAULT_LIMIT: usize = 100;
const DEFAULT_LOOKBACK_NS: i64 = 3_600 * 1_000_000_000;

/// The tail route's handler.
pub(super) async fn tail(
    State(store): State<Arc<LogStore>>,
    RawQuery(raw): RawQuery,
    ws: WebSocketUpgrade,
) -> Result<Response, BadRequest> {
    let p = Params(raw.as_deref().map(parse_form).unwrap_or_default());
    let expr = parse(p.get("query").unwrap_or_default())?;
    let limit = match p.get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("invalid limit: {v:?}"))?,
    };
    if limit > MAX_ENTRIES_LIMIT {
        return Err(BadRequest(format!(
            "max entries limit per query exceeded, limit > max_entries_limit_per_query ({limit} > {MAX_ENTRIES_LIMIT})"
        )));
    }
    let start = p
        .get("start")
        .map(parse_time)
        .transpose()?
        .unwrap_or_else(|| now_ns() - DEFAULT_LOOKBACK_NS);
    // Subscribed before the history is read, so nothing applied in between is missed
    // (an entry may come twice instead).
    let rx = store.subscribe();
    Ok(ws
        .on_upgrade(move |socket| run(socket, store, expr, start, limit, rx))
        .into_response())
}

async fn run(
    mut socket: WebSocket,
    store: Arc<LogStore>,
    expr: LogExpr,
    start: i64,
    limit: usize,
    mut rx: tokio::sync::broadcast::Receiver<Arc<crate::store::TailBatch>>,
) {
    let mut history = select(
        &store,
        &expr,
        &QueryParams {
            start_ns: start,
            end_ns: i64::MAX,
            direction: Direction::Backward,
            limit,
        },
    );
    history.reverse();
    if !history.is_empty() && send(&mut socket, history, &[]).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            batch = rx.recv() => match batch {
                Ok(batch) => {
                    let rows: Vec<LogRow> = batch
                        .iter()
                        .filter(|(labels, _)| expr.matches_stream(labels))
                        .filter_map(|(labels, e)| {
                            pipeline::process(&expr, labels, e).map(|row| LogRow {
                                ts_ns: e.ts_ns,
                                line: row.line.into_owned(),
                                labels: row.labels,
                            })
                        })
                        .collect();
                    if !rows.is_empty() && send(&mut socket, rows, &[]).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    let dropped = vec![json!({"labels": {}, "timestamp": now_ns().to_string(), "count": n})];
                    if send(&mut socket, Vec::new(), &dropped).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Closed) => return,
            },
            msg = socket.recv() => match msg {
                // Clients only close; anything else is ignored.
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Sends one tail message; rows are grouped into streams by their labels, as a
/// `query_range` answer groups them.
async fn send(
    socket: &mut WebSocket,
    rows: Vec<LogRow>,
    dropped: &[Value],
) -> Result<(), axum::Error> {
    let mut msg = json!({ "streams": super::merged(rows) });
    if !dropped.is_empty() {
        msg["dropped_entries"] = Value::Array(dropped.to_vec());
    }
    socket.send(Message::Text(msg.to_string().into())).await
}
