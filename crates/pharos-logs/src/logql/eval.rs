//! Evaluating LogQL against the [`LogStore`]: log queries select entries through the
//! pipeline; metric queries turn entries into samples, apply range functions at each
//! step, then vector aggregations and binary operations, with Loki's semantics:
//!
//! - a range `[r]` at step `t` holds the entries with `t - offset - r < ts <= t - offset`;
//! - a sample's labels are the entry's labels after the pipeline (stream labels,
//!   structured metadata, parsed labels), without the unwrapped label;
//! - a sample still carrying `__error__` fails the query with Loki's "pipeline error";
//! - results hold at most [`MAX_SERIES`] series and [`MAX_POINTS`] steps.

use std::collections::{BTreeMap, HashMap};

use super::ast::{
    BinOp, BinaryExpr, Grouping, LabelReplace, LogExpr, MatchOp, MetricExpr, RangeAgg, RangeOp,
    Stage, VectorAgg, VectorMatching, VectorOp,
};
use super::pipeline::{self, Category, ERROR_DETAILS_LABEL, ERROR_LABEL, Label, Row};
use crate::store::{Direction, Entry, Labels, LogStore, Visit, labels_string};

/// Loki's default `max_query_series`.
pub const MAX_SERIES: usize = 500;
/// Loki's limit of points per series of a range query.
pub const MAX_POINTS: usize = 11_000;

/// The time range, order and size of a log query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryParams {
    /// Start, unix nanoseconds, inclusive.
    pub start_ns: i64,
    /// End, unix nanoseconds, exclusive.
    pub end_ns: i64,
    /// Order of the returned entries.
    pub direction: Direction,
    /// Most entries returned, across all streams.
    pub limit: usize,
}

/// One selected entry after the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRow {
    /// Unix nanoseconds.
    pub ts_ns: i64,
    /// The line as the pipeline left it.
    pub line: String,
    /// The labels as the pipeline left them, with their categories.
    pub labels: Vec<Label>,
}

/// What a query failed on at run time, with Loki's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub String);

/// Returns the entries `expr` selects, at most `params.limit`, ordered by `params.direction`.
pub fn select(store: &LogStore, expr: &LogExpr, params: &QueryParams) -> Vec<LogRow> {
    // (ts, stream number, order within stream, row): at most `limit` per stream.
    let mut picked: Vec<(i64, usize, usize, LogRow)> = Vec::new();
    let mut stream_no = 0usize;
    let mut current: Option<*const Labels> = None;
    let mut taken = 0usize;
    let required = expr.required_substrings();
    store.visit(
        |l| expr.matches_stream(l),
        &required,
        params.start_ns,
        params.end_ns,
        params.direction,
        |labels, entry| {
            if current != Some(labels as *const Labels) {
                current = Some(labels as *const Labels);
                stream_no += 1;
                taken = 0;
            }
            if let Some(row) = pipeline::process(expr, labels, entry) {
                picked.push((
                    entry.ts_ns,
                    stream_no,
                    taken,
                    LogRow {
                        ts_ns: entry.ts_ns,
                        line: row.line.into_owned(),
                        labels: row.labels,
                    },
                ));
                taken += 1;
                if taken >= params.limit {
                    return Visit::NextStream;
                }
            }
            Visit::Continue
        },
    );
    match params.direction {
        Direction::Forward => picked.sort_by_key(|a| (a.0, a.1, a.2)),
        Direction::Backward => {
            picked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)))
        }
    }
    picked.truncate(params.limit);
    picked.into_iter().map(|p| p.3).collect()
}

/// The steps a metric query is evaluated at, unix nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Steps {
    /// The first step.
    pub start_ns: i64,
    /// The last step is at most this.
    pub end_ns: i64,
    /// The interval; positive.
    pub step_ns: i64,
}

impl Steps {
    /// One step at `t`, as an instant query.
    pub fn instant(t: i64) -> Self {
        Self {
            start_ns: t,
            end_ns: t,
            step_ns: 1,
        }
    }

    /// How many steps there are.
    pub fn count(&self) -> usize {
        ((self.end_ns - self.start_ns) / self.step_ns + 1).max(0) as usize
    }

    /// The time of step `i`.
    pub fn at(&self, i: usize) -> i64 {
        self.start_ns + i as i64 * self.step_ns
    }
}

