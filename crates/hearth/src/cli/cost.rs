//! `hearth cost`: what a million generated tokens costs here, against cloud
//! prices, and after how many months the hardware has paid for itself.
//!
//! Local cost per million tokens = energy + hardware:
//! - energy: `watts × (1e6 / tokens_per_s)` seconds, in kWh
//!   (`÷ 3.6e6` joules per kWh), times the electricity price;
//! - hardware: the price spread over its lifetime in months, divided by the
//!   millions of tokens generated each month.
//!
//! Cloud cost per month = monthly millions × the cloud's price per million.
//! Break-even: the months after which the hardware price is recovered by the
//! monthly saving (cloud cost − local energy cost); never if there is none.
//!
//! Throughput is given (`--tokens-per-s`) or measured on a model
//! (`--model`, greedy decoding of random tokens as `hearth bench` does);
//! power is given (`--watts`), or read from the RAPL energy counters
//! (/sys/class/powercap/intel-rapl:N/energy_uj) during that measurement, or
//! the configured default.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use model::{LoadOptions, Logits, Model};

/// Arguments of `hearth cost`.
#[derive(Debug, clap::Args)]
pub struct CostArgs {
    /// Measure decode throughput (and power, where RAPL is readable) on this model.
    #[arg(long, conflicts_with = "tokens_per_s")]
    model: Option<PathBuf>,
    /// Decode throughput in tokens per second (instead of --model).
    #[arg(long)]
    tokens_per_s: Option<f64>,
    /// Power draw while generating, watts (default: measured by RAPL, else 65).
    #[arg(long)]
    watts: Option<f64>,
    /// Electricity price per kWh.
    #[arg(long, default_value_t = 0.30)]
    electricity_per_kwh: f64,
    /// Hardware price.
    #[arg(long, default_value_t = 2000.0)]
    hardware_price: f64,
    /// Hardware lifetime in months.
    #[arg(long, default_value_t = 36.0)]
    lifetime_months: f64,
    /// Tokens generated per month.
    #[arg(long, default_value_t = 100_000_000.0)]
    monthly_tokens: f64,
    /// Cloud prices per million tokens, NAME=PRICE (repeatable; default: a
    /// small, a mid-size and a large hosted model's output prices).
    #[arg(long = "cloud", value_name = "NAME=PRICE")]
    cloud: Vec<String>,
    /// Months the cost-over-time table and plot cover.
    #[arg(long, default_value_t = 36)]
    months: usize,
    /// Threads for --model (default: every core).
    #[arg(short, long)]
    threads: Option<usize>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Draw cumulative cost over the months (SVG).
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
}

/// Watts used when neither --watts nor RAPL gives them: a desktop CPU's
/// package power under an all-core load.
const DEFAULT_WATTS: f64 = 65.0;

/// Output prices per million tokens of hosted models used when no --cloud is
/// given (illustrative list prices, USD).
const DEFAULT_CLOUDS: [(&str, f64); 3] = [
    ("small-hosted", 0.60),
    ("mid-hosted", 10.0),
    ("large-hosted", 60.0),
];

/// The inputs of the arithmetic.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CostInputs {
    pub tokens_per_s: f64,
    pub watts: f64,
    pub electricity_per_kwh: f64,
    pub hardware_price: f64,
    pub lifetime_months: f64,
    pub monthly_tokens: f64,
    pub clouds: Vec<(String, f64)>,
}

/// One cloud against local.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub(crate) struct CloudComparison {
    pub name: String,
    pub price_per_mtok: f64,
    pub monthly_cost: f64,
    /// Months until the hardware is paid back; `None`: never.
    pub break_even_months: Option<f64>,
}

/// The results.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub(crate) struct CostReport {
    pub energy_per_mtok: f64,
    pub hardware_per_mtok: f64,
    pub local_per_mtok: f64,
    pub local_energy_monthly: f64,
    pub local_monthly: f64,
    /// Share of a month's seconds spent generating the monthly volume.
    pub utilisation: f64,
    pub clouds: Vec<CloudComparison>,
}

const SECONDS_PER_MONTH: f64 = 30.4375 * 86_400.0;

