use squall::*;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Duration;

#[derive(Clone)]
struct Counter {
    n: u64,
    limit: u64,
}
impl Spout for Counter {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(Fields::new(["n"]));
    }
    fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) -> SpoutStatus {
        if self.n >= self.limit {
            return SpoutStatus::Exhausted;
        }
        self.n += 1;
        match out.emit(values![self.n as i64], Some(self.n)) {
            Ok(()) => SpoutStatus::Emitted,
            Err(_) => SpoutStatus::Idle,
        }
    }
}
#[derive(Clone)]
struct Id;
impl Bolt for Id {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(Fields::new(["n"]));
    }
    fn execute(&mut self, t: Tuple, out: &mut BoltCollector<'_>) -> ComponentResult {
        out.emit(t.into_values())
    }
}
#[derive(Clone)]
struct Null;
impl Bolt for Null {
    fn execute(&mut self, _t: Tuple, _out: &mut BoltCollector<'_>) -> ComponentResult {
        Ok(())
    }
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let acking = std::env::args().nth(2).map(|s| s != "off").unwrap_or(true);
    let mut b = TopologyBuilder::new("smoke");
    b.spout("source", Counter { n: 0, limit: n }, 1);
    b.bolt("id", Id, 1).shuffle("source");
    b.bolt("sink", Null, 1).shuffle("id");
    let topo = b.build().unwrap();
    let cfg = Config {
        acking,
        ..Config::default()
    };
    let t = std::time::Instant::now();
    let run = LocalCluster::submit(topo, cfg).unwrap();
    if !run.wait_finished(Duration::from_secs(120)) {
        eprintln!(
            "not finished: {:?}",
            run.metrics()
                .components
                .get("source")
                .map(|c| (c.emitted, c.acked, c.pending))
        );
    }
    let s = run.join().unwrap();
    let el = t.elapsed().as_secs_f64();
    let src = &s.metrics.components["source"];
    println!(
        "{} tuples in {:.3}s = {:.0}/s; acked {} failed {} complete p50 {}us p99 {}us",
        src.emitted,
        el,
        src.emitted as f64 / el,
        src.acked,
        src.failed,
        src.complete_latency_us.p50,
        src.complete_latency_us.p99
    );
    println!(
        "{:?}",
        s.metrics
            .components
            .iter()
            .map(|(k, c)| (k.clone(), c.executed, c.emitted))
            .collect::<Vec<_>>()
    );
}
