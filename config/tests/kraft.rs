//! KRaft-mode keys: `process.roles`, `controller.quorum.voters`, named
//! listeners with `controller.listener.names`, `broker.heartbeat.interval.ms`;
//! their parsing, canonical display, every validation rule and the helpers.

use anyhow::{bail, ensure, Result};
use brook_config::{
    describe_broker, BrokerConfig, ConfigError, HostPort, ProcessRole, QuorumVoter, Value,
};

fn env(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect::<Vec<_>>()
        .into_iter()
}

fn toml_error(text: &str) -> Result<ConfigError> {
    match BrokerConfig::from_toml_str(text) {
        Ok(cfg) => bail!("expected an error for {text:?}, got {cfg:?}"),
        Err(e) => Ok(e),
    }
}

/// The error of `text` must be a value error (`InvalidValue`) containing every needle.
fn value_error(text: &str, needles: &[&str]) -> Result<()> {
    let e = toml_error(text)?;
    ensure!(
        matches!(e, ConfigError::InvalidValue { .. }),
        "{text:?}: expected InvalidValue, got {e:?}"
    );
    let msg = e.to_string();
    for needle in needles {
        ensure!(
            msg.contains(needle),
            "error for {text:?} lacks {needle:?}: {msg}"
        );
    }
    Ok(())
}

/// The error of `text` must be `Inconsistent` containing every needle.
fn inconsistent(text: &str, needles: &[&str]) -> Result<()> {
    let e = toml_error(text)?;
    ensure!(
        matches!(e, ConfigError::Inconsistent { .. }),
        "{text:?}: expected Inconsistent, got {e:?}"
    );
    let msg = e.to_string();
    for needle in needles {
        ensure!(
            msg.contains(needle),
            "error for {text:?} lacks {needle:?}: {msg}"
        );
    }
    Ok(())
}

const COMBINED_NODE_2: &str = "node.id = 2\n\
    process.roles = \"broker,controller\"\n\
    listeners = \"PLAINTEXT://0.0.0.0:19092,CONTROLLER://0.0.0.0:19093\"\n\
    controller.quorum.voters = [\"1@h1:19093\", \"2@h2:19093\", \"3@h3:19093\"]\n";

#[test]
fn defaults_are_a_single_combined_node() -> Result<()> {
    let c = BrokerConfig::default();
    c.validate()?;
    ensure!(BrokerConfig::from_toml_str("")? == c);
    ensure!(c.process_roles == [ProcessRole::Broker, ProcessRole::Controller]);
    ensure!(c.is_broker() && c.is_controller());
    ensure!(c.controller_quorum_voters.is_empty());
    ensure!(c.controller_listener_names == ["CONTROLLER"]);
    ensure!(c.broker_heartbeat_interval_ms == 2000);
    ensure!(c.listeners == [HostPort::new("127.0.0.1", 9092)]);
    ensure!(c.client_listeners() == [&HostPort::new("127.0.0.1", 9092)]);
    ensure!(c.advertised_client_listeners() == [&HostPort::new("127.0.0.1", 9092)]);
    ensure!(c.controller_listener().is_none());
    ensure!(c.quorum_voters() == [QuorumVoter::new(1, "127.0.0.1", 0)]);
    ensure!(
        c.value("process.roles") == Some(Value::List(vec!["broker".into(), "controller".into()]))
    );
    ensure!(c.value("controller.quorum.voters") == Some(Value::List(vec![])));
    // DescribeConfigs output of the existing keys is unchanged.
    let described = describe_broker(&c);
    let listeners = described.iter().find(|e| e.name == "listeners");
    ensure!(listeners.and_then(|e| e.value.as_deref()) == Some("127.0.0.1:9092"));
    let voters = described
        .iter()
        .find(|e| e.name == "controller.quorum.voters");
    ensure!(voters.and_then(|e| e.value.as_deref()) == Some(""));
    Ok(())
}

