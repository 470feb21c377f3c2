//! tcptools-exporter's kernel side: the three tools' programs, loaded by the tools' own
//! loaders, and the event streams and map reads that feed the metrics.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::metrics::{Log2Hist, Metrics, RttTotals};
use super::{exposition, RTT_SLOTS};
use crate::attach::Attached;
use crate::container::ContainerFilter;
use crate::event_source;
use crate::net::{Endpoints, PortFilter};
use crate::skel::tcpconnlat::TcpconnlatSkel;
use crate::skel::tcpstates::TcpstatesSkel;
use crate::stream::{EventStream, Transport};
use crate::tcpconnlat::ConnectLatency;
use crate::tcprtt::bpf::{self as rtt_bpf, KeyBy};
use crate::tcpstates::StateChange;
use crate::{tcpconnlat, tcprtt, tcpstates};

/// How often the kernel's RTT histograms are read between scrapes: often enough that no
/// 32-bit slot can wrap twice in between.
const RTT_READ_EVERY: Duration = Duration::from_secs(1);
/// Bound on the RTT map's keys read per pass (the exporter keys it by family: 2 keys).
const MAX_RTT_KEYS: usize = 64;

/// The attached programs: tcpstates' and tcpconnlat's for every socket (the port filter
/// is applied to their records), tcprtt's keyed by family with the port filter in the
/// kernel and one generation forever, so its histograms are cumulative from load.
pub struct Programs {
    transport: Transport,
    states: Attached<TcpstatesSkel<'static>>,
    connlat: Attached<TcpconnlatSkel<'static>>,
    rtt: Attached<rtt_bpf::Skel>,
}

impl Programs {
    pub fn load(ports: &PortFilter) -> Result<Programs> {
        let transport = Transport::choose();
        let everywhere = ContainerFilter::default();
        let states = tcpstates::bpf::load(&Default::default(), &everywhere, transport)
            .context("tcpstates's programs")?;
        let connlat = tcpconnlat::bpf::load(&Default::default(), &everywhere, transport)
            .context("tcpconnlat's programs")?;
        let rtt_filter = tcprtt::bpf::Filter {
            local_ports: ports.local.clone(),
            remote_ports: ports.remote.clone(),
            ..Default::default()
        };
        let rtt = rtt_bpf::load(&rtt_filter, &everywhere, KeyBy::Family, false)
            .context("tcprtt's programs")?;
        Ok(Programs {
            transport,
            states,
            connlat,
            rtt,
        })
    }
}

/// A record of one of the event streams.
enum Record {
    State(StateChange),
    Connect(ConnectLatency),
}

/// The callback of `source`'s stream: decodes each record and counts it unless its socket
/// is outside `ports`; a record too short to decode is counted as malformed.
fn counter(
    metrics: &Rc<RefCell<Metrics>>,
    ports: PortFilter,
    source: &'static str,
    decode: fn(&[u8]) -> Option<(Endpoints, Record)>,
) -> impl FnMut(&[u8]) {
    let metrics = Rc::clone(metrics);
    move |data| {
        let mut metrics = metrics.borrow_mut();
        match decode(data) {
            Some((socket, _)) if !ports.allows(&socket) => {}
            Some((_, Record::State(change))) => metrics.record_state_change(&change),
            Some((_, Record::Connect(connect))) => metrics.record_connect(&connect),
            None => metrics.count_malformed(source),
        }
    }
}

/// The metrics, kept current from the programs' streams and maps.
pub struct Collector<'a> {
    programs: &'a Programs,
    metrics: Rc<RefCell<Metrics>>,
    states: EventStream<'a>,
    connlat: EventStream<'a>,
    rtt_totals: RttTotals,
    last_refresh: Instant,
}

impl<'a> Collector<'a> {
    /// Opens the event streams; records outside `ports` are not counted.
    pub fn open(programs: &'a Programs, ports: PortFilter) -> Result<Collector<'a>> {
        let metrics = Rc::new(RefCell::new(Metrics::new()));
        let states = EventStream::open(
            event_source!(programs.transport, programs.states),
            counter(&metrics, ports.clone(), "tcpstates", |data| {
                StateChange::decode(data).map(|c| (c.endpoints, Record::State(c)))
            }),
        )?;
        let connlat = EventStream::open(
            event_source!(programs.transport, programs.connlat),
            counter(&metrics, ports, "tcpconnlat", |data| {
                ConnectLatency::decode(data).map(|c| (c.endpoints, Record::Connect(c)))
            }),
        )?;
        Ok(Collector {
            programs,
            metrics,
            states,
            connlat,
            rtt_totals: RttTotals::default(),
            last_refresh: Instant::now(),
        })
    }

    /// Waits up to `timeout` on each stream and counts what arrived.
    pub fn poll(&self, timeout: Duration) -> Result<()> {
        self.states.poll(timeout)?;
        self.connlat.poll(timeout)
    }

    /// The exposition, with everything that happened before this call in it.
    pub fn scrape(&mut self) -> Result<String> {
        self.poll(Duration::ZERO)?;
        self.refresh()?;
        Ok(exposition::render(&self.metrics.borrow()))
    }

    /// Reads the RTT histograms and loss counts once a second, and reports losses.
    pub fn refresh_if_due(&mut self) -> Result<()> {
        if self.last_refresh.elapsed() < RTT_READ_EVERY {
            return Ok(());
        }
        self.refresh()?;
        self.states.losses().report();
        self.connlat.losses().report();
        Ok(())
    }

    fn refresh(&mut self) -> Result<()> {
        self.last_refresh = Instant::now();
        let mut metrics = self.metrics.borrow_mut();
        for hist in rtt_bpf::read_all(&self.programs.rtt.skel, MAX_RTT_KEYS)? {
            let into = metrics
                .rtt
                .entry(hist.family)
                .or_insert_with(|| Log2Hist::new(RTT_SLOTS));
            self.rtt_totals
                .update(hist.family, &hist.slots, hist.sum, into);
        }
        metrics.lost.insert("tcpstates", self.states.lost_total());
        metrics.lost.insert("tcpconnlat", self.connlat.lost_total());
        let programs = self.programs;
        metrics
            .skipped
            .insert("tcpstates", programs.states.kernel_skips());
        metrics
            .skipped
            .insert("tcpconnlat", programs.connlat.kernel_skips());
        metrics
            .skipped
            .insert("tcprtt", programs.rtt.kernel_skips());
        Ok(())
    }
}
