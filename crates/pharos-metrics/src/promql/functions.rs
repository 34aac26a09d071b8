//! Function calls: dispatch, and the functions over instant vectors and scalars (math,
//! clamping, time and date, labels, sorting, `absent`, `scalar`, `vector`,
//! `histogram_quantile`). Range-vector functions are computed in [`super::range_fns`].
//!
//! Every function that computes a new value drops the metric name, as Prometheus 3 does
//! without delayed name removal; `last_over_time`, `first_over_time`, `sort*`,
//! `label_*`, `absent*` and `histogram_quantile` (which drops it with `le`) build their
//! labels themselves.

use promql_parser::label::MatchOp;
use promql_parser::parser::{Call, Expr};

use super::QueryError;
use super::eval::{Elem, Evaluator, Val, check_duplicates, duplicate_labelset, unsupported};
use super::labels::{drop_name, is_valid_name, set};
use super::range_fns::{self, Window};
use crate::store::{Labels, METRIC_NAME};

/// Evaluates a function call at `t`.
pub(super) fn eval(ev: &Evaluator<'_>, c: &Call, t: i64) -> Result<Val, QueryError> {
    let name = c.func.name;
    let args: Vec<&Expr> = c.args.args.iter().map(|a| a.as_ref()).collect();
    if range_fns::is_range_fn(name) {
        return range_call(ev, c, name, &args, t);
    }
    if name == "absent_over_time" {
        let Val::Matrix(m) = ev.eval(args[0], t)? else {
            return Err(unsupported(&Expr::Call(c.clone())));
        };
        return Ok(Val::Vector(absent(m.is_empty(), args[0], t)));
    }
    if name == "timestamp" {
        let inner = unwrap_parens(args[0]);
        let Val::Vector(v) = ev.eval(inner, t)? else {
            return Err(unsupported(&Expr::Call(c.clone())));
        };
        let from_selector = matches!(inner, Expr::VectorSelector(_));
        let out: Vec<Elem> = v
            .into_iter()
            .map(|e| Elem {
                labels: drop_name(&e.labels),
                value: if from_selector { e.t_ms } else { t } as f64 / 1000.0,
                t_ms: t,
            })
            .collect();
        check_duplicates(&out)?;
        return Ok(Val::Vector(out));
    }
    let mut vals = Vec::with_capacity(args.len());
    for a in &args {
        vals.push(ev.eval(a, t)?);
    }
    let scalar = |i: usize| match vals.get(i) {
        Some(Val::Scalar(v)) => *v,
        _ => f64::NAN,
    };
    let string = |i: usize| match vals.get(i) {
        Some(Val::String(s)) => s.as_str(),
        _ => "",
    };
    let ts = t as f64 / 1000.0;
    match name {
        "time" => return Ok(Val::Scalar(ts)),
        "pi" => return Ok(Val::Scalar(std::f64::consts::PI)),
        "scalar" => {
            return Ok(Val::Scalar(match vals.first() {
                Some(Val::Vector(v)) if v.len() == 1 => v[0].value,
                _ => f64::NAN,
            }));
        }
        "vector" => {
            return Ok(Val::Vector(vec![Elem {
                labels: Labels::default(),
                value: scalar(0),
                t_ms: t,
            }]));
        }
        _ => {}
    }
    let input = match vals.first() {
        Some(Val::Vector(v)) => v.clone(),
        // Date functions without an argument read `vector(time())`.
        None if is_date_fn(name) => vec![Elem {
            labels: Labels::default(),
            value: ts,
            t_ms: t,
        }],
        _ => Vec::new(),
    };
    let out: Vec<Elem> = match name {
        "absent" => absent(input.is_empty(), args[0], t),
        "sort" | "sort_desc" => {
            let mut v = input;
            sort_by_value(&mut v, name == "sort_desc");
            return Ok(Val::Vector(v));
        }
        "sort_by_label" | "sort_by_label_desc" => {
            let names: Vec<String> = (1..vals.len()).map(|i| string(i).to_owned()).collect();
            let mut v = input;
            v.sort_by(|a, b| {
                let mut o = std::cmp::Ordering::Equal;
                for n in &names {
                    o = natural_cmp(a.labels.get(n).unwrap_or(""), b.labels.get(n).unwrap_or(""));
                    if o.is_ne() {
                        break;
                    }
                }
                let o = o.then_with(|| a.labels.cmp(&b.labels));
                if name == "sort_by_label_desc" {
                    o.reverse()
                } else {
                    o
                }
            });
            return Ok(Val::Vector(v));
        }
        "label_replace" => {
            let (dst, repl, src, re) = (string(1), string(2), string(3), string(4));
            let regex = regex::Regex::new(&format!("^(?s:{re})$")).map_err(|_| {
                QueryError::execution(format!(
                    "invalid regular expression in label_replace(): {re}"
                ))
            })?;
            if !is_valid_name(dst) {
                return Err(QueryError::execution(format!(
                    "invalid destination label name in label_replace(): {dst}"
                )));
            }
            input
                .into_iter()
                .map(|e| {
                    let value = e.labels.get(src).unwrap_or("");
                    let labels = match regex.captures(value) {
                        Some(caps) => {
                            let mut res = String::new();
                            caps.expand(repl, &mut res);
                            set(&e.labels, dst, &res)
                        }
                        None => e.labels.clone(),
                    };
                    Elem {
                        labels,
                        t_ms: t,
                        ..e
                    }
                })
                .collect()
        }
        "label_join" => {
            let (dst, sep) = (string(1), string(2));
            if !is_valid_name(dst) {
                return Err(QueryError::execution(format!(
                    "invalid destination label name in label_join(): {dst}"
                )));
            }
            let srcs: Vec<&str> = (3..vals.len()).map(string).collect();
            for s in &srcs {
                if !is_valid_name(s) {
                    return Err(QueryError::execution(format!(
                        "invalid source label name in label_join(): {s}"
                    )));
                }
            }
            input
                .into_iter()
                .map(|e| {
                    let joined: Vec<&str> =
                        srcs.iter().map(|s| e.labels.get(s).unwrap_or("")).collect();
                    let labels = set(&e.labels, dst, &joined.join(sep));
                    Elem {
                        labels,
                        t_ms: t,
                        ..e
                    }
                })
                .collect()
        }
        "histogram_quantile" => {
            super::histogram::histogram_quantile(scalar(0), &vals_vector(&vals, 1), t)
        }
        "clamp" => {
            let (lo, hi) = (scalar(1), scalar(2));
            if hi < lo {
                Vec::new()
            } else {
                map_values(input, t, |v| go_max(lo, go_min(hi, v)))
            }
        }
        "clamp_min" => {
            let lo = scalar(1);
            map_values(input, t, |v| go_max(lo, v))
        }
        "clamp_max" => {
            let hi = scalar(1);
            map_values(input, t, |v| go_min(hi, v))
        }
        "round" => {
            let to = if vals.len() > 1 { scalar(1) } else { 1.0 };
            let inv = 1.0 / to;
            map_values(input, t, |v| (v * inv + 0.5).floor() / inv)
        }
        _ => {
            let Some(f) = math_fn(name) else {
                return Err(unsupported(&Expr::Call(c.clone())));
            };
            map_values(input, t, f)
        }
    };
    check_duplicates(&out)?;
    Ok(Val::Vector(out))
}