/// A metric result: one value per step of each series, or a scalar.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number at every step.
    Scalar(f64),
    /// Series with their values at each step (`None`: no value at that step).
    Matrix(Vec<Series>),
}

/// One series of a metric result.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its labels.
    pub labels: Labels,
    /// One value per step.
    pub values: Vec<Option<f64>>,
}

/// Evaluates a metric query at `steps`.
///
/// # Errors
///
/// Loki's messages for samples with errors, too many series or too many steps.
pub fn eval_metric(store: &LogStore, expr: &MetricExpr, steps: &Steps) -> Result<Value, EvalError> {
    if steps.count() > MAX_POINTS {
        return Err(EvalError(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
        ));
    }
    let v = eval(store, expr, steps)?;
    if let Value::Matrix(m) = &v
        && m.len() > MAX_SERIES
    {
        return Err(EvalError(format!(
            "maximum number of series ({MAX_SERIES}) reached for a single query; consider reducing query cardinality by adding more filters"
        )));
    }
    Ok(v)
}

fn eval(store: &LogStore, expr: &MetricExpr, steps: &Steps) -> Result<Value, EvalError> {
    match expr {
        MetricExpr::Literal(v) => Ok(Value::Scalar(*v)),
        MetricExpr::VectorFn(v) => Ok(Value::Matrix(vec![Series {
            labels: Labels::new(),
            values: vec![Some(*v); steps.count()],
        }])),
        MetricExpr::Range(r) => eval_range(store, r, steps, None),
        MetricExpr::Vector(v) => eval_vector(store, v, steps),
        MetricExpr::Binary(b) => eval_binary(store, b, steps),
        MetricExpr::LabelReplace(lr) => eval_label_replace(store, lr, steps),
    }
}

/// Which labels of a sample matter: all, only some, or all but some.
#[derive(Debug, Clone)]
enum Projection {
    All,
    Only(Vec<String>),
    Without(Vec<String>),
}

impl Projection {
    fn of(g: &Grouping) -> Self {
        if g.without {
            Projection::Without(g.labels.clone())
        } else {
            Projection::Only(g.labels.clone())
        }
    }

    fn keeps(&self, name: &str) -> bool {
        match self {
            Projection::All => true,
            Projection::Only(names) => names.iter().any(|n| n == name),
            Projection::Without(names) => !names.iter().any(|n| n == name),
        }
    }
}

/// Whether a vector aggregation over a range function may be folded into it: the
/// function's value per series sums (count, rate, bytes, sum_over_time) and `sum` adds.
fn foldable(outer: &VectorAgg, inner: &RangeAgg) -> bool {
    outer.op == VectorOp::Sum
        && inner.grouping.is_none()
        && matches!(
            inner.op,
            RangeOp::Count | RangeOp::Rate | RangeOp::Bytes | RangeOp::BytesRate | RangeOp::Sum
        )
}

fn pipeline_error(labels: &Labels) -> EvalError {
    let kind = labels.get(ERROR_LABEL).cloned().unwrap_or_default();
    EvalError(format!(
        "pipeline error: '{kind}' for series: '{}'.\nUse a label filter to intentionally skip this error. (e.g | __error__!=\"{kind}\").\nTo skip all potential errors you can match empty errors.(e.g __error__=\"\")\nThe label filter can also be specified after unwrap. (e.g | unwrap latency | __error__=\"\" )",
        labels_string(labels)
    ))
}

/// Whether the pipeline only filters lines (so labels need not be built per entry).
fn filters_only(expr: &LogExpr) -> bool {
    expr.stages
        .iter()
        .all(|s| matches!(s, Stage::LineFilter(_)))
}