/// The arithmetic of the module overview.
pub(crate) fn compute(i: &CostInputs) -> anyhow::Result<CostReport> {
    for (name, v) in [
        ("tokens per second", i.tokens_per_s),
        ("lifetime", i.lifetime_months),
        ("monthly tokens", i.monthly_tokens),
    ] {
        if !(v.is_finite() && v > 0.0) {
            bail!("{name} must be positive, got {v}");
        }
    }
    for (name, v) in [
        ("watts", i.watts),
        ("electricity price", i.electricity_per_kwh),
        ("hardware price", i.hardware_price),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            bail!("{name} must not be negative, got {v}");
        }
    }
    let seconds_per_mtok = 1e6 / i.tokens_per_s;
    let energy_per_mtok = i.watts * seconds_per_mtok / 3.6e6 * i.electricity_per_kwh;
    let mtok_monthly = i.monthly_tokens / 1e6;
    let hardware_monthly = i.hardware_price / i.lifetime_months;
    let hardware_per_mtok = hardware_monthly / mtok_monthly;
    let local_energy_monthly = energy_per_mtok * mtok_monthly;
    let clouds = i
        .clouds
        .iter()
        .map(|(name, price)| {
            let monthly_cost = price * mtok_monthly;
            let saving = monthly_cost - local_energy_monthly;
            CloudComparison {
                name: name.clone(),
                price_per_mtok: *price,
                monthly_cost,
                break_even_months: (saving > 0.0).then(|| i.hardware_price / saving),
            }
        })
        .collect();
    Ok(CostReport {
        energy_per_mtok,
        hardware_per_mtok,
        local_per_mtok: energy_per_mtok + hardware_per_mtok,
        local_energy_monthly,
        local_monthly: local_energy_monthly + hardware_monthly,
        utilisation: mtok_monthly * seconds_per_mtok / SECONDS_PER_MONTH,
        clouds,
    })
}