fn vals_vector(vals: &[Val], i: usize) -> Vec<Elem> {
    match vals.get(i) {
        Some(Val::Vector(v)) => v.clone(),
        _ => Vec::new(),
    }
}

pub(super) fn unwrap_parens(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unwrap_parens(&p.expr),
        _ => e,
    }
}

/// Applies a function over a range vector to each series' window at `t`.
fn range_call(
    ev: &Evaluator<'_>,
    c: &Call,
    name: &str,
    args: &[&Expr],
    t: i64,
) -> Result<Val, QueryError> {
    let mi = args
        .iter()
        .position(|a| a.value_type() == promql_parser::parser::value::ValueType::Matrix)
        .ok_or_else(|| unsupported(&Expr::Call(c.clone())))?;
    if let Some(k) = ev.query_step(t)
        && let Some(v) = all_steps(ev, c, k)?
    {
        return Ok(v);
    }
    let mut scalars = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if i != mi {
            match ev.eval(a, t)? {
                Val::Scalar(v) => scalars.push(v),
                _ => return Err(unsupported(&Expr::Call(c.clone()))),
            }
        }
    }
    let Val::Matrix(m) = ev.eval(args[mi], t)? else {
        return Err(unsupported(&Expr::Call(c.clone())));
    };
    let (start, end) = ev
        .window(args[mi], t)
        .ok_or_else(|| unsupported(&Expr::Call(c.clone())))?;
    let keep_name = matches!(name, "last_over_time" | "first_over_time");
    let node = std::ptr::from_ref(c) as usize;
    let mut out = Vec::with_capacity(m.len());
    for s in m {
        let w = Window {
            points: &s.points,
            start,
            end,
            t,
        };
        if let Some(value) = range_fns::apply(name, &w, &scalars)? {
            out.push(Elem {
                labels: if keep_name {
                    s.labels
                } else {
                    ev.derived(node, &s.labels, drop_name)
                },
                value,
                t_ms: t,
            });
        }
    }
    if super::eval::check_duplicates(&out).is_err() {
        return Err(duplicate_labelset());
    }
    Ok(Val::Vector(out))
}

