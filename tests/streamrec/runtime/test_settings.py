import os
from pathlib import Path

import pytest

from streamrec.runtime.settings import SettingsError, load_settings


def test_defaults_use_the_local_apache_kafka_and_neo4j(tmp_path):
    settings = load_settings({}, cwd=tmp_path)
    assert settings.uses_local_kafka and settings.uses_local_graph
    assert settings.local_stack == "apache"
    assert settings.bootstrap == "127.0.0.1:9092"
    assert settings.bolt_uri == "bolt://127.0.0.1:7687"
    assert (settings.neo4j_user, settings.database) == ("neo4j", "neo4j")
    # Kafka answers a fetch when data arrives: the client's default wait; topics replicated as the cluster allows
    assert (settings.fetch_max_wait_ms, settings.replication_factor) == (500, None)
    assert settings.home == (tmp_path / ".streamrec").resolve()
    assert (settings.top_k, settings.exclude, settings.metrics_host) == (20, "purchased", "127.0.0.1")


def test_the_light_stack_keeps_its_own_user_database_and_short_fetch_wait(tmp_path):
    settings = load_settings({"STREAMREC_LOCAL_STACK": "light"}, cwd=tmp_path)
    assert (settings.neo4j_user, settings.database, settings.fetch_max_wait_ms) == ("root", "recs", 20)
    # a user's own broker is not the stand-in, whatever the local stack
    external = load_settings({"STREAMREC_LOCAL_STACK": "light", "STREAMREC_KAFKA_BOOTSTRAP": "k:9092"}, cwd=tmp_path)
    assert external.fetch_max_wait_ms == 500


def test_a_bad_stack_or_replication_factor_stops_start_up_naming_the_variable(tmp_path):
    with pytest.raises(SettingsError) as error:
        load_settings({"STREAMREC_LOCAL_STACK": "docker", "STREAMREC_REPLICATION_FACTOR": "0"}, cwd=tmp_path)
    assert "STREAMREC_LOCAL_STACK='docker': must be one of apache, light" in str(error.value)
    assert "STREAMREC_REPLICATION_FACTOR='0'" in str(error.value)