#[test]
fn combined_node_of_a_three_node_quorum() -> Result<()> {
    let c = BrokerConfig::from_toml_str(COMBINED_NODE_2)?;
    let voters = vec![
        QuorumVoter::new(1, "h1", 19093),
        QuorumVoter::new(2, "h2", 19093),
        QuorumVoter::new(3, "h3", 19093),
    ];
    ensure!(c.controller_quorum_voters == voters);
    ensure!(c.quorum_voters() == voters);
    ensure!(
        c.listeners
            == [
                HostPort::new("0.0.0.0", 19092),
                HostPort::named("CONTROLLER", "0.0.0.0", 19093),
            ]
    );
    ensure!(c.client_listeners() == [&HostPort::new("0.0.0.0", 19092)]);
    ensure!(c.advertised_client_listeners() == [&HostPort::new("0.0.0.0", 19092)]);
    ensure!(c.controller_listener() == Some(&HostPort::named("CONTROLLER", "0.0.0.0", 19093)));
    // Canonical forms: PLAINTEXT:// is dropped, other names kept.
    ensure!(
        c.value("listeners")
            == Some(Value::List(vec![
                "0.0.0.0:19092".into(),
                "CONTROLLER://0.0.0.0:19093".into()
            ]))
    );
    ensure!(
        c.value("controller.quorum.voters")
            == Some(Value::List(vec![
                "1@h1:19093".into(),
                "2@h2:19093".into(),
                "3@h3:19093".into()
            ]))
    );
    let described = describe_broker(&c);
    let voters = described
        .iter()
        .find(|e| e.name == "controller.quorum.voters");
    ensure!(voters.and_then(|e| e.value.as_deref()) == Some("1@h1:19093,2@h2:19093,3@h3:19093"));
    Ok(())
}

#[test]
fn list_and_string_forms_are_equivalent() -> Result<()> {
    let as_string = BrokerConfig::from_toml_str(
        "node.id = 2\nlisteners = [\"0.0.0.0:19092\", \"CONTROLLER://0.0.0.0:19093\"]\n\
         controller.quorum.voters = \" 1@h1:19093, 2@h2:19093 ,3@h3:19093\"\n",
    )?;
    ensure!(
        as_string.controller_quorum_voters
            == BrokerConfig::from_toml_str(COMBINED_NODE_2)?.controller_quorum_voters
    );
    let roles = BrokerConfig::from_toml_str("process.roles = [\"controller\", \"broker\"]\n")?;
    ensure!(roles.process_roles == [ProcessRole::Controller, ProcessRole::Broker]);
    Ok(())
}

#[test]
fn environment_and_set_work_for_the_new_keys() -> Result<()> {
    let mut c = BrokerConfig::default();
    c.apply_env(env(&[
        ("BROOK_NODE_ID", "3"),
        ("BROOK_PROCESS_ROLES", "controller"),
        ("BROOK_LISTENERS", "RAFT://0.0.0.0:9093"),
        ("BROOK_CONTROLLER_LISTENER_NAMES", "RAFT"),
        (
            "BROOK_CONTROLLER_QUORUM_VOTERS",
            "1@c1:9093,2@c2:9093,3@c3:9093",
        ),
        ("BROOK_BROKER_HEARTBEAT_INTERVAL_MS", "500"),
    ]))?;
    ensure!(c.process_roles == [ProcessRole::Controller]);
    ensure!(!c.is_broker() && c.is_controller());
    ensure!(c.controller_listener_names == ["RAFT"]);
    ensure!(c.controller_listener() == Some(&HostPort::named("RAFT", "0.0.0.0", 9093)));
    ensure!(c.client_listeners().is_empty());
    ensure!(c.quorum_voters().len() == 3);
    ensure!(c.broker_heartbeat_interval_ms == 500);
    ensure!(c.is_explicit("process.roles") && c.is_explicit("controller.quorum.voters"));

    // set: one key at a time, each step validated; a failed step changes nothing.
    let mut c = BrokerConfig::default();
    let before = c.clone();
    ensure!(
        c.set("process.roles", "broker").is_err(),
        "broker-only without voters"
    );
    ensure!(c == before);
    c.set("listeners", "127.0.0.1:9092,CONTROLLER://0.0.0.0:9093")?;
    c.set("controller.quorum.voters", "1@c1:9093")?;
    c.set("process.roles", "broker")?;
    c.set("listeners", "127.0.0.1:9092")?;
    ensure!(c.is_broker() && !c.is_controller());
    c.set("broker.heartbeat.interval.ms", "3000")?;
    ensure!(c.broker_heartbeat_interval_ms == 3000);
    ensure!(c.set("broker.heartbeat.interval.ms", "9000").is_err());
    Ok(())
}

#[test]
fn broker_only_and_controller_only_nodes() -> Result<()> {
    // A broker-only node need not be a voter nor have a controller listener.
    let b = BrokerConfig::from_toml_str(
        "node.id = 4\nprocess.roles = \"broker\"\nlisteners = \"0.0.0.0:9092\"\n\
         controller.quorum.voters = \"1@c1:9093,2@c2:9093,3@c3:9093\"\n",
    )?;
    ensure!(b.is_broker() && !b.is_controller());
    ensure!(b.controller_listener().is_none());
    ensure!(b.quorum_voters().iter().map(|v| v.id).collect::<Vec<_>>() == [1, 2, 3]);

    // A controller-only node: the voter host may differ from the bind host.
    let c = BrokerConfig::from_toml_str(
        "node.id = 1\nprocess.roles = \"controller\"\nlisteners = \"CONTROLLER://0.0.0.0:9093\"\n\
         controller.quorum.voters = \"1@c1:9093,2@c2:9093,3@c3:9093\"\n",
    )?;
    ensure!(!c.is_broker() && c.is_controller());
    ensure!(c.client_listeners().is_empty());

    // A controller-only node alone: its quorum is itself at its controller listener.
    let alone = BrokerConfig::from_toml_str(
        "node.id = 7\nprocess.roles = \"controller\"\nlisteners = \"CONTROLLER://127.0.0.1:9093\"\n",
    )?;
    ensure!(alone.quorum_voters() == [QuorumVoter::new(7, "127.0.0.1", 9093)]);
    Ok(())
}