/// In a range query, evaluates the call over a plain matrix selector for every step at
/// once on the first step ([`all_steps_of`]) and hands out step `k`'s result. `None` when
/// the call does not qualify or its results were already handed out; the caller then
/// evaluates it step by step. Loaded-sample accounting and the duplicate check are those
/// of the step-by-step path.
fn all_steps(ev: &Evaluator<'_>, c: &Call, k: usize) -> Result<Option<Val>, QueryError> {
    let node = std::ptr::from_ref(c) as usize;
    if k == 0
        && !ev.has_precomputed(node)
        && let Some(all) = all_steps_of(ev, c)?
    {
        let (steps, loaded, unique) = all.into_steps(ev);
        ev.set_precomputed(node, steps, loaded, unique);
    }
    Ok(ev.take_precomputed(node, k)?.map(Val::Vector))
}

/// A range-function call's results for every step of a range query, series by series.
pub(super) struct AllSteps {
    /// The call's address (what its derived label sets are remembered by).
    node: usize,
    /// Whether the results drop the metric name (all functions but `last_over_time` and
    /// `first_over_time`).
    pub(super) drops_name: bool,
    /// Each series with a result at some step: the selector's labels for it (sorted, as
    /// the selector returns them), and where its results are in `points`.
    pub(super) series: Vec<(Labels, std::ops::Range<usize>)>,
    /// `(step index, value)`: the results of each series in turn, in step order.
    pub(super) points: Vec<(u32, f64)>,
    /// The samples the windows of each step loaded.
    pub(super) loaded: Vec<usize>,
}

impl AllSteps {
    /// Returns each series' result labels (the metric name dropped unless kept), as the
    /// step-by-step evaluation derives them.
    pub(super) fn result_labels(&self, ev: &Evaluator<'_>) -> Vec<Labels> {
        self.series
            .iter()
            .map(|(l, _)| {
                if self.drops_name {
                    ev.derived(self.node, l, drop_name)
                } else {
                    l.clone()
                }
            })
            .collect()
    }

