//! `dbagent alerts list|show|ack|silence|silences|unsilence|rules|test|export-rules`: the same
//! library calls as `/alerts` and `/silences`.

use clap::Subcommand;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use super::Failure;
use crate::alerts::{self, Alert, lifecycle::shown, store};
use crate::app::Agent;
use crate::db::{self, Purpose};

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Alerts, newest first (default: the active ones).
    List {
        /// active, pending, firing, resolved or all.
        #[arg(long, default_value = "active")]
        state: String,
        #[arg(long)]
        rule: Option<String>,
        /// The least severe level listed: info, warning, error, critical.
        #[arg(long)]
        severity: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// One alert with its history.
    Show { id: String },
    /// Acknowledge an alert: it stops repeating.
    Ack {
        id: String,
        #[arg(long)]
        comment: Option<String>,
        /// Who acknowledges (default: cli).
        #[arg(long, default_value = "cli")]
        by: String,
    },
    /// Hold back notifications of a rule and/or subject for a while.
    Silence {
        #[arg(long)]
        rule: Option<String>,
        #[arg(long)]
        subject: Option<String>,
        /// How long: 30m, 2h, 1d (or seconds).
        #[arg(long)]
        duration: String,
        #[arg(long)]
        comment: Option<String>,
        #[arg(long, default_value = "cli")]
        by: String,
    },
    /// The silences in force (with --all, the expired ones still kept).
    Silences {
        #[arg(long)]
        all: bool,
    },
    /// End a silence now.
    Unsilence { id: String },
    /// Each rule, its thresholds, and its values now.
    Rules,
    /// Send a test notification on a channel.
    Test {
        #[arg(long)]
        channel: String,
    },
    /// The built-in rules as a Prometheus rules file (stdout, or --output).
    ExportRules {
        #[arg(long)]
        output: Option<std::path::PathBuf>,
    },
}

fn failed(err: alerts::Error) -> Failure {
    super::commands::failure(err)
}

async fn client(agent: &Agent) -> Result<tokio_postgres::Client, Failure> {
    let client = db::admin::connect(&agent.executor.pools.admin_config(), Purpose::Alerts).await.map_err(|e| failed(alerts::Error::driver(e)))?;
    store::ensure(&client).await.map_err(failed)?;
    Ok(client)
}

fn print_json(value: &impl serde::Serialize) -> Result<(), Failure> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `export-rules` reads no database.
pub fn export_rules(config: &crate::config::Config, output: Option<&std::path::Path>) -> Result<(), Failure> {
    let rules = alerts::rules::all(&config.alerts, &config.backup);
    let text = alerts::export::prometheus_rules(&rules);
    match output {
        Some(path) => std::fs::write(path, text)?,
        None => print!("{text}"),
    }
    Ok(())
}