#[test]
fn controller_listener_follows_the_order_of_controller_listener_names() -> Result<()> {
    let c = BrokerConfig::from_toml_str(
        "listeners = \"CONTROLLER://127.0.0.1:9093,127.0.0.1:9092,RAFT://127.0.0.1:9094\"\n\
         controller.listener.names = \"RAFT,CONTROLLER\"\n",
    )?;
    ensure!(c.controller_listener() == Some(&HostPort::named("RAFT", "127.0.0.1", 9094)));
    ensure!(c.client_listeners() == [&HostPort::new("127.0.0.1", 9092)]);
    ensure!(c.quorum_voters() == [QuorumVoter::new(1, "127.0.0.1", 9094)]);
    // A PLAINTEXT listener can be the controller listener (name it explicitly).
    let p = BrokerConfig::from_toml_str(
        "process.roles = \"controller\"\nlisteners = \"127.0.0.1:9093\"\n\
         controller.listener.names = \"PLAINTEXT\"\n",
    )?;
    ensure!(p.controller_listener() == Some(&HostPort::new("127.0.0.1", 9093)));
    ensure!(p.client_listeners().is_empty());
    Ok(())
}

#[test]
fn port_zero_may_repeat_and_advertised_client_listeners() -> Result<()> {
    let c = BrokerConfig::from_toml_str(
        "listeners = \"127.0.0.1:0,CONTROLLER://127.0.0.1:0\"\n\
         advertised.listeners = \"PLAINTEXT://broker1:9092\"\n",
    )?;
    ensure!(c.advertised_client_listeners() == [&HostPort::new("broker1", 9092)]);
    ensure!(c.advertised() == [HostPort::new("broker1", 9092)]);
    Ok(())
}

#[test]
fn bad_values_name_key_and_entry() -> Result<()> {
    value_error(
        "process.roles = \"Broker\"",
        &[
            "`process.roles`",
            "one of [broker, controller]",
            "\"Broker\"",
        ],
    )?;
    value_error(
        "process.roles = \"broker,worker\"",
        &["`process.roles`", "\"worker\""],
    )?;
    value_error("process.roles = []", &["`process.roles`", "non-empty list"])?;
    value_error(
        "controller.quorum.voters = \"1@h1:9093,2@host\"",
        &[
            "`controller.quorum.voters`",
            "\"2@host\" lacks a port",
            "id@host:port",
        ],
    )?;
    value_error(
        "controller.quorum.voters = [\"one@h1:9093\"]",
        &[
            "`controller.quorum.voters`",
            "\"one@h1:9093\"",
            "node id `one` is not a number",
        ],
    )?;
    value_error(
        "controller.quorum.voters = \"-1@h1:9093\"",
        &["`controller.quorum.voters`", "\"-1@h1:9093\"", "negative"],
    )?;
    value_error(
        "listeners = \"127.0.0.1:9092,controller://127.0.0.1:9093\"",
        &["`listeners`", "must be upper-case", "`CONTROLLER`"],
    )?;
    value_error(
        "listeners = \"MY-LISTENER://h:1\"",
        &["`listeners`", "malformed", "[A-Z][A-Z0-9_]*"],
    )?;
    value_error(
        "advertised.listeners = \"SASL_SSL://h:1\"",
        &["`advertised.listeners`", "not supported"],
    )?;
    value_error(
        "controller.listener.names = \"controller\"",
        &[
            "`controller.listener.names`",
            "must be upper-case",
            "`CONTROLLER`",
        ],
    )?;
    value_error(
        "controller.listener.names = []",
        &["`controller.listener.names`", "non-empty"],
    )?;
    value_error(
        "admin.listener = \"ADMIN://127.0.0.1:9644\"",
        &[
            "`admin.listener`",
            "only allowed in `listeners` and `advertised.listeners`",
        ],
    )?;
    let e = toml_error("broker.heartbeat.interval.ms = 0")?;
    ensure!(
        matches!(e, ConfigError::OutOfRange { .. })
            && e.to_string().contains("`broker.heartbeat.interval.ms`"),
        "{e}"
    );
    Ok(())
}