def test_external_servers_replace_the_local_ones(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    settings = load_settings(
        {
            "STREAMREC_KAFKA_BOOTSTRAP": "kafka-1:9092,kafka-2:9092",
            "STREAMREC_NEO4J_URI": "neo4j://neo4j:7687",
            "STREAMREC_NEO4J_PASSWORD_FILE": str(secret),
            "STREAMREC_NEO4J_DATABASE": "neo4j",
        },
        cwd=tmp_path,
    )
    assert not settings.uses_local_kafka and not settings.uses_local_graph
    assert settings.bootstrap == "kafka-1:9092,kafka-2:9092"
    assert (settings.neo4j_user, settings.neo4j_password, settings.database) == ("neo4j", "s3cret", "neo4j")


@pytest.mark.parametrize(
    "env, named",
    [
        ({"STREAMREC_TOP_K": "many"}, "STREAMREC_TOP_K='many': must be an integer"),
        ({"STREAMREC_TOP_K": "0"}, "STREAMREC_TOP_K='0': must be between 1 and 1000"),
        ({"STREAMREC_EXCLUDE": "everything"}, "must be one of none, purchased, seen"),
        ({"STREAMREC_KAFKA_BOOTSTRAP": "localhost"}, "STREAMREC_KAFKA_BOOTSTRAP='localhost': must be host:port"),
        ({"STREAMREC_NEO4J_URI": "http://x:7474", "STREAMREC_NEO4J_PASSWORD": "p"}, "must start with bolt://"),
        ({"STREAMREC_NEO4J_URI": "bolt://x:7687"}, "STREAMREC_NEO4J_PASSWORD"),
        ({"STREAMREC_NEO4J_PASSWORD_FILE": "/nonexistent/pw"}, "cannot read it"),
        ({"STREAMREC_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512"}, "STREAMREC_KAFKA_SASL_USERNAME"),
        ({"STREAMREC_SESSION_TIMEOUT_S": "nan-ish"}, "must be a number"),
        ({"STREAMREC_LOG_FORMAT": "xml"}, "STREAMREC_LOG_FORMAT='xml': must be one of text, json"),
        ({"STREAMREC_WRITE_STALL_LEAVE_S": "soon"}, "STREAMREC_WRITE_STALL_LEAVE_S='soon': must be a number"),
        ({"STREAMREC_WRITE_STALL_LEAVE_S": "-5"}, "STREAMREC_WRITE_STALL_LEAVE_S='-5': must be between 0"),
        ({"STREAMREC_WRITE_STALL_LEAVE_S": "0.2"}, "must be 0 (never leave the group) or at least 1 second"),
    ],
)
def test_invalid_settings_name_the_variable_and_what_is_allowed(env, named):
    with pytest.raises(SettingsError) as error:
        load_settings(env, cwd=Path("/tmp"))
    assert named in str(error.value)


def test_a_worker_leaves_the_group_after_a_minute_of_failed_graph_writes_unless_told_otherwise():
    assert load_settings({}, cwd=Path("/tmp")).write_stall_leave_s == 60.0
    assert load_settings({"STREAMREC_WRITE_STALL_LEAVE_S": "0"}, cwd=Path("/tmp")).write_stall_leave_s == 0.0
    assert load_settings({"STREAMREC_WRITE_STALL_LEAVE_S": "2.5"}, cwd=Path("/tmp")).write_stall_leave_s == 2.5


def test_every_problem_is_reported_at_once():
    with pytest.raises(SettingsError) as error:
        load_settings({"STREAMREC_TOP_K": "x", "STREAMREC_PARTITIONS": "-1"}, cwd=Path("/tmp"))
    assert "STREAMREC_TOP_K" in str(error.value) and "STREAMREC_PARTITIONS" in str(error.value)


def test_cli_stops_at_start_up_with_the_message(monkeypatch, capsys):
    from streamrec.tools.cli import main

    monkeypatch.setenv("STREAMREC_BATCH_SIZE", "lots")
    assert main(["services", "status"]) == 2
    assert "STREAMREC_BATCH_SIZE='lots'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "host, ok",
    [
        ("127.0.0.1", True),
        ("0.0.0.0", True),
        ("::", True),
        ("worker-1.svc", True),
        ("256.1.1.1", False),
        ("1.2.3", False),
        ("bad host", False),
        ("-x", False),
    ],
)
def test_the_metrics_host_must_be_an_address_or_a_host_name(tmp_path, host, ok):
    env = {"STREAMREC_METRICS_HOST": host}
    if ok:
        assert load_settings(env, cwd=tmp_path).metrics_host == host
    else:
        with pytest.raises(
            SettingsError, match=f"STREAMREC_METRICS_HOST='{host}': must be an IP address or a host name"
        ):
            load_settings(env, cwd=tmp_path)


