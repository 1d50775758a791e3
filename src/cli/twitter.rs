//! `squall twitter rules list | add VALUE [--tag T] | delete ID... | delete --all`.
//!
//! Each command reads the bearer token from the environment variable named by
//! `--token-env` (default `TWITTER_BEARER_TOKEN`) and talks to `--base-url` (default
//! `https://api.x.com`). It prints the API's answer plainly (summary on stdout, the
//! API's rule errors and failures on stderr as `error: …`) and exits with 1 when the API
//! reported errors or the request failed.
//!
//! New subcommands (e.g. `to-kafka`) go into [`TwitterCommand`] and its `match` in
//! [`main`]; [`ApiArgs`] and [`block_on`] are there to share.

use std::future::Future;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::twitter::auth::{AuthError, BearerToken};
use crate::twitter::rules::{AddResponse, DeleteResponse, Rule, RuleError, RulesClient};
use crate::twitter::{DEFAULT_BASE_URL, DEFAULT_TOKEN_ENV};

/// `squall twitter …`.
#[derive(Subcommand, Debug)]
pub enum TwitterCommand {
    /// The filtered stream's rules: list, add, delete.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Twitter → Kafka: streams tweets into a topic, as a topology (twitter spout →
    /// kafka sink: acked when the broker has them, with metrics). Runs until Ctrl-C or
    /// --duration.
    ToKafka(ToKafkaArgs),
}

/// `twitter to-kafka`.
#[derive(Args, Debug)]
pub struct ToKafkaArgs {
    /// The Kafka topic to write the tweets to (JSON of the tweet fields, keyed by id).
    #[arg(long)]
    pub topic: String,
    #[arg(long, default_value = crate::kafka::client::DEFAULT_BROKERS)]
    pub brokers: String,
    /// The 1% sample stream instead of the filtered stream.
    #[arg(long, conflicts_with = "rules_tag")]
    pub sample: bool,
    /// Only tweets matching a rule with one of these tags (filtered stream).
    #[arg(long = "rules-tag", value_name = "TAG")]
    pub rules_tag: Vec<String>,
    #[command(flatten)]
    pub api: ApiArgs,
    /// Stop after this long (e.g. 10m); default: until Ctrl-C.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Write the JSON report here on exit.
    #[arg(long)]
    pub report: Option<std::path::PathBuf>,
    /// No status line.
    #[arg(long)]
    pub quiet: bool,
}

/// `squall twitter rules …`.
#[derive(Subcommand, Debug)]
pub enum RulesCommand {
    /// Print the rules: id, value, tag.
    List(ListArgs),
    /// Add a rule, e.g. `add '#rustlang -is:retweet' --tag rust`.
    Add(AddArgs),
    /// Delete rules by id, or all of them with --all.
    Delete(DeleteArgs),
}

/// Where the API is and where the token comes from (shared by the twitter commands).
#[derive(Args, Debug, Clone)]
pub struct ApiArgs {
    /// The API's base URL.
    #[arg(long, default_value = DEFAULT_BASE_URL, value_name = "URL")]
    pub base_url: String,
    /// The environment variable holding the app's bearer token.
    #[arg(long, default_value = DEFAULT_TOKEN_ENV, value_name = "VAR")]
    pub token_env: String,
}