#[test]
fn every_cross_key_rule_names_its_keys() -> Result<()> {
    inconsistent(
        "process.roles = \"broker,broker\"",
        &["process.roles lists broker twice"],
    )?;
    inconsistent(
        "listeners = \"A://h:1,A://h:2\"",
        &["listeners has two listeners named A", "A://h:1", "A://h:2"],
    )?;
    inconsistent(
        "listeners = \"h:1,PLAINTEXT://h2:2\"",
        &["listeners has two listeners named PLAINTEXT"],
    )?;
    inconsistent(
        "listeners = \"127.0.0.1:9092,CONTROLLER://0.0.0.0:9092\"",
        &["listeners has two listeners on port 9092", "port 0"],
    )?;
    inconsistent(
        "controller.listener.names = \"CONTROLLER,CONTROLLER\"",
        &["controller.listener.names lists CONTROLLER twice"],
    )?;
    inconsistent(
        "listeners = \"h:9092,CONTROLLER://h:9093\"\nadvertised.listeners = \"CONTROLLER://pub:9093\"",
        &["advertised.listeners", "CONTROLLER://pub:9093", "controller listener", "controller.listener.names"],
    )?;
    inconsistent(
        "advertised.listeners = \"a:1,PLAINTEXT://b:2\"",
        &["advertised.listeners has two entries for listener PLAINTEXT"],
    )?;
    inconsistent(
        "advertised.listeners = \"EXTERNAL://pub:9092\"",
        &[
            "advertised.listeners contains EXTERNAL://pub:9092",
            "listeners (127.0.0.1:9092) has no listener named EXTERNAL",
        ],
    )?;
    inconsistent(
        "controller.quorum.voters = \"1@h1:9093,1@h2:9093\"",
        &[
            "controller.quorum.voters lists node id 1 twice",
            "1@h1:9093",
            "1@h2:9093",
        ],
    )?;
    inconsistent(
        "listeners = \"CONTROLLER://h:9093\"",
        &[
            "process.roles includes broker",
            "listeners (CONTROLLER://h:9093)",
            "controller.listener.names",
            "add a client listener",
        ],
    )?;
    inconsistent(
        "process.roles = \"broker\"",
        &["process.roles = broker needs controller.quorum.voters"],
    )?;
    inconsistent(
        "process.roles = \"controller\"",
        &[
            "process.roles = controller",
            "no controller listener",
            "controller.listener.names",
        ],
    )?;
    inconsistent(
        "node.id = 4\nlisteners = \"h:9092,CONTROLLER://h:9093\"\ncontroller.quorum.voters = \"1@h1:9093,2@h2:9093\"",
        &["node.id = 4 is not among controller.quorum.voters (1@h1:9093,2@h2:9093)", "add 4@host:port"],
    )?;
    inconsistent(
        "node.id = 2\nlisteners = \"h:9092\"\ncontroller.quorum.voters = \"1@h1:9093,2@h2:9093\"",
        &[
            "voter 2@h2:9093",
            "no controller listener",
            "CONTROLLER://0.0.0.0:9093",
        ],
    )?;
    inconsistent(
        "node.id = 2\nlisteners = \"h:9092,CONTROLLER://0.0.0.0:9094\"\ncontroller.quorum.voters = \"1@h1:9093,2@h2:9093\"",
        &["voter 2@h2:9093", "CONTROLLER://0.0.0.0:9094", "port 9094", "make the ports match"],
    )?;
    inconsistent(
        "broker.heartbeat.interval.ms = 9000",
        &["broker.heartbeat.interval.ms (9000) must be less than broker.session.timeout.ms (9000)"],
    )?;
    inconsistent(
        "broker.session.timeout.ms = 1000",
        &[
            "broker.heartbeat.interval.ms (2000)",
            "broker.session.timeout.ms (1000)",
        ],
    )?;
    Ok(())
}

#[test]
fn validate_catches_fields_assigned_directly() -> Result<()> {
    let check = |cfg: BrokerConfig, needle: &str| -> Result<()> {
        match cfg.validate() {
            Ok(()) => bail!("expected an error containing {needle:?}"),
            Err(e) => {
                let msg = e.to_string();
                ensure!(msg.contains(needle), "{msg}");
                Ok(())
            }
        }
    };
    check(
        BrokerConfig {
            process_roles: vec![],
            ..BrokerConfig::default()
        },
        "process.roles is empty",
    )?;
    check(
        BrokerConfig {
            controller_quorum_voters: vec![QuorumVoter::new(-3, "h", 1)],
            ..BrokerConfig::default()
        },
        "negative node id",
    )?;
    check(
        BrokerConfig {
            process_roles: vec![ProcessRole::Controller, ProcessRole::Controller],
            ..BrokerConfig::default()
        },
        "process.roles lists controller twice",
    )?;
    Ok(())
}