/// Runs `hearth cost`.
pub fn run(args: &CostArgs) -> anyhow::Result<()> {
    let clouds = if args.cloud.is_empty() {
        DEFAULT_CLOUDS
            .iter()
            .map(|(n, p)| ((*n).to_owned(), *p))
            .collect()
    } else {
        args.cloud
            .iter()
            .map(|c| parse_cloud(c))
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    let (tokens_per_s, measured_watts) = match (&args.model, args.tokens_per_s) {
        (_, Some(t)) => (t, None),
        (Some(m), None) => measure(m, args.threads)?,
        (None, None) => bail!("give --tokens-per-s N or --model MODEL to measure it"),
    };
    let (watts, power_source) = match (args.watts, measured_watts) {
        (Some(w), _) => (w, "given"),
        (None, Some(w)) => (w, "measured (RAPL)"),
        (None, None) => (DEFAULT_WATTS, "default: RAPL not readable, give --watts"),
    };
    let inputs = CostInputs {
        tokens_per_s,
        watts,
        electricity_per_kwh: args.electricity_per_kwh,
        hardware_price: args.hardware_price,
        lifetime_months: args.lifetime_months,
        monthly_tokens: args.monthly_tokens,
        clouds,
    };
    let report = compute(&inputs)?;
    if let Some(plot) = &args.plot {
        plot_months(plot, &inputs, &report, args.months)?;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let json = serde_json::json!({
            "tokens_per_s": tokens_per_s,
            "watts": watts,
            "power_source": power_source,
            "electricity_per_kwh": inputs.electricity_per_kwh,
            "hardware_price": inputs.hardware_price,
            "lifetime_months": inputs.lifetime_months,
            "monthly_tokens": inputs.monthly_tokens,
            "report": report,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "throughput {tokens_per_s:.2} tokens/s, power {watts:.1} W ({power_source}), \
         electricity {:.3}/kWh, hardware {:.0} over {:.0} months, {:.0} M tokens a month",
        inputs.electricity_per_kwh,
        inputs.hardware_price,
        inputs.lifetime_months,
        inputs.monthly_tokens / 1e6
    )?;
    writeln!(
        out,
        "local: {:.4} per million tokens = energy {:.4} + hardware {:.4}; {:.2} a month; busy {:.1} % of the month",
        report.local_per_mtok,
        report.energy_per_mtok,
        report.hardware_per_mtok,
        report.local_monthly,
        100.0 * report.utilisation
    )?;
    if report.utilisation > 1.0 {
        writeln!(
            out,
            "warning: the monthly volume needs {:.1} machines like this one",
            report.utilisation.ceil()
        )?;
    }
    writeln!(out, "\n| cloud | per million | a month | break-even |")?;
    writeln!(out, "| --- | ---: | ---: | ---: |")?;
    for c in &report.clouds {
        let be = c
            .break_even_months
            .map_or_else(|| "never".to_owned(), |m| format!("{m:.1} months"));
        writeln!(
            out,
            "| {} | {:.2} | {:.2} | {be} |",
            c.name, c.price_per_mtok, c.monthly_cost
        )?;
    }
    Ok(())
}

/// `NAME=PRICE`.
fn parse_cloud(s: &str) -> anyhow::Result<(String, f64)> {
    let (name, price) = s
        .split_once('=')
        .with_context(|| format!("--cloud {s}: expected NAME=PRICE"))?;
    let price: f64 = price
        .trim()
        .parse()
        .with_context(|| format!("--cloud {s}: '{price}' is not a number"))?;
    if name.is_empty() || !(price.is_finite() && price >= 0.0) {
        bail!("--cloud {s}: expected a name and a price of 0 or more");
    }
    Ok((name.to_owned(), price))
}

/// Sum of the package energy counters in microjoules, with their wrap ranges.
fn rapl_read() -> Option<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/sys/class/powercap").ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // Packages are intel-rapl:N; their sub-zones (intel-rapl:N:M) are
        // counted in them.
        if !name.starts_with("intel-rapl:") || name.matches(':').count() != 1 {
            continue;
        }
        let read = |f: &str| -> Option<u64> {
            std::fs::read_to_string(entry.path().join(f))
                .ok()?
                .trim()
                .parse()
                .ok()
        };
        out.push((
            read("energy_uj")?,
            read("max_energy_range_uj").unwrap_or(u64::MAX),
        ));
    }
    (!out.is_empty()).then_some(out)
}

/// Decode throughput of `model` (a 16-token prompt, then 64 generated
/// tokens, one per call) and the package power during it, if RAPL is readable.
fn measure(arg: &Path, threads: Option<usize>) -> anyhow::Result<(f64, Option<f64>)> {
    if threads == Some(0) {
        bail!("--threads must be at least 1");
    }
    let path = super::model_arg::resolve(arg)?.path;
    let model = Model::load_with(&path, &LoadOptions { threads })
        .with_context(|| format!("loading {}", arg.display()))?;
    let n_vocab = model.info().n_vocab as u32;
    let (n_prompt, n_gen) = (16usize, 64usize);
    let mut state = model.new_state(n_prompt + n_gen + 1)?;
    let prompt: Vec<u32> = (0..n_prompt as u32)
        .map(|i| (i * 7919 + 13) % n_vocab)
        .collect();
    model.forward(&mut state, &prompt, Logits::Last)?;
    eprintln!(
        "measuring decode speed on {} ({n_gen} tokens)...",
        arg.display()
    );
    let before = rapl_read();
    let start = Instant::now();
    for i in 0..n_gen as u32 {
        model.forward(&mut state, &[(i * 104_729 + 7) % n_vocab], Logits::Last)?;
    }
    let secs = start.elapsed().as_secs_f64();
    let watts = match (before, rapl_read()) {
        (Some(a), Some(b)) if a.len() == b.len() => {
            let uj: u64 = a
                .iter()
                .zip(&b)
                .map(|(&(e0, max), &(e1, _))| if e1 >= e0 { e1 - e0 } else { max - e0 + e1 })
                .sum();
            Some(uj as f64 / 1e6 / secs)
        }
        _ => None,
    };
    Ok((n_gen as f64 / secs, watts))
}

/// Cumulative cost month by month: local (hardware up front, then energy)
/// against each cloud.
fn plot_months(
    path: &Path,
    inputs: &CostInputs,
    report: &CostReport,
    months: usize,
) -> anyhow::Result<()> {
    let months = months.max(1);
    let mut series = vec![super::plot::Series {
        label: "local".to_owned(),
        points: (0..=months)
            .map(|m| {
                let m = m as f64;
                (m, inputs.hardware_price + m * report.local_energy_monthly)
            })
            .collect(),
    }];
    for c in &report.clouds {
        series.push(super::plot::Series {
            label: c.name.clone(),
            points: (0..=months)
                .map(|m| (m as f64, m as f64 * c.monthly_cost))
                .collect(),
        });
    }
    super::plot::line_chart(path, "Cumulative cost", "months", "cost", &series)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    /// A 2-core box at 20 tokens/s drawing 50 W, electricity 0.30/kWh,
    /// bought for 1800 and kept 36 months, 10 M tokens a month:
    /// - 1 M tokens take 1e6 / 20 = 50 000 s; 50 W × 50 000 s = 2.5 MJ
    ///   = 2.5e6 / 3.6e6 = 0.694 kWh; × 0.30 = 0.208333 per M tokens;
    /// - hardware 1800 / 36 = 50 a month, over 10 M tokens = 5.0 per M;
    /// - local 5.208333 per M; energy 2.08333 a month, 52.08333 with hardware;
    /// - busy 10 × 50 000 s = 500 000 s of 2 629 800 s = 19.01 %;
    /// - a cloud at 10 per M costs 100 a month: saving 100 − 2.08333 =
    ///   97.91667, break-even 1800 / 97.91667 = 18.383 months;
    /// - a cloud at 0.15 per M costs 1.5 a month, less than the energy: never.
    #[test]
    fn worked_example_small_box() {
        let r = compute(&CostInputs {
            tokens_per_s: 20.0,
            watts: 50.0,
            electricity_per_kwh: 0.30,
            hardware_price: 1800.0,
            lifetime_months: 36.0,
            monthly_tokens: 10e6,
            clouds: vec![("mid".into(), 10.0), ("cheap".into(), 0.15)],
        })
        .unwrap();
        assert!(close(r.energy_per_mtok, 50.0 * 50_000.0 / 3.6e6 * 0.30));
        assert!(close(r.energy_per_mtok, 0.208_333_333_333_333_3));
        assert!(close(r.hardware_per_mtok, 5.0));
        assert!(close(r.local_per_mtok, 5.208_333_333_333_333));
        assert!(close(r.local_energy_monthly, 2.083_333_333_333_333));
        assert!(close(r.local_monthly, 52.083_333_333_333_33));
        assert!(close(r.utilisation, 500_000.0 / 2_629_800.0));
        assert!(close(r.clouds[0].monthly_cost, 100.0));
        assert!(close(
            r.clouds[0].break_even_months.unwrap(),
            1800.0 / (100.0 - 2.083_333_333_333_333)
        ));
        assert!((r.clouds[0].break_even_months.unwrap() - 18.383).abs() < 1e-3);
        assert_eq!(r.clouds[1].break_even_months, None);
    }

    /// A workstation at 100 tokens/s, 350 W, electricity 0.12/kWh, 6000 over
    /// 48 months, 500 M tokens a month:
    /// - 1 M tokens: 10 000 s × 350 W = 3.5 MJ = 0.97222 kWh × 0.12 = 0.116667;
    /// - hardware 6000 / 48 = 125 a month / 500 = 0.25 per M; local 0.366667;
    /// - energy 58.3333 a month; busy 5e6 s of 2 629 800 s = 190 %: two machines;
    /// - a cloud at 3 per M: 1500 a month, break-even 6000 / 1441.6667 = 4.1618.
    #[test]
    fn worked_example_busy_workstation() {
        let r = compute(&CostInputs {
            tokens_per_s: 100.0,
            watts: 350.0,
            electricity_per_kwh: 0.12,
            hardware_price: 6000.0,
            lifetime_months: 48.0,
            monthly_tokens: 500e6,
            clouds: vec![("api".into(), 3.0)],
        })
        .unwrap();
        assert!(close(r.energy_per_mtok, 0.116_666_666_666_666_67));
        assert!(close(r.hardware_per_mtok, 0.25));
        assert!(close(r.local_per_mtok, 0.366_666_666_666_666_7));
        assert!(close(r.local_energy_monthly, 58.333_333_333_333_33));
        assert!(r.utilisation > 1.9 && r.utilisation < 1.91);
        let be = r.clouds[0].break_even_months.unwrap();
        assert!(close(be, 6000.0 / (1500.0 - 58.333_333_333_333_33)));
        assert!((be - 4.1618).abs() < 1e-4);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let base = CostInputs {
            tokens_per_s: 1.0,
            watts: 1.0,
            electricity_per_kwh: 0.1,
            hardware_price: 1.0,
            lifetime_months: 1.0,
            monthly_tokens: 1.0,
            clouds: vec![],
        };
        assert!(
            compute(&CostInputs {
                tokens_per_s: 0.0,
                ..base.clone()
            })
            .is_err()
        );
        assert!(
            compute(&CostInputs {
                watts: -1.0,
                ..base.clone()
            })
            .is_err()
        );
        assert!(
            compute(&CostInputs {
                lifetime_months: f64::NAN,
                ..base.clone()
            })
            .is_err()
        );
        assert!(compute(&base).is_ok());
        assert!(parse_cloud("x=1.5").is_ok());
        assert!(parse_cloud("x").is_err());
        assert!(parse_cloud("x=abc").is_err());
        assert!(parse_cloud("=1").is_err());
        assert!(parse_cloud("x=-2").is_err());
    }
}