@pytest.mark.slow  # the worker waits its 15 s for a broker before it gives up
def test_an_unreachable_broker_stops_the_worker_with_one_line(tmp_path):
    import subprocess
    import sys

    from streamrec.tools.live import free_port

    env = {
        **os.environ,
        "STREAMREC_HOME": str(tmp_path),
        "STREAMREC_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "STREAMREC_NEO4J_URI": "bolt://127.0.0.1:1",
        "STREAMREC_NEO4J_PASSWORD": "unused-here",
    }
    result = subprocess.run(
        [sys.executable, "-m", "streamrec", "worker"], env=env, capture_output=True, text=True, timeout=120
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2
    assert "no Kafka broker answered at 127.0.0.1:" in output and "set STREAMREC_KAFKA_BOOTSTRAP" in output
    assert "Traceback" not in output and len(output.strip().splitlines()) == 1


def test_the_topic_prefix_holds_only_kafkas_topic_name_characters(tmp_path):
    assert load_settings({"STREAMREC_TOPIC_PREFIX": "shop-1.eu_"}, cwd=tmp_path).topic_prefix == "shop-1.eu_"
    with pytest.raises(SettingsError, match=r"STREAMREC_TOPIC_PREFIX='bad prefix/': may hold only letters, digits"):
        load_settings({"STREAMREC_TOPIC_PREFIX": "bad prefix/"}, cwd=tmp_path)


def test_a_misspelt_variable_is_named_with_the_nearest_setting():
    warnings = load_settings(
        {"STREAMREC_TOPK": "5", "STREAMREC_NEO4J_PASWORD": "x", "STREAMREC_QQQ": "1"}
    ).unknown_variables
    assert warnings == (
        "STREAMREC_NEO4J_PASWORD is not a streamrec setting and is ignored: did you mean STREAMREC_NEO4J_PASSWORD?",
        "STREAMREC_QQQ is not a streamrec setting and is ignored (docs/configuration.md lists the settings)",
        "STREAMREC_TOPK is not a streamrec setting and is ignored: did you mean STREAMREC_TOP_K?",
    )


def test_no_variable_the_project_names_is_called_unknown():
    import re
    from pathlib import Path

    repo = Path(__file__).resolve().parents[3]
    texts = [
        repo / "README.md",
        *repo.glob("docs/*.md"),
        *repo.glob("examples/*"),
        *repo.glob("deploy/**/*.y*ml"),
        *repo.glob("deploy/*.sh"),
        *repo.glob("streamrec/**/*.py"),
        *repo.glob("stream/*.py"),
    ]
    names = {name for path in texts for name in re.findall(r"STREAMREC_[A-Z0-9_]*[A-Z0-9]", path.read_text())}
    names.discard("STREAMREC_TOPK")  # the docs' example of a typo
    assert len(names) > 30
    assert load_settings({name: "" for name in names}).unknown_variables == ()


def test_the_missing_broker_message_says_what_to_do_for_each_kind_of_broker():
    from streamrec.runtime.settings import load_settings
    from streamrec.runtime.worker import broker_missing

    configured = broker_missing(load_settings({"STREAMREC_KAFKA_BOOTSTRAP": "kafka-1:9092"}), 15)
    assert configured.startswith("no Kafka broker answered at kafka-1:9092 within 15 s: check that the brokers")
    assert "start STREAMREC_KAFKA_BOOTSTRAP" not in configured
    local = broker_missing(load_settings({}), 15)
    assert "start the local broker (`streamrec services up`)" in local


def test_printing_or_logging_the_settings_never_repeats_a_password(tmp_path, caplog):
    """The graph password, the SASL password (from a variable or a _FILE) and their variables in `extra` show as
    <hidden>; every other field is still there, and the values themselves are kept for the clients."""
    import logging
    import pickle

    (tmp_path / "sasl").write_text("sasl-pw-from-a-file\n")
    env = {
        "STREAMREC_NEO4J_URI": "bolt://graph.example:7687",
        "STREAMREC_NEO4J_PASSWORD": 'graph "pw" 42',
        "STREAMREC_KAFKA_BOOTSTRAP": "kafka-1:9092",
        "STREAMREC_KAFKA_SASL_MECHANISM": "PLAIN",
        "STREAMREC_KAFKA_SASL_USERNAME": "streamrec",
        "STREAMREC_KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "sasl"),
        "STREAMREC_API_TOKEN": "tok-123",  # an unknown variable named like a secret: hidden in `extra` too
    }
    settings = load_settings(env, cwd=tmp_path)
    secrets = ('graph "pw" 42', 'graph \\"pw\\" 42', "sasl-pw-from-a-file", "tok-123")
    with caplog.at_level(logging.INFO):
        logging.getLogger("streamrec.test").info("settings %s; %r", settings, settings)
    for shown in (repr(settings), str(settings), f"{settings}", caplog.text):
        assert not [s for s in secrets if s in shown], shown
        assert "neo4j_password='<hidden>'" in shown and "kafka_sasl_password='<hidden>'" in shown
        assert "'STREAMREC_NEO4J_PASSWORD': '<hidden>'" in shown and "'STREAMREC_API_TOKEN': '<hidden>'" in shown
        assert "neo4j_uri='bolt://graph.example:7687'" in shown and "kafka_sasl_username='streamrec'" in shown
    assert (settings.neo4j_password, settings.kafka_sasl_password) == ('graph "pw" 42', "sasl-pw-from-a-file")
    assert pickle.loads(pickle.dumps(settings)) == settings  # the model host's process gets the real values
    # an unset secret reads as unset, not as hidden
    assert "kafka_sasl_password=None" in repr(load_settings({}, cwd=tmp_path))


def test_the_data_folder_is_under_the_home_unless_set(tmp_path):
    """The public data sets (eval, bench) are looked for in $STREAMREC_HOME/data, never beside the clone."""
    assert load_settings({}, cwd=tmp_path).data_dir == (tmp_path / ".streamrec" / "data").resolve()
    home = tmp_path / "elsewhere"
    assert load_settings({"STREAMREC_HOME": str(home)}, cwd=tmp_path).data_dir == home.resolve() / "data"
    env = {"STREAMREC_HOME": str(home), "STREAMREC_DATA_DIR": str(tmp_path / "sets")}
    assert load_settings(env, cwd=tmp_path).data_dir == tmp_path / "sets"