    /// Returns whether the result labels are known to differ across series without being
    /// derived: the selector's are sorted and so unique, and either kept or all of one
    /// metric name (dropping it then keeps them apart).
    pub(super) fn unique_as_selected(&self) -> bool {
        fn name(l: &Labels) -> Option<&str> {
            l.get(crate::store::METRIC_NAME)
        }
        self.series
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && (!self.drops_name || name(&w[0].0) == name(&w[1].0)))
    }

    /// Returns each step's vector, as the call evaluated at that step would (series in
    /// the selector's order), the samples loaded at each step, and whether the result
    /// labels are unique across series.
    pub(super) fn into_steps(self, ev: &Evaluator<'_>) -> (Vec<Vec<Elem>>, Vec<usize>, bool) {
        let (start, step, n) = ev.steps().expect("BUG: only built in range queries");
        let labels = self.result_labels(ev);
        let unique = self.unique_as_selected() || (self.drops_name && unique_interned(&labels));
        let mut steps: Vec<Vec<Elem>> = (0..n).map(|_| Vec::new()).collect();
        for (labels, (_, range)) in labels.iter().zip(&self.series) {
            for &(j, value) in &self.points[range.clone()] {
                steps[j as usize].push(Elem {
                    labels: labels.clone(),
                    value,
                    t_ms: start + i64::from(j) * step,
                });
            }
        }
        (steps, self.loaded, unique)
    }
}

/// Returns whether label sets handed out by [`Evaluator::derived`] (interned: equal ones
/// are one address) are all different.
pub(super) fn unique_interned(labels: &[Labels]) -> bool {
    let mut seen: rustc_hash::FxHashSet<usize> = Default::default();
    labels.iter().all(|l| seen.insert(l.addr()))
}

/// In a range query, evaluates range-function call `c` over a plain matrix selector for
/// every step, series by series: each series' samples are walked once with a sliding
/// window instead of once per step, stale markers are dropped once per series, and
/// `rate`/`increase` look for counter resets only in windows that have one. `None` when
/// the call does not qualify (not a range function, other arguments that are not number
/// literals, `@`, a subquery argument, not a range query) or fails at some step (the
/// error then surfaces from the step-by-step path, at the right step).
pub(super) fn all_steps_of(ev: &Evaluator<'_>, c: &Call) -> Result<Option<AllSteps>, QueryError> {
    let name = c.func.name;
    if !range_fns::is_range_fn(name) {
        return Ok(None);
    }
    let args: Vec<&Expr> = c.args.args.iter().map(|a| a.as_ref()).collect();
    let Some(mi) = args
        .iter()
        .position(|a| a.value_type() == promql_parser::parser::value::ValueType::Matrix)
    else {
        return Ok(None);
    };
    let Expr::MatrixSelector(ms) = unwrap_parens(args[mi]) else {
        return Ok(None);
    };
    if ms.vs.at.is_some() {
        return Ok(None);
    }
    let mut scalars = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if i != mi {
            match unwrap_parens(a) {
                Expr::NumberLiteral(n) => scalars.push(n.val),
                _ => return Ok(None),
            }
        }
    }
    let Some((start, step, n)) = ev.steps() else {
        return Ok(None);
    };
    if u32::try_from(n).is_err() {
        return Ok(None);
    }
    let range = super::eval::duration_ms(ms.range);
    let f = ev.fetch_for_all_steps(&ms.vs, range)?;
    // Each step's window `(start, end]` and time.
    let mut windows: Vec<(i64, i64, i64)> = Vec::with_capacity(n);
    for j in 0..n {
        let t = start + j as i64 * step;
        let Some((wstart, wend)) = ev.window(args[mi], t) else {
            return Ok(None);
        };
        windows.push((wstart, wend, t));
    }
    let resets_matter = range_fns::counts_resets(name);
    let most = f.series.len().saturating_mul(n);
    let mut out = AllSteps {
        node: std::ptr::from_ref(c) as usize,
        drops_name: !matches!(name, "last_over_time" | "first_over_time"),
        series: Vec::with_capacity(f.series.len()),
        points: Vec::with_capacity(if most <= 1 << 22 { most } else { 0 }),
        loaded: vec![0usize; n],
    };
    let mut clean: Vec<(i64, f64)> = Vec::new();
    // resets[i]: how many samples up to i are below the one before.
    let mut resets: Vec<usize> = Vec::new();
    for s in &f.series {
        // A window without stale markers is the same window over the series without them.
        let samples: &[(i64, f64)] = if s.samples.iter().any(|p| crate::store::is_stale(p.1)) {
            clean.clear();
            clean.extend(
                s.samples
                    .iter()
                    .copied()
                    .filter(|p| !crate::store::is_stale(p.1)),
            );
            &clean
        } else {
            &s.samples
        };
        if resets_matter {
            resets.clear();
            resets.push(0);
            let mut r = 0;
            for pair in samples.windows(2) {
                r += usize::from(pair[1].1 < pair[0].1);
                resets.push(r);
            }
        }
        let first = out.points.len();
        let (mut lo, mut hi) = (0usize, 0usize);
        for (j, (&(wstart, wend, t), count)) in
            windows.iter().zip(out.loaded.iter_mut()).enumerate()
        {
            while lo < samples.len() && samples[lo].0 <= wstart {
                lo += 1;
            }
            hi = hi.max(lo);
            while hi < samples.len() && samples[hi].0 <= wend {
                hi += 1;
            }
            let points = &samples[lo..hi];
            if points.is_empty() {
                continue;
            }
            *count += points.len();
            let may_reset = !resets_matter || resets[hi - 1] != resets[lo];
            let w = Window {
                points,
                start: wstart,
                end: wend,
                t,
            };
            let Ok(value) = range_fns::apply_window(name, &w, &scalars, may_reset) else {
                return Ok(None);
            };
            if let Some(value) = value {
                out.points.push((j as u32, value));
            }
        }
        if out.points.len() > first {
            out.series.push((s.labels.clone(), first..out.points.len()));
        }
    }
    Ok(Some(out))
}

