//! The README's example: a topology in Rust, run in-process until its source ends.
use squall::bolts::{count::CountConfig, tokenize::TokenizeConfig};
use squall::component::registry::{BoltConfig, SpoutConfig};
use squall::spouts::generator::GeneratorSpoutConfig;
use squall::{Config, LocalCluster, TopologyBuilder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let source = GeneratorSpoutConfig {
        limit: 100_000,
        ..Default::default()
    };
    let mut b = TopologyBuilder::new("word-count");
    b.spout_factory("source", source.build()?, 1);
    b.bolt_factory("split", TokenizeConfig::default().build()?, 2)
        .shuffle("source");
    b.bolt_factory("count", CountConfig::default().build()?, 2)
        .fields("split", ["word"]);
    let run = LocalCluster::submit(b.build()?, Config::default())?;
    let summary = run.join()?; // the generator stops after `limit` tweets
    let count = &summary.metrics.components["count"];
    println!(
        "{} words counted, {} tweets acked",
        count.executed, summary.metrics.components["source"].acked
    );
    Ok(())
}