/// Evaluates a range aggregation; `fold` is the grouping of an outer `sum` folded in.
fn eval_range(
    store: &LogStore,
    r: &RangeAgg,
    steps: &Steps,
    fold: Option<&Grouping>,
) -> Result<Value, EvalError> {
    let projection = match (fold, &r.grouping) {
        (Some(g), _) | (None, Some(g)) => Projection::of(g),
        (None, None) => Projection::All,
    };
    let first = steps.start_ns - r.offset_ns - r.range_ns;
    let last = steps.end_ns - r.offset_ns;
    // Samples by series key.
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut series: Vec<(Labels, Vec<(i64, f64)>)> = Vec::new();
    let mut error: Option<Labels> = None;
    let required = r.log.required_substrings();
    let fast = filters_only(&r.log) && r.unwrap.is_none();
    let unwrapped = r.unwrap.as_ref().map(|u| u.label.as_str());
    let mut key = String::new();
    // `sum(count_over_time({...} |= "x" [5m]))` needs lines and times only.
    let with_metadata =
        !(fast && matches!(&projection, Projection::Only(names) if names.is_empty()));
    store.visit_with(
        |l| r.log.matches_stream(l),
        &required,
        first.saturating_add(1),
        last.saturating_add(1),
        Direction::Forward,
        with_metadata,
        |labels, entry| {
            let (value, labels_of): (f64, Labels) = if fast {
                if !r.log.stages.iter().all(|s| match s {
                    Stage::LineFilter(f) => pipeline::line_filter_matches(f, &entry.line),
                    _ => true,
                }) {
                    return Visit::Continue;
                }
                let mut out = Labels::new();
                merged_labels(labels, entry, &projection, &mut out);
                (plain_value(r.op, entry.line.len()), out)
            } else {
                let Some(mut row) = pipeline::process(&r.log, labels, entry) else {
                    return Visit::Continue;
                };
                let value = match &r.unwrap {
                    None => plain_value(r.op, row.line.len()),
                    Some(u) => {
                        let v = match row.get(&u.label) {
                            None | Some("") => {
                                set_error(&mut row, "SampleExtractionErr", "");
                                0.0
                            }
                            Some(text) => match pipeline::convert(text, u.kind) {
                                Ok(v) => v,
                                Err(d) => {
                                    set_error(&mut row, "SampleExtractionErr", &d);
                                    0.0
                                }
                            },
                        };
                        if !pipeline::label_filters_pass(&u.post_filters, &mut row) {
                            return Visit::Continue;
                        }
                        v
                    }
                };
                let mut out = Labels::new();
                let has_error = row.has_error();
                for l in row.labels {
                    let keep = if has_error {
                        true
                    } else {
                        Some(l.name.as_str()) != unwrapped && projection.keeps(&l.name)
                    };
                    if keep {
                        out.insert(l.name, l.value);
                    }
                }
                if has_error {
                    error.get_or_insert(out);
                    return Visit::Stop;
                }
                (value, out)
            };
            key.clear();
            key.push_str(&labels_string(&labels_of));
            let at = match index.get(&key) {
                Some(&i) => i,
                None => {
                    index.insert(key.clone(), series.len());
                    series.push((labels_of, Vec::new()));
                    series.len() - 1
                }
            };
            series[at].1.push((entry.ts_ns, value));
            Visit::Continue
        },
    );
    if let Some(labels) = error {
        return Err(pipeline_error(&labels));
    }
    let n = steps.count();
    if r.op == RangeOp::Absent {
        return Ok(Value::Matrix(absent(r, steps, &series)));
    }
    let mut out = Vec::with_capacity(series.len());
    for (labels, mut samples) in series {
        samples.sort_by_key(|s| s.0);
        let mut values = Vec::with_capacity(n);
        let (mut lo, mut hi) = (0usize, 0usize);
        let mut any = false;
        for i in 0..n {
            let t = steps.at(i) - r.offset_ns;
            while hi < samples.len() && samples[hi].0 <= t {
                hi += 1;
            }
            while lo < hi && samples[lo].0 <= t - r.range_ns {
                lo += 1;
            }
            let v = range_fn(r, &samples[lo..hi]);
            any |= v.is_some();
            values.push(v);
        }
        if any {
            out.push(Series { labels, values });
        }
    }
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(Value::Matrix(out))
}

fn set_error(row: &mut Row<'_>, kind: &str, details: &str) {
    if !row.has_error() {
        row.set(ERROR_LABEL, kind, Category::Parsed);
        if !details.is_empty() {
            row.set(ERROR_DETAILS_LABEL, details, Category::Parsed);
        }
    }
}