/// Returns `absent`'s result: nothing when the argument had data, otherwise one element
/// labelled from the argument's equality matchers (a label given twice is left out).
fn absent(empty: bool, arg: &Expr, t: i64) -> Vec<Elem> {
    if !empty {
        return Vec::new();
    }
    let vs = match arg {
        Expr::VectorSelector(vs) => Some(vs),
        Expr::MatrixSelector(ms) => Some(&ms.vs),
        _ => None,
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut has: Vec<String> = Vec::new();
    if let Some(vs) = vs {
        for m in &vs.matchers.matchers {
            if m.name == METRIC_NAME {
                continue;
            }
            if matches!(m.op, MatchOp::Equal) && !has.contains(&m.name) {
                pairs.push((m.name.clone(), m.value.clone()));
                has.push(m.name.clone());
            } else {
                pairs.retain(|(k, _)| k != &m.name);
            }
        }
    }
    vec![Elem {
        labels: Labels::from_pairs(pairs),
        value: 1.0,
        t_ms: t,
    }]
}

fn map_values(input: Vec<Elem>, t: i64, f: impl Fn(f64) -> f64) -> Vec<Elem> {
    input
        .into_iter()
        .map(|e| Elem {
            labels: drop_name(&e.labels),
            value: f(e.value),
            t_ms: t,
        })
        .collect()
}

/// Go's `math.Max`: NaN wins, and +0 beats -0.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() { b } else { a }
    } else {
        a.max(b)
    }
}

/// Go's `math.Min`: NaN wins, and -0 beats +0.
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() { a } else { b }
    } else {
        a.min(b)
    }
}

fn is_date_fn(name: &str) -> bool {
    matches!(
        name,
        "minute"
            | "hour"
            | "day_of_month"
            | "day_of_week"
            | "day_of_year"
            | "days_in_month"
            | "month"
            | "year"
    )
}

