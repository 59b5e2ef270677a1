"""Static checks that docker-compose.yml, the Dockerfile, .env.example and the settings agree."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices, ValidationError
from pydantic_settings import BaseSettings

from spendwatch.collector.settings import CollectorSettings
from spendwatch.common.settings import BaseServiceSettings, MigrateSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"

ONE_SHOT = "migrate"
INFRA_HEALTHY = ("timescaledb", "nats")
SERVICES = ("collector", "detector", "incidents", "notifier", "api")
DEMO_ONLY = {"simulator", "collector-demo"}
SIMULATOR = "simulator"
GRAFANA_DIR = ROOT / "grafana"
# Variables compose may interpolate that no settings class reads: the third-party containers'.
INFRA_VARIABLE = re.compile(
    r"^(POSTGRES_|GF_|GRAFANA_|PROMETHEUS_|SPENDWATCH_DB_HOST$|SPENDWATCH_PROMETHEUS_URL$|API_PORT$)"
)

# The names in ARCHITECTURE.md's Configuration section: the contract .env.example must list.
CONFIG_CONTRACT = frozenset(
    {
        "DATABASE_URL",
        "NATS_URL",
        "CURSOR_ADMIN_API_KEY",
        "CURSOR_API_BASE_URL",
        "ANTHROPIC_ADMIN_API_KEY",
        "ANTHROPIC_API_BASE_URL",
        "OPENAI_ADMIN_API_KEY",
        "OPENAI_API_BASE_URL",
        "COLLECT_INTERVAL_SECONDS",
        "SLACK_BOT_TOKEN",
        "SLACK_CHANNEL_ID",
        "SLACK_API_BASE_URL",
        "SLACK_SIGNING_SECRET",
        "RESEND_API_KEY",
        "RESEND_API_BASE_URL",
        "SMTP_URL",
        "ALERT_EMAIL_FROM",
        "ALERT_EMAIL_TO",
        "DASHBOARD_URL",
        "API_ADMIN_TOKEN",
        "API_AUTH",
        "API_LISTEN",
        "TEAM_TIMEZONE",
        "LOG_LEVEL",
    }
)

# Settings modules that must exist now, and those picked up once their service has them.
REQUIRED_SETTINGS_MODULES = ("spendwatch.common.settings", "spendwatch.collector.settings")
OPTIONAL_SETTINGS_MODULES = tuple(
    f"spendwatch.{name}.settings" for name in ("cli", "detector", "incidents", "notifier", "api")
)

_ASSIGNMENT = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")
_BRACED = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)")
_BARE = re.compile(r"\$(?P<name>[A-Za-z_][A-Za-z0-9_]*)")
_WITH_DEFAULT = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}")


# --- loaders ----------------------------------------------------------------------------------


@cache
def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    return data


def _services() -> dict[str, dict[str, Any]]:
    services = _compose().get("services")
    assert isinstance(services, dict), "docker-compose.yml has no services mapping"
    assert services, "docker-compose.yml has no services"
    return services


def _app_services() -> dict[str, dict[str, Any]]:
    """Services built from our Dockerfile (the rest are third-party images)."""
    return {name: svc for name, svc in _services().items() if "build" in svc}


def _environment_names(service: dict[str, Any]) -> set[str]:
    env = service.get("environment") or {}
    if isinstance(env, dict):
        return set(env)
    return {entry.split("=", 1)[0] for entry in env}


@cache
def _env_example() -> dict[str, str]:
    """The assignments of .env.example, in order; malformed lines fail here."""
    lines = ENV_EXAMPLE.read_text().splitlines()
    found: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _ASSIGNMENT.match(stripped)
        assert match, f".env.example:{number}: not NAME=value: {line!r}"
        name = match["name"]
        assert name not in found, f".env.example:{number}: {name} is listed twice"
        previous = lines[number - 2].strip() if number >= 2 else ""
        assert previous.startswith("#"), f".env.example:{number}: {name} has no comment above it"
        found[name] = match["value"]
    return found


def _settings_classes() -> list[type[BaseSettings]]:
    """Every pydantic-settings class defined or imported in the spendwatch settings modules."""
    modules = [importlib.import_module(name) for name in REQUIRED_SETTINGS_MODULES]
    for name in OPTIONAL_SETTINGS_MODULES:
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            # Only "this service has no settings module yet" is tolerated, not a broken import.
            if exc.name is None or not name.startswith(exc.name):
                raise
    classes: dict[str, type[BaseSettings]] = {}
    for module in modules:
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, BaseSettings) and obj is not BaseSettings:
                classes[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return list(classes.values())


def _field_env_names(model: type[BaseSettings]) -> dict[str, set[str]]:
    """Field name -> the environment names pydantic-settings reads it from (upper-cased)."""
    prefix = str(model.model_config.get("env_prefix") or "")
    result: dict[str, set[str]] = {}
    for name, field in model.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, str):
            names = {alias}
        elif isinstance(alias, AliasChoices):
            names = {choice for choice in alias.choices if isinstance(choice, str)}
        else:
            names = {prefix + (field.alias or name)}
        result[name] = {n.upper() for n in names}
    return result


@cache
def _settings_aliases() -> frozenset[str]:
    models: set[type[BaseSettings]] = {
        BaseServiceSettings,
        MigrateSettings,
        CollectorSettings,
        *_settings_classes(),
    }
    return frozenset(
        env for model in models for names in _field_env_names(model).values() for env in names
    )


def _interpolated_names(text: str) -> set[str]:
    text = text.replace("$$", "")  # `$$` is a literal dollar sign, not a variable
    return {m["name"] for m in _BRACED.finditer(text)} | {m["name"] for m in _BARE.finditer(text)}


def _with_defaults(value: str) -> str:
    """`${VAR:-default}` -> default, as compose would resolve it with VAR unset."""
    return _WITH_DEFAULT.sub(lambda m: m["default"] or "", value)


@cache
def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            keyword, _, args = full.partition(" ")
            instructions.append((keyword.upper(), args.strip()))
    return instructions


def _final_stage() -> list[tuple[str, str]]:
    instructions = _dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


# --- docker-compose.yml -----------------------------------------------------------------------


def test_compose_defines_the_stack() -> None:
    services = _services()
    for name in (*INFRA_HEALTHY, ONE_SHOT, "collector"):
        assert name in services, f"service {name} missing"
    assert {ONE_SHOT, "collector"} <= set(_app_services()), "migrate and collector must be built"


def test_every_long_running_service_has_a_healthcheck() -> None:
    for name, service in _services().items():
        if name == ONE_SHOT:
            continue
        check = service.get("healthcheck")
        assert isinstance(check, dict), f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name} disables its healthcheck"
        test = check.get("test")
        assert test, f"{name} healthcheck has no test"
        assert test != ["NONE"], f"{name} healthcheck test is NONE"


def test_images_are_pinned() -> None:
    for name, service in _services().items():
        image = service.get("image")
        if image is None:
            assert "build" in service, f"{name} has neither image nor build"
            continue
        image = _with_defaults(str(image))
        if "@sha256:" in image:
            continue
        repository, sep, tag = image.rpartition(":")
        assert sep, f"{name}: image {image!r} has no tag"
        assert repository, f"{name}: image {image!r} has no repository"
        assert "/" not in tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest", f"{name}: image {image!r} uses latest"


def test_app_services_wait_for_healthy_infrastructure_and_migrations() -> None:
    for name, service in _app_services().items():
        if name == SIMULATOR:  # a stand-in for Cursor: needs neither database nor bus
            continue
        depends = service.get("depends_on")
        assert isinstance(depends, dict), f"{name}: depends_on must be the long form"
        required = {"timescaledb"} if name == ONE_SHOT else {*INFRA_HEALTHY, ONE_SHOT}
        assert required <= set(depends), f"{name} must depend on {sorted(required - set(depends))}"
        for dependency, spec in depends.items():
            condition = (spec or {}).get("condition")
            if dependency in INFRA_HEALTHY:
                assert condition == "service_healthy", f"{name} -> {dependency}: {condition}"
            elif dependency == ONE_SHOT:
                assert condition == "service_completed_successfully", (
                    f"{name} -> {dependency}: {condition}"
                )


def test_migrate_runs_once() -> None:
    migrate = _services()[ONE_SHOT]
    # Unquoted `no` is YAML 1.1 false, which compose rejects: it must be the string "no".
    assert migrate.get("restart") == "no"
    assert migrate.get("command") == ["migrate"]


def test_app_commands_are_cli_verbs() -> None:
    for name, service in _app_services().items():
        command = service.get("command")
        if name in (ONE_SHOT, SIMULATOR):
            continue
        assert isinstance(command, list), f"{name}: command must be an exec-form list"
        assert command[:1] == ["run"], f"{name}: {command} is not `run <service>`"
        assert len(command) == 2, f"{name}: {command} is not `run <service>`"
        assert command[1] in SERVICES, f"{name}: unknown service {command[1]!r}"


def test_app_services_read_optional_env_file() -> None:
    for name, service in _app_services().items():
        entries = service.get("env_file")
        assert isinstance(entries, list), f"{name}: env_file must be a list"
        dotenv = [e for e in entries if isinstance(e, dict) and e.get("path") == ".env"]
        assert dotenv, f"{name}: env_file lacks .env"
        assert dotenv[0].get("required") is False, f"{name}: .env must be optional"


def test_app_environment_names_are_settings_aliases() -> None:
    aliases = _settings_aliases()
    for name, service in _app_services().items():
        unknown = {env.upper() for env in _environment_names(service)} - aliases
        assert not unknown, f"{name} sets variables no settings class reads: {sorted(unknown)}"


def test_healthchecks_use_exec_form() -> None:
    for name, service in _services().items():
        test = (service.get("healthcheck") or {}).get("test")
        if test is not None:
            assert isinstance(test, list), f"{name}: healthcheck test must be a list"
            assert test[0] in {"CMD", "CMD-SHELL"}, f"{name}: {test}"


def _volume_source(volume: str | dict[str, Any]) -> str:
    return volume.split(":", 1)[0] if isinstance(volume, str) else str(volume.get("source", ""))


def test_data_lives_on_declared_named_volumes() -> None:
    declared = set(_compose().get("volumes") or {})
    for name, service in _services().items():
        for volume in service.get("volumes") or []:
            source = _volume_source(volume)
            if source and not source.startswith((".", "/", "~", "$")):
                assert source in declared, f"{name}: volume {source} is not declared"
    for name in INFRA_HEALTHY:
        sources = {_volume_source(v) for v in _services()[name].get("volumes") or []}
        assert sources & declared, f"{name} keeps its data on no named volume"


# --- .env.example -----------------------------------------------------------------------------


def test_env_example_lists_the_configuration_contract() -> None:
    missing = CONFIG_CONTRACT - set(_env_example())
    assert not missing, f".env.example lacks {sorted(missing)}"


def test_every_compose_interpolation_is_documented() -> None:
    used = _interpolated_names(COMPOSE_FILE.read_text())
    missing = used - set(_env_example())
    assert not missing, f"compose uses undocumented variables {sorted(missing)}"


def test_every_setting_is_documented() -> None:
    missing = _settings_aliases() - set(_env_example())
    assert not missing, f"settings read variables .env.example does not list: {sorted(missing)}"


def test_every_documented_variable_is_read_by_something() -> None:
    known = _interpolated_names(COMPOSE_FILE.read_text()) | _settings_aliases() | CONFIG_CONTRACT
    unused = set(_env_example()) - known
    assert not unused, f".env.example lists variables nothing reads: {sorted(unused)}"


def test_secrets_are_left_empty() -> None:
    secret_like = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)$|^SMTP_URL$")
    filled = {name for name, value in _env_example().items() if secret_like.search(name) and value}
    assert not filled, f".env.example carries secret values for {sorted(filled)}"


def test_empty_values_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """.env.example and compose pass `NAME=` for unset options; that must mean the default."""
    problems: list[str] = []
    for model in _settings_classes():
        names = _field_env_names(model)
        for env in {env for env_names in names.values() for env in env_names}:
            monkeypatch.setenv(env, "")
        try:
            instance = model(_env_file=None)
        except ValidationError as exc:
            rejected = sorted(str(error["loc"][0]) for error in exc.errors())
            problems.append(f"{model.__name__} rejects empty {rejected}")
            continue
        for field_name, field in model.model_fields.items():
            if field.is_required():
                continue
            if getattr(instance, field_name) != field.get_default(call_default_factory=True):
                problems.append(f"{model.__name__}: empty {sorted(names[field_name])} is not unset")
    assert not problems, "set env_ignore_empty=True in the settings: " + "; ".join(problems)


# --- Dockerfile -------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage() -> None:
    stages = [args for keyword, args in _dockerfile_instructions() if keyword == "FROM"]
    assert len(stages) >= 2, f"expected a builder and a runtime stage, got {stages}"


def test_dockerfile_runtime_is_not_root() -> None:
    users = [args.split(":", 1)[0] for keyword, args in _final_stage() if keyword == "USER"]
    assert users, "the runtime stage never switches USER"
    assert users[-1] not in {"root", "0"}, f"the runtime stage runs as {users[-1]}"


def test_dockerfile_runtime_runs_the_cli_with_migrations() -> None:
    final = _final_stage()
    entrypoints = [json.loads(args) for keyword, args in final if keyword == "ENTRYPOINT"]
    assert entrypoints, "the runtime stage has no ENTRYPOINT"
    assert entrypoints[-1] == ["spendwatch"], entrypoints
    copies = [args for keyword, args in final if keyword == "COPY"]
    assert any(args.split()[-1].rstrip("/") == "/app/migrations" for args in copies), copies
    builds = [args for keyword, args in _dockerfile_instructions() if keyword == "RUN"]
    assert any("uv sync" in args and "--frozen" in args and "--no-dev" in args for args in builds)


# --- every interpolation has a reader ----------------------------------------------------------


def test_every_compose_interpolation_is_a_setting_or_an_infra_variable() -> None:
    used = _interpolated_names(COMPOSE_FILE.read_text())
    unknown = {n for n in used - _settings_aliases() if not INFRA_VARIABLE.match(n)}
    assert not unknown, f"compose interpolates variables nothing reads: {sorted(unknown)}"


def test_services_are_checked_on_the_port_they_serve_metrics_on() -> None:
    port = str(_compose()["x-app-env"]["METRICS_PORT"])
    assert port == "9101"
    for name in ("collector", "detector", "incidents", "notifier", "collector-demo"):
        probe = " ".join(_services()[name]["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/healthz" in probe, name
    assert "127.0.0.1:8080/healthz" in " ".join(_services()["api"]["healthcheck"]["test"])


# --- Grafana and Prometheus --------------------------------------------------------------------


def _mounts(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """container path -> (host path or volume, mode) of a service's short-form volumes."""
    found = {}
    for volume in service.get("volumes") or []:
        source, target, *mode = str(volume).split(":")
        found[target] = (source, mode[0] if mode else "rw")
    return found


