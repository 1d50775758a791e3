//! `latency.svg`: complete latency (p99 solid, p50 dashed; log-scale ms) against achieved
//! throughput, one colour per mode. Failed points are left out.

use std::path::Path;

use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::table::{Bench, Point};

/// Why the chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ChartError(String);

fn err<E: std::fmt::Display>(e: E) -> ChartError {
    ChartError(e.to_string())
}

const COLORS: [RGBColor; 5] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0xff, 0x7f, 0x0e),
];

/// The lowest latency the log axis shows (1 µs), so a zero percentile stays drawable.
const FLOOR_MS: f64 = 0.001;

/// A point of a line: (achieved tuples/s, p50 ms, p99 ms).
type Sample = (f64, f64, f64);

/// A mode and its samples.
type ModeLine = (String, Vec<Sample>);

/// One mode's line, sorted by throughput.
pub fn series(points: &[Point], mode: &str) -> Vec<Sample> {
    let mut v: Vec<Sample> = points
        .iter()
        .filter(|p| p.ok && p.mode == mode)
        .map(|p| {
            (
                p.achieved_tps,
                (p.latency_us.p50 / 1000.0).max(FLOOR_MS),
                (p.latency_us.p99 / 1000.0).max(FLOOR_MS),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

/// The modes of the points, in first-seen order.
fn modes(points: &[Point]) -> Vec<String> {
    let mut m: Vec<String> = Vec::new();
    for p in points {
        if !m.contains(&p.mode) {
            m.push(p.mode.clone());
        }
    }
    m
}

/// The axes' ranges: x from 0, y (ms) a decade around the data, on whole powers of ten.
fn ranges(lines: &[ModeLine]) -> (f64, f64, f64) {
    let all = lines.iter().flat_map(|(_, v)| v.iter());
    let x_max = all.clone().map(|p| p.0).fold(0.0, f64::max);
    let lo = all
        .clone()
        .map(|p| p.1.min(p.2))
        .fold(f64::INFINITY, f64::min);
    let hi = all.map(|p| p.1.max(p.2)).fold(0.0, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > 0.0 {
        (lo, hi)
    } else {
        (0.01, 100.0)
    };
    // A hair below the power of ten, so that its label is drawn.
    let y_min = 10f64.powf(lo.log10().floor()).max(FLOOR_MS) * 0.99;
    let mut y_max = 10f64.powf(hi.log10().ceil());
    if y_max <= y_min {
        y_max = y_min * 10.0;
    }
    let x_max = if x_max > 0.0 { x_max * 1.1 } else { 1.0 };
    (x_max, y_min, y_max)
}

/// Writes the chart of `bench` to `path`.
pub fn draw(bench: &Bench, path: &Path) -> Result<(), ChartError> {
    let lines: Vec<ModeLine> = modes(&bench.points)
        .into_iter()
        .map(|m| {
            let s = series(&bench.points, &m);
            (m, s)
        })
        .collect();
    let (x_max, y_min, y_max) = ranges(&lines);

    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{}: complete latency vs throughput", bench.topology),
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(0f64..x_max, (y_min..y_max).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("achieved throughput (tuples/s)")
        .y_desc("complete latency (ms, log scale)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y}"))
        .draw()
        .map_err(err)?;

    for (i, (mode, pts)) in lines.iter().enumerate() {
        if pts.is_empty() {
            continue;
        }
        let color = COLORS[i % COLORS.len()];
        let solid = color.stroke_width(2);
        let light = color.mix(0.6).stroke_width(2);
        chart
            .draw_series(LineSeries::new(pts.iter().map(|p| (p.0, p.2)), solid))
            .map_err(err)?
            .label(format!("{mode} p99"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], solid));
        chart
            .draw_series(
                pts.iter()
                    .map(|p| Circle::new((p.0, p.2), 3, color.filled())),
            )
            .map_err(err)?;
        chart
            .draw_series(DashedLineSeries::new(
                pts.iter().map(|p| (p.0, p.1)),
                6,
                4,
                light,
            ))
            .map_err(err)?
            .label(format!("{mode} p50"))
            .legend(move |(x, y)| DashedPathElement::new(vec![(x, y), (x + 24, y)], 6, 4, light));
        chart
            .draw_series(
                pts.iter()
                    .map(|p| Circle::new((p.0, p.1), 2, light.filled())),
            )
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::table::{Latency, Machine};
    use super::*;

    fn point(mode: &str, tps: f64, p50: f64, p99: f64, ok: bool) -> Point {
        Point {
            mode: mode.into(),
            offered_tps: Some(1),
            achieved_tps: tps,
            latency_us: Latency {
                p50,
                p90: p99,
                p99,
                p999: p99,
                max: p99,
            },
            cpu_percent: 0.0,
            peak_rss_mib: 0.0,
            acked: 0,
            failed: 0,
            ok,
            error: None,
            runs: Vec::new(),
        }
    }

    #[test]
    fn series_are_sorted_by_throughput_without_failed_points() {
        let pts = vec![
            point("event", 5000.0, 200.0, 900.0, true),
            point("event", 1000.0, 100.0, 0.0, true),
            point("event", 9000.0, 1.0, 1.0, false),
            point("microbatch", 7000.0, 1.0, 1.0, true),
        ];
        assert_eq!(
            series(&pts, "event"),
            vec![(1000.0, 0.1, FLOOR_MS), (5000.0, 0.2, 0.9)]
        );
    }

    #[test]
    fn draws_an_svg_with_a_line_and_legend_per_mode() {
        let dir = std::env::temp_dir().join(format!("squall-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("latency.svg");
        let bench = Bench {
            topology: "t".into(),
            file: "t.toml".into(),
            duration_s: 1.0,
            warmup_s: 0.0,
            machine: Machine {
                cores: 1,
                cpu_model: "x".into(),
                os: "y".into(),
            },
            command: vec![],
            stalls_before: None,
            stalls_after: None,
            points: vec![
                point("event", 1000.0, 100.0, 500.0, true),
                point("event", 2000.0, 150.0, 900.0, true),
                point("microbatch", 1500.0, 50_000.0, 100_000.0, true),
                point("microbatch", 3000.0, 60_000.0, 120_000.0, true),
            ],
        };
        draw(&bench, &path).expect("draw");
        let svg = std::fs::read_to_string(&path).expect("svg");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
        for label in ["event p99", "event p50", "microbatch p99", "microbatch p50"] {
            assert!(svg.contains(label), "no legend `{label}`");
        }
        assert!(svg.matches("<polyline").count() >= 2);
    }

    #[test]
    fn an_empty_bench_still_draws() {
        let dir = std::env::temp_dir().join(format!("squall-chart-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("latency.svg");
        let bench = Bench {
            topology: "t".into(),
            file: "t.toml".into(),
            duration_s: 1.0,
            warmup_s: 0.0,
            machine: Machine {
                cores: 1,
                cpu_model: "x".into(),
                os: "y".into(),
            },
            command: vec![],
            stalls_before: None,
            stalls_after: None,
            points: vec![point("event", 0.0, 0.0, 0.0, false)],
        };
        let r = draw(&bench, &path);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(r.is_ok(), "{r:?}");
    }
}