/// Returns the element-wise function `name`, if it is one.
fn math_fn(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sqrt" => f64::sqrt,
        "sgn" => |v: f64| {
            if v < 0.0 {
                -1.0
            } else if v > 0.0 {
                1.0
            } else {
                v
            }
        },
        "acos" => f64::acos,
        "acosh" => f64::acosh,
        "asin" => f64::asin,
        "asinh" => f64::asinh,
        "atan" => f64::atan,
        "atanh" => f64::atanh,
        "cos" => f64::cos,
        "cosh" => f64::cosh,
        "sin" => f64::sin,
        "sinh" => f64::sinh,
        "tan" => f64::tan,
        "tanh" => f64::tanh,
        "deg" => |v: f64| v * 180.0 / std::f64::consts::PI,
        "rad" => |v: f64| v * std::f64::consts::PI / 180.0,
        "minute" => |v| date_part(v, |c| c.minute),
        "hour" => |v| date_part(v, |c| c.hour),
        "day_of_month" => |v| date_part(v, |c| c.day),
        "day_of_week" => |v| date_part(v, |c| c.weekday),
        "day_of_year" => |v| date_part(v, |c| c.yday),
        "days_in_month" => |v| date_part(v, |c| days_in_month(c.year, c.month)),
        "month" => |v| date_part(v, |c| c.month),
        "year" => |v| date_part(v, |c| c.year),
        _ => return None,
    })
}

/// A UTC calendar time.
struct Civil {
    year: i64,
    month: i64,
    day: i64,
    yday: i64,
    weekday: i64,
    hour: i64,
    minute: i64,
}