/// The stream labels and structured metadata of an entry that `projection` keeps.
fn merged_labels(stream: &Labels, entry: &Entry, projection: &Projection, out: &mut Labels) {
    for (k, v) in stream {
        if projection.keeps(k) {
            out.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in &entry.metadata {
        if projection.keeps(k) {
            out.insert(k.to_string(), v.to_string());
        }
    }
}

fn plain_value(op: RangeOp, line_len: usize) -> f64 {
    match op {
        RangeOp::Bytes | RangeOp::BytesRate => line_len as f64,
        _ => 1.0,
    }
}

/// A range function over the samples of one window, oldest first.
fn range_fn(r: &RangeAgg, w: &[(i64, f64)]) -> Option<f64> {
    if w.is_empty() {
        return None;
    }
    let secs = r.range_ns as f64 / 1e9;
    let n = w.len() as f64;
    let sum = || w.iter().map(|s| s.1).sum::<f64>();
    Some(match r.op {
        RangeOp::Count => n,
        RangeOp::Rate if r.unwrap.is_none() => n / secs,
        RangeOp::Rate | RangeOp::BytesRate => sum() / secs,
        RangeOp::Bytes | RangeOp::Sum => sum(),
        RangeOp::Avg => sum() / n,
        RangeOp::Min => w.iter().map(|s| s.1).fold(f64::INFINITY, f64::min),
        RangeOp::Max => w.iter().map(|s| s.1).fold(f64::NEG_INFINITY, f64::max),
        RangeOp::Stdvar | RangeOp::Stddev => {
            // Welford, as Prometheus' stdvar_over_time.
            let (mut mean, mut m2, mut count) = (0.0, 0.0, 0.0);
            for s in w {
                count += 1.0;
                let delta = s.1 - mean;
                mean += delta / count;
                m2 += delta * (s.1 - mean);
            }
            let var = m2 / count;
            if r.op == RangeOp::Stddev {
                var.sqrt()
            } else {
                var
            }
        }
        RangeOp::Quantile => {
            let mut vs: Vec<f64> = w.iter().map(|s| s.1).collect();
            quantile(r.param.unwrap_or(0.5), &mut vs)
        }
        RangeOp::First => w[0].1,
        RangeOp::Last => w[w.len() - 1].1,
        RangeOp::RateCounter => {
            let mut increase = 0.0;
            for pair in w.windows(2) {
                let (a, b) = (pair[0].1, pair[1].1);
                increase += if b < a { b } else { b - a };
            }
            increase / secs
        }
        RangeOp::Absent => return None,
    })
}

/// Prometheus' φ-quantile with linear interpolation between closest ranks.
fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0) as usize;
    let upper = (lower + 1).min(values.len() - 1);
    let weight = rank - rank.floor();
    values[lower] * (1.0 - weight) + values[upper] * weight
}

/// `absent_over_time`: 1 at the steps where no series has a sample in the window, labelled
/// with the selector's (and the pipeline's) equality matchers, as Prometheus' `absent`.
fn absent(r: &RangeAgg, steps: &Steps, series: &[(Labels, Vec<(i64, f64)>)]) -> Vec<Series> {
    let mut times: Vec<i64> = series
        .iter()
        .flat_map(|s| s.1.iter().map(|x| x.0))
        .collect();
    times.sort_unstable();
    let mut values = Vec::with_capacity(steps.count());
    let mut any = false;
    for i in 0..steps.count() {
        let t = steps.at(i) - r.offset_ns;
        let lo = times.partition_point(|&x| x <= t - r.range_ns);
        let hi = times.partition_point(|&x| x <= t);
        if hi > lo {
            values.push(None);
        } else {
            any = true;
            values.push(Some(1.0));
        }
    }
    if !any {
        return Vec::new();
    }
    let mut labels = Labels::new();
    let mut seen = std::collections::BTreeSet::new();
    for m in &r.log.matchers {
        if m.op == MatchOp::Eq && seen.insert(m.name.clone()) {
            labels.insert(m.name.clone(), m.value.clone());
        } else {
            labels.remove(&m.name);
        }
    }
    vec![Series { labels, values }]
}