def _default(value: str) -> str:
    match = _WITH_DEFAULT.fullmatch(value)
    assert match, f"{value!r} is not ${{VAR:-default}}"
    assert match["default"], f"{value!r} has no default"
    return match["default"]


def test_grafana_mounts_the_provisioning_it_expects_read_only() -> None:
    grafana = _services()["grafana"]
    assert str(grafana["image"]).startswith("grafana/grafana-oss:")
    mounts = _mounts(grafana)
    provisioning = yaml.safe_load(
        (GRAFANA_DIR / "provisioning/dashboards/spendwatch.yaml").read_text()
    )
    (provider,) = provisioning["providers"]
    for target in ("/etc/grafana/provisioning", provider["options"]["path"]):
        source, mode = mounts[target]
        assert mode == "ro", target
        assert (ROOT / source).is_dir(), source
    assert mounts["/etc/grafana/provisioning"][0] == "./grafana/provisioning"
    assert mounts["/var/lib/grafana/dashboards"][0] == "./grafana/dashboards"
    assert mounts["/var/lib/grafana"][0] in _compose()["volumes"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(provider["options"]["path"] + "/")
    assert (GRAFANA_DIR / "dashboards" / Path(home).name).is_file()


def test_grafana_is_published_checked_and_started_after_the_migration() -> None:
    grafana = _services()["grafana"]
    assert grafana["ports"] == ["${GRAFANA_PORT:-3000}:3000"]
    assert "/api/health" in " ".join(grafana["healthcheck"]["test"])
    depends = grafana["depends_on"]
    assert depends["timescaledb"]["condition"] == "service_healthy"
    assert depends[ONE_SHOT]["condition"] == "service_completed_successfully"


def test_grafana_environment_covers_its_provisioning_files() -> None:
    """Grafana expands provisioning values with os.ExpandEnv: each name must be set, defaulted."""
    env = _services()["grafana"]["environment"]
    files = sorted((GRAFANA_DIR / "provisioning").rglob("*.yaml"))
    # The parsed values only: the files' comments mention variables too.
    values = [json.dumps(yaml.safe_load(f.read_text())) for f in files]
    needed = set().union(*(_interpolated_names(v) for v in values))
    assert needed >= {"SPENDWATCH_DB_HOST", "GRAFANA_DB_PASSWORD", "SPENDWATCH_PROMETHEUS_URL"}
    for name in needed:
        assert name in env, f"grafana's environment lacks {name}"
        assert _default(str(env[name])), name
    assert _default(env["SPENDWATCH_DB_HOST"]) == "timescaledb"
    assert _default(env["SPENDWATCH_PROMETHEUS_URL"]) == "http://prometheus:9090"


def test_migrate_gives_grafana_reader_the_password_grafana_uses() -> None:
    grafana = _services()["grafana"]["environment"]["GRAFANA_DB_PASSWORD"]
    migrate = _services()[ONE_SHOT]["environment"]["GRAFANA_DB_PASSWORD"]
    assert migrate == grafana
    assert "GRAFANA_DB_PASSWORD" in _field_env_names(MigrateSettings)["grafana_db_password"]
    others = [n for n, s in _app_services().items() if "GRAFANA_DB_PASSWORD" in s["environment"]]
    assert others == [ONE_SHOT], "only migrate needs the Grafana database password"


def test_prometheus_scrapes_every_service_on_its_metrics_port() -> None:
    prometheus = _services()["prometheus"]
    source, mode = _mounts(prometheus)["/etc/prometheus/prometheus.yml"]
    assert mode == "ro"
    config = yaml.safe_load((ROOT / source).read_text())
    scraped: dict[str, int] = {}
    for job in config["scrape_configs"]:
        assert job["job_name"].startswith("spendwatch-")
        for sd in job["dns_sd_configs"]:
            assert sd["type"] == "A"
            scraped.update(dict.fromkeys(sd["names"], sd["port"]))
    long_running = {n for n in _app_services() if n not in (ONE_SHOT, SIMULATOR)}
    assert set(scraped) == long_running
    assert {n: p for n, p in scraped.items() if n != "api"} == dict.fromkeys(
        long_running - {"api"}, 9101
    )
    assert scraped["api"] == int(_services()["api"]["environment"]["API_LISTEN"].rsplit(":", 1)[1])
    metrics_source = yaml.safe_load(
        (GRAFANA_DIR / "provisioning/datasources/prometheus.yaml").read_text()
    )["datasources"][0]
    assert metrics_source["uid"] == "spendwatch-prometheus"
    assert metrics_source["url"] == "${SPENDWATCH_PROMETHEUS_URL}"


# --- demo profile ------------------------------------------------------------------------------


def test_only_the_demo_services_are_in_a_profile() -> None:
    for name, service in _services().items():
        expected = ["demo"] if name in DEMO_ONLY else None
        assert service.get("profiles") == expected, name


def _option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_the_demo_collector_polls_the_simulator_with_its_key() -> None:
    simulator, collector = _services()[SIMULATOR], _services()["collector-demo"]
    assert simulator["entrypoint"] == ["python", "-m", "spendwatch.simulator"]
    assert importlib.util.find_spec("spendwatch.simulator.__main__") is not None
    command = simulator["command"]
    assert _option(command, "--host") == "0.0.0.0"
    port = _option(command, "--port")
    assert f"127.0.0.1:{port}/_sim/health" in " ".join(simulator["healthcheck"]["test"])

    env = collector["environment"]
    assert collector["command"] == ["run", "collector"]
    assert env["CURSOR_API_BASE_URL"] == f"http://{SIMULATOR}:{port}"
    assert env["CURSOR_ADMIN_API_KEY"] == _option(command, "--admin-key")
    from spendwatch.simulator import DEFAULT_ADMIN_KEY  # noqa: PLC0415

    assert env["CURSOR_ADMIN_API_KEY"] == DEFAULT_ADMIN_KEY
    assert env["CURSOR_ACCOUNT"] == "demo"
    settings = CollectorSettings.model_validate({k: v for k, v in env.items() if "$" not in str(v)})
    assert settings.collect_interval_seconds == 60
    assert collector["depends_on"][SIMULATOR]["condition"] == "service_healthy"
    # The regular collector is not pointed at the simulator: demo data needs the profile.
    assert "simulator" not in str(_services()["collector"]["environment"])