/// `rules list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `rules add VALUE [--tag T] [--dry-run]`.
#[derive(Args, Debug)]
pub struct AddArgs {
    /// The rule, in the filtered stream's query language (may start with `-`).
    #[arg(allow_hyphen_values = true)]
    pub value: String,
    /// The label of tweets matching the rule (`matching_rules[].tag`).
    #[arg(long)]
    pub tag: Option<String>,
    /// Only validate: the API checks the rule but does not create it.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `rules delete ID... | --all [--dry-run]`.
#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["ids", "all"]))]
pub struct DeleteArgs {
    /// Ids of the rules to delete (see `rules list`).
    #[arg(value_name = "ID")]
    pub ids: Vec<String>,
    /// Delete every rule.
    #[arg(long)]
    pub all: bool,
    /// Only check: the API reports what it would delete, and deletes nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Runs `squall twitter …`.
pub fn main(cmd: TwitterCommand) -> ExitCode {
    match cmd {
        TwitterCommand::Rules { command } => rules(command),
        TwitterCommand::ToKafka(args) => to_kafka(args),
    }
}

/// The `twitter to-kafka` topology: `source` (twitter) → `sink` (kafka, keyed by id).
pub fn to_kafka_topology(a: &ToKafkaArgs) -> Result<crate::topology::Topology, String> {
    use crate::component::registry::{BoltConfig, SpoutConfig};
    use crate::twitter::policy::Endpoint;
    let spout = crate::twitter::spout::TwitterSpoutConfig {
        endpoint: if a.sample {
            Endpoint::Sample
        } else {
            Endpoint::Filtered
        },
        base_url: a.api.base_url.clone(),
        token_env: a.api.token_env.clone(),
        rule_tags: (!a.rules_tag.is_empty()).then(|| a.rules_tag.clone()),
        ..Default::default()
    };
    let sink = crate::kafka::sink::KafkaSinkConfig {
        brokers: a.brokers.clone(),
        topic: a.topic.clone(),
        key_field: Some("id".into()),
        ..Default::default()
    };
    let mut b = crate::topology::TopologyBuilder::new("twitter-to-kafka");
    b.spout_factory(
        "source",
        spout.build().map_err(|e| format!("spout `source`: {e}"))?,
        1,
    );
    b.bolt_factory(
        "sink",
        sink.build().map_err(|e| format!("bolt `sink`: {e}"))?,
        1,
    )
    .shuffle("source");
    b.build().map_err(|e| e.to_string())
}

fn to_kafka(a: ToKafkaArgs) -> ExitCode {
    let topology = match to_kafka_topology(&a) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = super::run::RunOptions {
        duration: a.duration,
        report: a.report,
        quiet: a.quiet,
        ..Default::default()
    };
    super::run::run_topology(topology, crate::config::Config::default(), &opts)
}

/// Runs `f` to completion on a current-thread tokio runtime.
pub fn block_on<F: Future>(f: F) -> std::io::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(rt.block_on(f))
}

/// A rules client for `api`, or the message saying why there is none.
pub fn rules_client(api: &ApiArgs) -> Result<RulesClient, String> {
    let token = BearerToken::from_env(&api.token_env).map_err(|e| match e {
        AuthError::Missing(var) => format!(
            "the environment variable {var} is not set: set it to your X app's bearer token, \
             or name another variable with --token-env"
        ),
        AuthError::Invalid(_) => format!("{e}; or name another variable with --token-env"),
    })?;
    RulesClient::new(&api.base_url, token).map_err(|e| e.to_string())
}

/// What one command prints: lines for stdout and for stderr, and whether it failed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub out: Vec<String>,
    pub err: Vec<String>,
    pub failed: bool,
}

impl Outcome {
    fn failure(message: String) -> Outcome {
        Outcome {
            err: vec![format!("error: {message}")],
            failed: true,
            ..Outcome::default()
        }
    }

    fn print(self) -> ExitCode {
        for l in &self.out {
            println!("{l}");
        }
        for l in &self.err {
            eprintln!("{l}");
        }
        if self.failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }
}

fn rules(cmd: RulesCommand) -> ExitCode {
    let api = match &cmd {
        RulesCommand::List(a) => &a.api,
        RulesCommand::Add(a) => &a.api,
        RulesCommand::Delete(a) => &a.api,
    };
    let client = match rules_client(api) {
        Ok(c) => c,
        Err(e) => return Outcome::failure(e).print(),
    };
    let run = async {
        match &cmd {
            RulesCommand::List(_) => match client.list().await {
                Ok(rules) => list_outcome(&rules),
                Err(e) => Outcome::failure(e.to_string()),
            },
            RulesCommand::Add(a) => {
                let rule = (a.value.as_str(), a.tag.as_deref());
                match client.add(&[rule], a.dry_run).await {
                    Ok(r) => add_outcome(&r, a.dry_run),
                    Err(e) => Outcome::failure(e.to_string()),
                }
            }
            RulesCommand::Delete(a) if a.all => match client.delete_all(a.dry_run).await {
                Ok((rules, r)) => delete_all_outcome(&rules, &r, a.dry_run),
                Err(e) => Outcome::failure(e.to_string()),
            },
            RulesCommand::Delete(a) => match client.delete(&a.ids, a.dry_run).await {
                Ok(r) => delete_outcome(&r, a.dry_run),
                Err(e) => Outcome::failure(e.to_string()),
            },
        }
    };
    match block_on(run) {
        Ok(outcome) => outcome.print(),
        Err(e) => Outcome::failure(format!("could not start the async runtime: {e}")).print(),
    }
}