pub async fn run(agent: &Agent, cmd: AlertsCommand, as_json: bool) -> Result<(), Failure> {
    match cmd {
        AlertsCommand::List { state, rule, severity, limit } => {
            let filter = store::Filter { state: Some(state), rule, severity, subject: None, since: None, limit: Some(limit) };
            let all = store::list(&client(agent).await?, &filter).await.map_err(failed)?;
            if as_json {
                return print_json(&all);
            }
            println!("{}", alert_table(&all));
            Ok(())
        }
        AlertsCommand::Show { id } => {
            let alert = store::get(&client(agent).await?, &id).await.map_err(failed)?;
            if as_json {
                return print_json(&alert);
            }
            println!("{}\n{}", alert_table(std::slice::from_ref(&alert)), alert.summary);
            for event in &alert.history {
                println!("{}  {:?}  {}", event.at.format("%Y-%m-%d %H:%M:%S"), event.kind, event.message);
            }
            Ok(())
        }
        AlertsCommand::Ack { id, comment, by } => {
            let alert = store::ack(&client(agent).await?, &id, &by, comment.as_deref()).await.map_err(failed)?;
            if as_json {
                return print_json(&alert);
            }
            println!("acknowledged {} ({} on {}) by {}", alert.id, alert.rule, alert.subject, alert.acked_by.unwrap_or_default());
            Ok(())
        }
        AlertsCommand::Silence { rule, subject, duration, comment, by } => {
            let new = store::NewSilence { rule, subject, duration: Some(serde_json::Value::String(duration)), until: None, comment };
            let silence = store::create_silence(&client(agent).await?, &new, &by).await.map_err(failed)?;
            if as_json {
                return print_json(&silence);
            }
            println!("silence {} until {}", silence.id, silence.expires_at.to_rfc3339());
            Ok(())
        }
        AlertsCommand::Silences { all } => {
            let silences = store::silences(&client(agent).await?, all).await.map_err(failed)?;
            if as_json {
                return print_json(&silences);
            }
            let mut table = Table::new();
            table.load_style(UTF8_FULL_CONDENSED).set_header(["id", "rule", "subject", "until", "by", "comment"]);
            for s in &silences {
                let any = |v: &Option<String>| v.clone().unwrap_or_else(|| "*".into());
                table.add_row([s.id.clone(), any(&s.rule), any(&s.subject), s.expires_at.format("%Y-%m-%d %H:%M").to_string(), s.created_by.clone(), s.comment.clone().unwrap_or_default()]);
            }
            println!("{table}");
            Ok(())
        }
        AlertsCommand::Unsilence { id } => {
            let silence = store::expire_silence(&client(agent).await?, &id).await.map_err(failed)?;
            if as_json {
                return print_json(&silence);
            }
            println!("silence {} ended", silence.id);
            Ok(())
        }
        AlertsCommand::Rules => rules(agent, as_json).await,
        AlertsCommand::Test { channel } => {
            let attempts = agent.alerts.test(&channel).await.map_err(failed)?;
            if as_json {
                return print_json(&serde_json::json!({ "channel": channel, "attempts": attempts }));
            }
            println!("test notification delivered to {channel} (attempt {attempts})");
            Ok(())
        }
        AlertsCommand::ExportRules { output } => export_rules(&agent.config, output.as_deref()),
    }
}

async fn rules(agent: &Agent, as_json: bool) -> Result<(), Failure> {
    let statuses = alerts::evaluate_once(&agent.alerts, &agent.alert_sources()).await.map_err(failed)?;
    if as_json {
        return print_json(&statuses);
    }
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_header(["rule", "metric", "warning", "critical", "for", "value now", "state"]);
    for s in &statuses {
        let r = &s.rule;
        let threshold = |t: Option<f64>| t.map(|t| format!("{} {}", r.op.as_str(), shown(t, r.unit))).unwrap_or_else(|| "-".into());
        let value = s.observations.iter().map(|o| format!("{}: {}", o.subject, shown(o.value, r.unit))).collect::<Vec<_>>().join(", ");
        let state = if !r.enabled {
            "disabled".to_string()
        } else {
            s.observations
                .iter()
                .filter_map(|o| o.state.map(|st| format!("{} {}", st.as_str(), o.level.map_or("", |l| l.as_str()))).or_else(|| o.level.map(|l| l.as_str().to_string())))
                .next()
                .unwrap_or_else(|| "ok".into())
        };
        table.add_row([r.name.clone(), r.metric.clone(), threshold(r.warning), threshold(r.critical), format!("{}s", r.for_seconds), value, state]);
    }
    println!("{table}");
    Ok(())
}

fn alert_table(alerts: &[Alert]) -> Table {
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_header(["id", "rule", "subject", "severity", "state", "value", "threshold", "since", "acked by"]);
    for a in alerts {
        table.add_row([
            a.id.clone(),
            a.rule.clone(),
            a.subject.clone(),
            a.severity.as_str().to_string(),
            a.state.as_str().to_string(),
            shown(a.value, &a.unit),
            a.threshold.map(|t| shown(t, &a.unit)).unwrap_or_else(|| "-".into()),
            a.fired_at.unwrap_or(a.started_at).format("%Y-%m-%d %H:%M:%S").to_string(),
            a.acked_by.clone().unwrap_or_default(),
        ]);
    }
    table
}