fn eval_vector(store: &LogStore, v: &VectorAgg, steps: &Steps) -> Result<Value, EvalError> {
    if let MetricExpr::Range(r) = &v.expr
        && foldable(v, r)
    {
        // `sum by (x) (count_over_time(...))`: samples are grouped as they are read; a
        // plain `sum` groups by nothing.
        let all = Grouping {
            without: false,
            labels: Vec::new(),
        };
        let folded = eval_range(store, r, steps, Some(v.grouping.as_ref().unwrap_or(&all)))?;
        return Ok(folded);
    }
    let inner = match eval(store, &v.expr, steps)? {
        Value::Scalar(_) => {
            return Err(EvalError(
                "unexpected scalar in a vector aggregation: expected a vector".into(),
            ));
        }
        Value::Matrix(m) => m,
    };
    let n = steps.count();
    if matches!(v.op, VectorOp::Sort | VectorOp::SortDesc) {
        let mut out = inner;
        if n == 1 {
            let key = |s: &Series| s.values[0].unwrap_or(f64::NAN);
            out.sort_by(|a, b| {
                let o = key(a).total_cmp(&key(b));
                if v.op == VectorOp::SortDesc {
                    o.reverse()
                } else {
                    o
                }
            });
        }
        return Ok(Value::Matrix(out));
    }
    let group_labels = |labels: &Labels| -> Labels {
        match &v.grouping {
            None => Labels::new(),
            Some(g) if g.without => labels
                .iter()
                .filter(|(k, _)| !g.labels.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            Some(g) => labels
                .iter()
                .filter(|(k, _)| g.labels.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    };
    if matches!(v.op, VectorOp::Topk | VectorOp::Bottomk) {
        let k = v.param.unwrap_or(1.0) as usize;
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, s) in inner.iter().enumerate() {
            groups
                .entry(labels_string(&group_labels(&s.labels)))
                .or_default()
                .push(i);
        }
        let mut keep: Vec<Vec<Option<f64>>> = vec![vec![None; n]; inner.len()];
        #[allow(clippy::needless_range_loop)] // `step` indexes several series
        for members in groups.values() {
            for step in 0..n {
                let mut present: Vec<(usize, f64)> = members
                    .iter()
                    .filter_map(|&i| inner[i].values[step].map(|x| (i, x)))
                    .collect();
                present.sort_by(|a, b| {
                    let o = a.1.total_cmp(&b.1);
                    if v.op == VectorOp::Topk {
                        o.reverse()
                    } else {
                        o
                    }
                });
                for (i, x) in present.into_iter().take(k) {
                    keep[i][step] = Some(x);
                }
            }
        }
        let mut out: Vec<Series> = inner
            .into_iter()
            .zip(keep)
            .filter(|(_, vals)| vals.iter().any(Option::is_some))
            .map(|(s, values)| Series {
                labels: s.labels,
                values,
            })
            .collect();
        if n == 1 {
            out.sort_by(|a, b| {
                let o = a.values[0]
                    .unwrap_or(f64::NAN)
                    .total_cmp(&b.values[0].unwrap_or(f64::NAN));
                if v.op == VectorOp::Topk {
                    o.reverse()
                } else {
                    o
                }
            });
        }
        return Ok(Value::Matrix(out));
    }
    let mut groups: BTreeMap<String, (Labels, Vec<usize>)> = BTreeMap::new();
    for (i, s) in inner.iter().enumerate() {
        let g = group_labels(&s.labels);
        groups
            .entry(labels_string(&g))
            .or_insert_with(|| (g, Vec::new()))
            .1
            .push(i);
    }
    let mut out = Vec::new();
    for (_, (labels, members)) in groups {
        let mut values = Vec::with_capacity(n);
        let mut any = false;
        for step in 0..n {
            let xs: Vec<f64> = members
                .iter()
                .filter_map(|&i| inner[i].values[step])
                .collect();
            let v = if xs.is_empty() {
                None
            } else {
                Some(aggregate(v.op, &xs))
            };
            any |= v.is_some();
            values.push(v);
        }
        if any {
            out.push(Series { labels, values });
        }
    }
    Ok(Value::Matrix(out))
}

fn aggregate(op: VectorOp, xs: &[f64]) -> f64 {
    let n = xs.len() as f64;
    match op {
        VectorOp::Sum => xs.iter().sum(),
        VectorOp::Avg => xs.iter().sum::<f64>() / n,
        VectorOp::Count => n,
        VectorOp::Min => xs.iter().copied().fold(f64::INFINITY, f64::min),
        VectorOp::Max => xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        VectorOp::Stdvar | VectorOp::Stddev => {
            let mean = xs.iter().sum::<f64>() / n;
            let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
            if op == VectorOp::Stddev {
                var.sqrt()
            } else {
                var
            }
        }
        VectorOp::Topk | VectorOp::Bottomk | VectorOp::Sort | VectorOp::SortDesc => {
            unreachable!("BUG: handled before aggregate")
        }
    }
}

fn arith(op: BinOp, a: f64, b: f64) -> Option<f64> {
    Some(match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div => a / b,
        BinOp::Mod => a % b,
        BinOp::Pow => a.powf(b),
        BinOp::Eq => f64::from(u8::from(a == b)),
        BinOp::Neq => f64::from(u8::from(a != b)),
        BinOp::Gt => f64::from(u8::from(a > b)),
        BinOp::Gte => f64::from(u8::from(a >= b)),
        BinOp::Lt => f64::from(u8::from(a < b)),
        BinOp::Lte => f64::from(u8::from(a <= b)),
        BinOp::And | BinOp::Or | BinOp::Unless => return None,
    })
}

/// `a op b` for one pair of values: `None` drops the point (a false comparison
/// without `bool`); for a comparison the kept value is `keep`.
fn combine(op: BinOp, return_bool: bool, a: f64, b: f64, keep: f64) -> Option<f64> {
    let r = arith(op, a, b)?;
    if op.is_comparison() && !return_bool {
        (r == 1.0).then_some(keep)
    } else {
        Some(r)
    }
}

fn eval_binary(store: &LogStore, b: &BinaryExpr, steps: &Steps) -> Result<Value, EvalError> {
    let lhs = eval(store, &b.lhs, steps)?;
    let rhs = eval(store, &b.rhs, steps)?;
    let n = steps.count();
    match (lhs, rhs) {
        (Value::Scalar(x), Value::Scalar(y)) => {
            if b.op.is_set() {
                return Err(EvalError(format!(
                    "set operator \"{}\" not allowed in binary scalar expression",
                    set_name(b.op)
                )));
            }
            if b.op.is_comparison() && !b.return_bool {
                return Err(EvalError(
                    "comparisons between scalars must use BOOL modifier".into(),
                ));
            }
            Ok(Value::Scalar(arith(b.op, x, y).unwrap_or(f64::NAN)))
        }
        (Value::Matrix(m), Value::Scalar(y)) => Ok(Value::Matrix(scalar_side(m, |x| {
            combine(b.op, b.return_bool, x, y, x)
        }))),
        (Value::Scalar(x), Value::Matrix(m)) => Ok(Value::Matrix(scalar_side(m, |y| {
            combine(b.op, b.return_bool, x, y, y)
        }))),
        (Value::Matrix(l), Value::Matrix(r)) => vector_vector(b, l, r, n).map(Value::Matrix),
    }
}

fn set_name(op: BinOp) -> &'static str {
    match op {
        BinOp::And => "and",
        BinOp::Or => "or",
        _ => "unless",
    }
}