/// `ID  VALUE  [tag: T]`.
pub fn rule_line(r: &Rule) -> String {
    match &r.tag {
        Some(t) => format!("{}  {}  [tag: {t}]", r.id, r.value),
        None => format!("{}  {}", r.id, r.value),
    }
}

fn dry(dry_run: bool) -> &'static str {
    if dry_run { " (dry run)" } else { "" }
}

fn error_lines(errors: &[RuleError]) -> Vec<String> {
    errors.iter().map(|e| format!("error: {e}")).collect()
}

/// What `rules list` prints.
pub fn list_outcome(rules: &[Rule]) -> Outcome {
    let mut out: Vec<String> = rules.iter().map(rule_line).collect();
    out.push(match rules.len() {
        0 => "no rules".to_string(),
        1 => "1 rule".to_string(),
        n => format!("{n} rules"),
    });
    Outcome {
        out,
        ..Outcome::default()
    }
}

/// What `rules add` prints: `created C, not created N (valid V, invalid I)`, the created
/// rules, and `error: …` per rule the API refused.
pub fn add_outcome(r: &AddResponse, dry_run: bool) -> Outcome {
    let s = r.meta.summary;
    let mut out = vec![format!(
        "created {}, not created {} (valid {}, invalid {}){}",
        s.created,
        s.not_created,
        s.valid,
        s.invalid,
        dry(dry_run)
    )];
    out.extend(r.data.iter().map(|rule| format!("  {}", rule_line(rule))));
    Outcome {
        out,
        err: error_lines(&r.errors),
        failed: !r.errors.is_empty() || s.not_created > 0,
    }
}

/// What `rules delete ID...` prints: `deleted D, not deleted N` and the API's errors.
pub fn delete_outcome(r: &DeleteResponse, dry_run: bool) -> Outcome {
    let s = r.meta.summary;
    Outcome {
        out: vec![format!(
            "deleted {}, not deleted {}{}",
            s.deleted,
            s.not_deleted,
            dry(dry_run)
        )],
        err: error_lines(&r.errors),
        failed: !r.errors.is_empty() || s.not_deleted > 0,
    }
}