/// Reads `v` as Unix seconds (truncated, as Go's `int64(v)`) and returns `part` of it.
fn date_part(v: f64, part: fn(&Civil) -> i64) -> f64 {
    if v.is_nan() || v.is_infinite() {
        return f64::NAN;
    }
    let secs = v as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = pharos_model::civil::civil_from_days(days);
    let leap = is_leap(year);
    const CUM: [i64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = CUM[(month - 1) as usize] + day + i64::from(leap && month > 2);
    let c = Civil {
        year,
        month,
        day,
        yday,
        weekday: (days + 4).rem_euclid(7),
        hour: rem / 3600,
        minute: rem % 3600 / 60,
    };
    part(&c) as f64
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Sorts by value, ascending or descending, NaN last either way.
fn sort_by_value(v: &mut [Elem], desc: bool) {
    v.sort_by(|a, b| match (a.value.is_nan(), b.value.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ if desc => b.value.total_cmp(&a.value),
        _ => a.value.total_cmp(&b.value),
    });
}

/// Compares strings with runs of digits compared as numbers ("a2" < "a10").
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, _) => return std::cmp::Ordering::Less,
            (_, None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let na = trim_zeros(&a[..da]);
                let nb = trim_zeros(&b[..db]);
                let o = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if o.is_ne() {
                    return o;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let n = d.iter().take_while(|&&c| c == b'0').count();
    &d[n..]
}

#[cfg(test)]
mod tests {
    use super::super::eval::tests::check;
    use super::*;

    #[test]
    fn math() {
        check("abs(-m{job=\"a\"})", 120, "{job=\"a\"} 120000=2");
        check("sqrt(m{job=\"b\"})", 120, "{job=\"b\"} 120000=10");
        check(
            "ln(m{job=\"a\"})",
            120,
            "{job=\"a\"} 120000=0.6931471805599453",
        );
        check("log2(m{job=\"a\"})", 120, "{job=\"a\"} 120000=1");
        check("log10(m{job=\"b\"})", 120, "{job=\"b\"} 120000=2");
        check("exp(m{job=\"a\"} - 2)", 120, "{job=\"a\"} 120000=1");
        check("ceil(m{job=\"a\"} / 3)", 120, "{job=\"a\"} 120000=1");
        check("floor(m{job=\"a\"} / 3)", 120, "{job=\"a\"} 120000=0");
        check("sgn(m{job=\"a\"} - 5)", 120, "{job=\"a\"} 120000=-1");
        check("round(m{job=\"a\"} / 4)", 120, "{job=\"a\"} 120000=1");
        check(
            "round(m{job=\"a\"} / 3, 0.25)",
            120,
            "{job=\"a\"} 120000=0.75",
        );
        check("deg(pi() * m{job=\"a\"})", 120, "{job=\"a\"} 120000=360");
        check(
            "rad(m{job=\"a\"} * 90)",
            120,
            "{job=\"a\"} 120000=3.141592653589793",
        );
        check("cos(m{job=\"a\"} - 2)", 120, "{job=\"a\"} 120000=1");
        check("sin(m{job=\"a\"} - 2)", 120, "{job=\"a\"} 120000=0");
        check("tanh(m{job=\"a\"} - 2)", 120, "{job=\"a\"} 120000=0");
        check(
            "atan(m{job=\"a\"} - 1)",
            120,
            "{job=\"a\"} 120000=0.7853981633974483",
        );
    }

    #[test]
    fn clamping() {
        check(
            "clamp(m, 3, 50)",
            120,
            "{job=\"a\"} 120000=3\n{job=\"b\"} 120000=50",
        );
        check("clamp(m, 50, 3)", 120, "");
        check(
            "clamp_min(m, 3)",
            120,
            "{job=\"a\"} 120000=3\n{job=\"b\"} 120000=100",
        );
        check(
            "clamp_max(m, 3)",
            120,
            "{job=\"a\"} 120000=2\n{job=\"b\"} 120000=3",
        );
        assert!(go_max(f64::NAN, 1.0).is_nan());
        assert!(go_min(0.0, -0.0).is_sign_negative());
    }

    #[test]
    fn time_and_dates() {
        check("time()", 120, "scalar 120000=120");
        check("timestamp(m{job=\"a\"})", 130, "{job=\"a\"} 130000=120");
        check("timestamp(m{job=\"a\"} * 1)", 130, "{job=\"a\"} 130000=130");
        check("year()", 0, "{} 0=1970");
        check("month()", 0, "{} 0=1");
        // 2024-02-29T13:45:00Z is 1709214300.
        check("year(vector(1709214300))", 0, "{} 0=2024");
        check("month(vector(1709214300))", 0, "{} 0=2");
        check("day_of_month(vector(1709214300))", 0, "{} 0=29");
        check("day_of_week(vector(1709214300))", 0, "{} 0=4");
        check("day_of_year(vector(1709214300))", 0, "{} 0=60");
        check("days_in_month(vector(1709214300))", 0, "{} 0=29");
        check("hour(vector(1709214300))", 0, "{} 0=13");
        check("minute(vector(1709214300))", 0, "{} 0=45");
        check("day_of_week(vector(-1))", 0, "{} 0=3");
    }

    #[test]
    fn scalar_vector_absent() {
        check("scalar(m{job=\"a\"})", 120, "scalar 120000=2");
        check("scalar(m)", 120, "scalar 120000=NaN");
        check("vector(3)", 120, "{} 120000=3");
        check("absent(m)", 120, "");
        check(
            "absent(nope{a=\"1\", b=~\"x\", c=\"2\", c=\"3\"})",
            120,
            "{a=\"1\"} 120000=1",
        );
        check("absent(sum(nope))", 120, "{} 120000=1");
        check("absent_over_time(m[1m])", 120, "");
        check(
            "absent_over_time(nope{a=\"1\"}[1m])",
            120,
            "{a=\"1\"} 120000=1",
        );
    }

    #[test]
    fn labels_and_sorting() {
        check(
            "label_replace(m, \"dst\", \"x-$1\", \"job\", \"(.*)\")",
            120,
            "{__name__=\"m\", dst=\"x-a\", job=\"a\"} 120000=2\n{__name__=\"m\", dst=\"x-b\", job=\"b\"} 120000=100",
        );
        check(
            "label_replace(m{job=\"a\"}, \"job\", \"\", \"job\", \"a\")",
            120,
            "{__name__=\"m\"} 120000=2",
        );
        check(
            "label_replace(m{job=\"a\"}, \"job\", \"z\", \"job\", \"nomatch\")",
            120,
            "{__name__=\"m\", job=\"a\"} 120000=2",
        );
        check(
            "label_replace(m, \"1x\", \"\", \"job\", \"a\")",
            120,
            "error: invalid destination label name in label_replace(): 1x",
        );
        check(
            "label_replace(m, \"job\", \"\", \"job\", \".*\")",
            120,
            "error: vector cannot contain metrics with the same labelset",
        );
        check(
            "label_join(m{job=\"a\"}, \"d\", \"-\", \"job\", \"__name__\")",
            120,
            "{__name__=\"m\", d=\"a-m\", job=\"a\"} 120000=2",
        );
        check(
            "sort_desc(m)",
            120,
            "{__name__=\"m\", job=\"b\"} 120000=100\n{__name__=\"m\", job=\"a\"} 120000=2",
        );
        check(
            "sort(m)",
            120,
            "{__name__=\"m\", job=\"a\"} 120000=2\n{__name__=\"m\", job=\"b\"} 120000=100",
        );
        check(
            "sort_by_label_desc(m, \"job\")",
            120,
            "{__name__=\"m\", job=\"b\"} 120000=100\n{__name__=\"m\", job=\"a\"} 120000=2",
        );
        assert!(natural_cmp("a2", "a10").is_lt());
        assert!(natural_cmp("a02", "a1").is_gt());
        assert!(natural_cmp("b", "a9").is_gt());
    }

    #[test]
    fn range_functions_over_selectors_and_subqueries() {
        // job="a" is k at k*60s: rate over [5m] at 300s sees 0..5 at 0s..300s, except 0s.
        check(
            "rate(m{job=\"a\"}[5m])",
            300,
            "{job=\"a\"} 300000=0.016666666666666666",
        );
        check("increase(m{job=\"a\"}[5m])", 300, "{job=\"a\"} 300000=5");
        check("delta(m{job=\"a\"}[2m])", 300, "{job=\"a\"} 300000=2");
        check(
            "irate(m{job=\"a\"}[5m])",
            300,
            "{job=\"a\"} 300000=0.016666666666666666",
        );
        check("idelta(m{job=\"a\"}[5m])", 300, "{job=\"a\"} 300000=1");
        check(
            "deriv(m{job=\"a\"}[5m])",
            300,
            "{job=\"a\"} 300000=0.016666666666666666",
        );
        check(
            "predict_linear(m{job=\"a\"}[5m], 60)",
            300,
            "{job=\"a\"} 300000=6",
        );
        check("changes(m{job=\"a\"}[5m])", 300, "{job=\"a\"} 300000=4");
        check("resets(m{job=\"a\"}[5m])", 300, "{job=\"a\"} 300000=0");
        check(
            "sum_over_time(m{job=\"a\"}[5m])",
            300,
            "{job=\"a\"} 300000=15",
        );
        check(
            "count_over_time(m[5m])",
            300,
            "{job=\"a\"} 300000=5\n{job=\"b\"} 300000=1",
        );
        check(
            "last_over_time(m{job=\"a\"}[5m])",
            300,
            "{__name__=\"m\", job=\"a\"} 300000=5",
        );
        check(
            "max_over_time(m{job=\"a\"}[5m] offset 1m)",
            300,
            "{job=\"a\"} 300000=4",
        );
        check(
            "quantile_over_time(0.5, m{job=\"a\"}[5m])",
            300,
            "{job=\"a\"} 300000=3",
        );
        check(
            "present_over_time(m{job=\"a\"}[1m])",
            300,
            "{job=\"a\"} 300000=1",
        );
        check(
            "max_over_time(m{job=\"a\"}[5m:1m])",
            300,
            "{job=\"a\"} 300000=5",
        );
        check(
            "min_over_time((m{job=\"a\"} * 2)[5m:2m])",
            300,
            "{job=\"a\"} 300000=4",
        );
        check(
            "sum_over_time(m{job=\"a\"}[5m:1m] offset 1m)",
            300,
            "{job=\"a\"} 300000=10",
        );
        check(
            "m{job=\"a\"}[3m:1m] @ 240",
            999,
            "{__name__=\"m\", job=\"a\"} 120000=2 180000=3 240000=4",
        );
        check(
            "{__name__=~\"m|other\", x!=\"q\"} and rate({__name__=~\"m|nope\"}[5m])",
            300,
            "{__name__=\"m\", job=\"a\"} 300000=5",
        );
        check(
            "rate({__name__=~\"m|n\"}[5m])",
            300,
            "error: vector cannot contain metrics with the same labelset",
        );
    }
}