fn scalar_side(m: Vec<Series>, f: impl Fn(f64) -> Option<f64>) -> Vec<Series> {
    m.into_iter()
        .filter_map(|s| {
            let values: Vec<Option<f64>> = s.values.iter().map(|v| v.and_then(&f)).collect();
            values.iter().any(Option::is_some).then_some(Series {
                labels: s.labels,
                values,
            })
        })
        .collect()
}

/// The labels two series are matched on.
fn signature(labels: &Labels, matching: Option<&VectorMatching>) -> String {
    match matching {
        Some(m) if m.on => labels_string(labels.iter().filter(|(k, _)| m.labels.contains(k))),
        Some(m) => labels_string(labels.iter().filter(|(k, _)| !m.labels.contains(k))),
        None => labels_string(labels),
    }
}

fn vector_vector(
    b: &BinaryExpr,
    l: Vec<Series>,
    r: Vec<Series>,
    n: usize,
) -> Result<Vec<Series>, EvalError> {
    let matching = b.matching.as_ref();
    let sig_l: Vec<String> = l.iter().map(|s| signature(&s.labels, matching)).collect();
    let sig_r: Vec<String> = r.iter().map(|s| signature(&s.labels, matching)).collect();
    if b.op.is_set() {
        let mut out = Vec::new();
        match b.op {
            BinOp::And | BinOp::Unless => {
                for (i, s) in l.into_iter().enumerate() {
                    let values: Vec<Option<f64>> = (0..n)
                        .map(|step| {
                            let other = sig_r
                                .iter()
                                .enumerate()
                                .any(|(j, sig)| *sig == sig_l[i] && r[j].values[step].is_some());
                            let keep = if b.op == BinOp::And { other } else { !other };
                            s.values[step].filter(|_| keep)
                        })
                        .collect();
                    if values.iter().any(Option::is_some) {
                        out.push(Series {
                            labels: s.labels,
                            values,
                        });
                    }
                }
            }
            _ => {
                let lhs_at = |sig: &String, step: usize| {
                    sig_l
                        .iter()
                        .enumerate()
                        .any(|(i, s)| s == sig && l[i].values[step].is_some())
                };
                let mut kept_r = Vec::new();
                for (j, s) in r.iter().enumerate() {
                    let values: Vec<Option<f64>> = (0..n)
                        .map(|step| s.values[step].filter(|_| !lhs_at(&sig_r[j], step)))
                        .collect();
                    if values.iter().any(Option::is_some) {
                        kept_r.push(Series {
                            labels: s.labels.clone(),
                            values,
                        });
                    }
                }
                out.extend(l);
                out.extend(kept_r);
            }
        }
        return Ok(out);
    }
    // Arithmetic and comparisons: one-to-one, or many-to-one with group_left/right.
    let group = matching.and_then(|m| m.group.clone());
    let (many, one, sig_many, sig_one, many_is_left) = match &group {
        Some((false, _)) => (&r, &l, &sig_r, &sig_l, false),
        _ => (&l, &r, &sig_l, &sig_r, true),
    };
    let mut one_by_sig: HashMap<&str, Vec<usize>> = HashMap::new();
    for (j, s) in sig_one.iter().enumerate() {
        one_by_sig.entry(s.as_str()).or_default().push(j);
    }
    let mut out: BTreeMap<String, Series> = BTreeMap::new();
    for (i, s) in many.iter().enumerate() {
        let Some(partners) = one_by_sig.get(sig_many[i].as_str()) else {
            continue;
        };
        for &j in partners {
            let o = &one[j];
            let mut labels = s.labels.clone();
            if let Some((_, include)) = &group {
                for name in include {
                    match o.labels.get(name) {
                        Some(v) => {
                            labels.insert(name.clone(), v.clone());
                        }
                        None => {
                            labels.remove(name);
                        }
                    }
                }
            } else if let Some(m) = matching
                && m.on
                && (!b.op.is_comparison() || b.return_bool)
            {
                labels.retain(|k, _| m.labels.contains(k));
            }
            let values: Vec<Option<f64>> = (0..n)
                .map(|step| {
                    let (a, c) = match (s.values[step], o.values[step]) {
                        (Some(a), Some(c)) => (a, c),
                        _ => return None,
                    };
                    let (x, y) = if many_is_left { (a, c) } else { (c, a) };
                    combine(b.op, b.return_bool, x, y, x)
                })
                .collect();
            if !values.iter().any(Option::is_some) {
                continue;
            }
            let key = labels_string(&labels);
            if let Some(prev) = out.get(&key) {
                // Two pairs landing on one output series at one step: Prometheus' error.
                if prev
                    .values
                    .iter()
                    .zip(&values)
                    .any(|(a, b)| a.is_some() && b.is_some())
                {
                    return Err(EvalError(format!(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right); duplicate series {key}"
                    )));
                }
                let merged: Vec<Option<f64>> = prev
                    .values
                    .iter()
                    .zip(&values)
                    .map(|(a, b)| a.or(*b))
                    .collect();
                out.insert(
                    key,
                    Series {
                        labels,
                        values: merged,
                    },
                );
            } else {
                out.insert(key, Series { labels, values });
            }
        }
    }
    Ok(out.into_values().collect())
}

fn eval_label_replace(
    store: &LogStore,
    lr: &LabelReplace,
    steps: &Steps,
) -> Result<Value, EvalError> {
    let Value::Matrix(m) = eval(store, &lr.expr, steps)? else {
        return Err(EvalError("label_replace needs a vector".into()));
    };
    let mut out = Vec::with_capacity(m.len());
    for mut s in m {
        let src = s.labels.get(&lr.src).cloned().unwrap_or_default();
        if let Some(caps) = lr.regex.captures(&src) {
            let mut dst = String::new();
            caps.expand(&lr.replacement, &mut dst);
            if dst.is_empty() {
                s.labels.remove(&lr.dst);
            } else {
                s.labels.insert(lr.dst.clone(), dst);
            }
        }
        out.push(s);
    }
    Ok(Value::Matrix(out))
}

#[cfg(test)]
mod tests;