/// What `rules delete --all` prints: the rules found, then as `delete`.
pub fn delete_all_outcome(rules: &[Rule], r: &DeleteResponse, dry_run: bool) -> Outcome {
    if rules.is_empty() {
        return Outcome {
            out: vec![format!("no rules to delete{}", dry(dry_run))],
            ..Outcome::default()
        };
    }
    let mut o = delete_outcome(r, dry_run);
    let found: Vec<String> = rules
        .iter()
        .map(|r| format!("  {}", rule_line(r)))
        .collect();
    o.out.splice(0..0, found);
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twitter::rules::{AddSummary, DeleteSummary, PostMeta};
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct T {
        #[command(subcommand)]
        cmd: TwitterCommand,
    }

    fn parse(args: &[&str]) -> Result<RulesCommand, clap::Error> {
        T::try_parse_from(std::iter::once("twitter").chain(args.iter().copied())).map(|t| {
            match t.cmd {
                TwitterCommand::Rules { command } => command,
                TwitterCommand::ToKafka(a) => panic!("not a rules command: {a:?}"),
            }
        })
    }

    #[test]
    fn to_kafka_builds_its_topology() {
        let t = T::try_parse_from(["twitter", "to-kafka", "--topic", "tw", "--sample"]).unwrap();
        let TwitterCommand::ToKafka(a) = t.cmd else {
            panic!("to-kafka expected");
        };
        assert_eq!(a.brokers, "127.0.0.1:9092");
        let topo = to_kafka_topology(&a).unwrap();
        let names: Vec<&str> = topo.components().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["source", "sink"]);
        assert!(
            T::try_parse_from([
                "twitter",
                "to-kafka",
                "--topic",
                "t",
                "--sample",
                "--rules-tag",
                "x"
            ])
            .is_err()
        );
    }

    #[test]
    fn arguments_parse_with_defaults() {
        let RulesCommand::List(l) = parse(&["rules", "list"]).unwrap() else {
            panic!()
        };
        assert_eq!(l.api.base_url, "https://api.x.com");
        assert_eq!(l.api.token_env, "TWITTER_BEARER_TOKEN");
        let RulesCommand::Add(a) = parse(&[
            "rules",
            "add",
            "#rust -is:retweet",
            "--tag",
            "rust",
            "--dry-run",
            "--base-url",
            "http://h:1",
            "--token-env",
            "X",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            (a.value.as_str(), a.tag.as_deref(), a.dry_run),
            ("#rust -is:retweet", Some("rust"), true)
        );
        assert_eq!(
            (a.api.base_url.as_str(), a.api.token_env.as_str()),
            ("http://h:1", "X")
        );
        let RulesCommand::Delete(d) = parse(&["rules", "delete", "1", "2"]).unwrap() else {
            panic!()
        };
        assert_eq!(
            (d.ids, d.all),
            (vec!["1".to_string(), "2".to_string()], false)
        );
        let RulesCommand::Delete(d) = parse(&["rules", "delete", "--all", "--dry-run"]).unwrap()
        else {
            panic!()
        };
        assert!(d.all && d.dry_run && d.ids.is_empty());
        let RulesCommand::Add(a) =
            parse(&["rules", "add", "-is:retweet cats", "--tag", "t"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (a.value.as_str(), a.tag.as_deref()),
            ("-is:retweet cats", Some("t"))
        );
    }

    #[test]
    fn delete_needs_ids_or_all_but_not_both() {
        assert!(parse(&["rules", "delete"]).is_err());
        assert!(parse(&["rules", "delete", "1", "--all"]).is_err());
        assert!(parse(&["rules", "add"]).is_err());
    }

    #[test]
    fn outcomes_print_the_summary_and_errors() {
        let r = AddResponse {
            data: vec![],
            meta: PostMeta {
                sent: None,
                summary: AddSummary {
                    created: 1,
                    not_created: 1,
                    valid: 1,
                    invalid: 1,
                },
            },
            errors: vec![RuleError {
                title: "DuplicateRule".into(),
                value: Some("#rust".into()),
                id: Some("123".into()),
                ..RuleError::default()
            }],
        };
        let o = add_outcome(&r, true);
        assert_eq!(
            o.out,
            ["created 1, not created 1 (valid 1, invalid 1) (dry run)"]
        );
        assert_eq!(o.err, ["error: DuplicateRule: #rust (id 123)"]);
        assert!(o.failed);

        let d = DeleteResponse {
            meta: PostMeta {
                sent: None,
                summary: DeleteSummary {
                    deleted: 2,
                    not_deleted: 0,
                },
            },
            errors: vec![],
        };
        let o = delete_outcome(&d, false);
        assert_eq!(o.out, ["deleted 2, not deleted 0"]);
        assert!(!o.failed);
        let rules = [Rule {
            id: "9".into(),
            value: "cats".into(),
            tag: None,
        }];
        let o = delete_all_outcome(&rules, &d, false);
        assert_eq!(o.out, ["  9  cats", "deleted 2, not deleted 0"]);
        let o = delete_all_outcome(&[], &DeleteResponse::default(), true);
        assert_eq!(o.out, ["no rules to delete (dry run)"]);
        assert_eq!(list_outcome(&[]).out, ["no rules"]);
        assert_eq!(list_outcome(&rules).out, ["9  cats", "1 rule"]);
    }
}
