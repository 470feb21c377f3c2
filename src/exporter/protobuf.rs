//! The Prometheus protobuf exposition (`io.prometheus.client.MetricFamily`, length-delimited)
//! with native histograms: the messages of client_model's metrics.proto that the exporter
//! writes, as prost types, and the conversion of the families it renders. The `prometheus`
//! crate's own proto types have no native-histogram fields.

use prometheus::proto as classic;
use prost::Message;

use super::metrics::{Hist, SCHEMA};

/// The Content-Type of the protobuf exposition, and what a scraper's Accept names.
pub const CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

#[derive(Clone, PartialEq, Message)]
pub struct LabelPair {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Gauge {
    #[prost(double, optional, tag = "1")]
    pub value: Option<f64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Counter {
    #[prost(double, optional, tag = "1")]
    pub value: Option<f64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Bucket {
    #[prost(uint64, optional, tag = "1")]
    pub cumulative_count: Option<u64>,
    #[prost(double, optional, tag = "2")]
    pub upper_bound: Option<f64>,
}

/// `offset` buckets after the previous span's last (for the first, the index of its first
/// bucket), `length` buckets in a row.
#[derive(Clone, PartialEq, Message)]
pub struct BucketSpan {
    #[prost(sint32, optional, tag = "1")]
    pub offset: Option<i32>,
    #[prost(uint32, optional, tag = "2")]
    pub length: Option<u32>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Histogram {
    #[prost(uint64, optional, tag = "1")]
    pub sample_count: Option<u64>,
    #[prost(double, optional, tag = "2")]
    pub sample_sum: Option<f64>,
    #[prost(message, repeated, tag = "3")]
    pub bucket: Vec<Bucket>,
    #[prost(sint32, optional, tag = "5")]
    pub schema: Option<i32>,
    #[prost(double, optional, tag = "6")]
    pub zero_threshold: Option<f64>,
    #[prost(uint64, optional, tag = "7")]
    pub zero_count: Option<u64>,
    #[prost(message, repeated, tag = "12")]
    pub positive_span: Vec<BucketSpan>,
    /// Each bucket's count less the previous bucket's (the first's less zero).
    #[prost(sint64, repeated, packed = "false", tag = "13")]
    pub positive_delta: Vec<i64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Metric {
    #[prost(message, repeated, tag = "1")]
    pub label: Vec<LabelPair>,
    #[prost(message, optional, tag = "2")]
    pub gauge: Option<Gauge>,
    #[prost(message, optional, tag = "3")]
    pub counter: Option<Counter>,
    #[prost(message, optional, tag = "7")]
    pub histogram: Option<Histogram>,
}

#[derive(Clone, PartialEq, Message)]
pub struct MetricFamily {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub help: Option<String>,
    /// metrics.proto's MetricType: 0 counter, 1 gauge, 4 histogram.
    #[prost(int32, optional, tag = "3")]
    pub r#type: Option<i32>,
    #[prost(message, repeated, tag = "4")]
    pub metric: Vec<Metric>,
}

/// `family` in the protobuf exposition, each length-delimited; its histograms get the
/// native buckets of `hists`, one per metric in order (none for other families).
pub fn encode(family: &classic::MetricFamily, hists: &[&Hist], out: &mut Vec<u8>) {
    let metrics = family.get_metric().iter().enumerate();
    let converted = MetricFamily {
        name: Some(family.name().to_owned()),
        help: Some(family.help().to_owned()),
        r#type: Some(family.get_field_type() as i32),
        metric: metrics
            .map(|(i, m)| metric(m, hists.get(i).copied()))
            .collect(),
    };
    // Writing into a Vec only fails when it cannot grow, which aborts first.
    let _ = converted.encode_length_delimited(out);
}

fn metric(m: &classic::Metric, hist: Option<&Hist>) -> Metric {
    let label = m.get_label().iter().map(|pair| LabelPair {
        name: Some(pair.name().to_owned()),
        value: Some(pair.value().to_owned()),
    });
    let mut converted = Metric {
        label: label.collect(),
        ..Metric::default()
    };
    if let Some(c) = m.counter.as_ref() {
        converted.counter = Some(Counter {
            value: Some(c.value()),
        });
    }
    if let Some(g) = m.gauge.as_ref() {
        converted.gauge = Some(Gauge {
            value: Some(g.value()),
        });
    }
    if let Some(h) = m.histogram.as_ref() {
        converted.histogram = Some(histogram(h, hist));
    }
    converted
}

/// The classic buckets, and with `hist` its native ones.
fn histogram(h: &classic::Histogram, hist: Option<&Hist>) -> Histogram {
    let bucket = h.get_bucket().iter().map(|b| Bucket {
        cumulative_count: Some(b.cumulative_count()),
        upper_bound: Some(b.upper_bound()),
    });
    let mut converted = Histogram {
        sample_count: Some(h.get_sample_count()),
        sample_sum: Some(h.get_sample_sum()),
        bucket: bucket.collect(),
        ..Histogram::default()
    };
    if let Some(hist) = hist {
        add_native(&mut converted, hist);
    }
    converted
}

/// Schema, zero bucket, spans of the non-empty buckets and their deltas. A histogram
/// without samples gets the no-op span (0, 0) that marks it native.
pub fn add_native(h: &mut Histogram, hist: &Hist) {
    let (zero, buckets) = hist.native();
    h.schema = Some(SCHEMA);
    h.zero_threshold = Some(super::metrics::bound_seconds(0));
    h.zero_count = Some(zero);
    let mut previous: Option<(i32, u64)> = None;
    for (index, count) in buckets {
        match previous {
            Some((last, _)) if index == last + 1 => {
                let span = h.positive_span.last_mut().expect("a span");
                span.length = Some(span.length.unwrap_or(0) + 1);
            }
            _ => h.positive_span.push(BucketSpan {
                offset: Some(previous.map_or(index, |(last, _)| index - last - 1)),
                length: Some(1),
            }),
        }
        let before = previous.map_or(0, |(_, n)| n);
        h.positive_delta.push(count as i64 - before as i64);
        previous = Some((index, count));
    }
    if h.positive_span.is_empty() {
        h.positive_span.push(BucketSpan {
            offset: Some(0),
            length: Some(0),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exporter::metrics::slot_of;
    use prometheus::proto::MetricType;

    #[test]
    fn metric_types_are_numbered_as_in_metrics_proto() {
        let number = |kind: MetricType| kind as i32;
        assert_eq!(number(MetricType::COUNTER), 0);
        assert_eq!(number(MetricType::GAUGE), 1);
        assert_eq!(number(MetricType::HISTOGRAM), 4);
    }

    #[test]
    fn spans_and_deltas_of_the_native_buckets() {
        let mut hist = Hist::default();
        // The zero bucket; k = -19 (up to 1.381 ms) three times; k = -18 (up to 1.953
        // ms) once; k = 0 (up to 1 s) three times.
        for ns in [100, 1_000_000, 1_000_000, 1_300_000, 1_500_000] {
            hist.slots[slot_of(ns)] += 1;
        }
        hist.slots[slot_of(1_000_000_000)] += 3;
        let mut h = Histogram::default();
        add_native(&mut h, &hist);
        assert_eq!(h.schema, Some(1));
        assert_eq!(h.zero_threshold, Some(2f64.powi(-20)));
        assert_eq!(h.zero_count, Some(1));
        let spans: Vec<(i32, u32)> = h
            .positive_span
            .iter()
            .map(|s| (s.offset.unwrap(), s.length.unwrap()))
            .collect();
        assert_eq!(spans, vec![(-19, 2), (17, 1)]);
        assert_eq!(h.positive_delta, vec![3, -2, 2]);
    }

    #[test]
    fn an_empty_native_histogram_has_the_no_op_span() {
        let mut h = Histogram::default();
        add_native(&mut h, &Hist::default());
        assert_eq!(
            h.positive_span,
            vec![BucketSpan {
                offset: Some(0),
                length: Some(0)
            }]
        );
        assert!(h.positive_delta.is_empty());
    }
}
