"""Checks of the container stack: docker-compose.yml, the Dockerfile and deploy/postgres-init.sql.

No Docker engine is needed. ``docker compose config`` runs when a Compose v2 client is installed;
everything else reads the files (and runs the init script on a throwaway PostgreSQL when the
server binaries are there).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from config import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
INIT_SQL = ROOT / "deploy" / "postgres-init.sql"

REQUIRED_SERVICES = (
    "postgres",
    "temporal-admin-tools",
    "temporal",
    "temporal-ui",
    "migrate",
    "api",
    "worker",
    "intake-worker",
)
APP_SERVICES = ("migrate", "api", "worker", "intake-worker")
HEALTHCHECKED = ("postgres", "temporal", "api")
NAMESPACE_JOB = "temporal-create-namespace"
DEPENDS_ON_CONDITIONS = {
    "service_started",
    "service_healthy",
    "service_completed_successfully",
}


# ----------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    assert COMPOSE_FILE.is_file(), f"{COMPOSE_FILE.name} is missing from {ROOT}"
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "docker-compose.yml is not a YAML mapping"
    assert isinstance(data.get("services"), dict), "docker-compose.yml has no `services` mapping"
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    for name, spec in found.items():
        assert isinstance(spec, dict), f"service {name!r} is not a mapping"
    return found


def env_of(service: dict[str, Any]) -> dict[str, str]:
    """A service's `environment`, list or mapping form, as a dict of strings."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in raw)
        return dict(pairs)
    return {str(key): "" if value is None else str(value) for key, value in raw.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """`depends_on` as {target: condition}; the short list form means service_started."""
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {
        target: (spec or {}).get("condition", "service_started") for target, spec in raw.items()
    }


def argv(value: Any) -> list[str]:
    """A `command`/`entrypoint`/healthcheck `test`, string or list form, as a list of words."""
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(word) for word in value]


def image_tag(image: str) -> str | None:
    """The tag of an image reference (None when it has none); a digest counts as a tag."""
    if "@" in image:
        return image.split("@", 1)[1]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of the Dockerfile, continuation lines joined."""
    assert DOCKERFILE.is_file(), f"{DOCKERFILE.name} is missing from {ROOT}"
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    out = []
    for line in joined.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        instruction, _, args = stripped.partition(" ")
        out.append((instruction.upper(), args.strip()))
    return out


def compose_v2_command() -> list[str] | None:
    """`docker compose` (the plugin) or a standalone docker-compose of version 2 or later."""
    candidates = []
    if docker := shutil.which("docker"):
        candidates.append([docker, "compose"])
    if standalone := shutil.which("docker-compose"):
        candidates.append([standalone])
    for command in candidates:
        try:
            done = subprocess.run(
                [*command, "version"],
                capture_output=True,
                text=True,
                timeout=30,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        match = re.search(r"version v?(\d+)\.", done.stdout, re.IGNORECASE)
        # Compose v1 (docker-compose 1.x) does not know this file's `configs.content`.
        if done.returncode == 0 and match and int(match.group(1)) >= 2:
            return command
    return None


# ----------------------------------------------------------------------------- compose


def test_docker_compose_config_accepts_the_file() -> None:
    command = compose_v2_command()
    if command is None:
        pytest.skip("no Docker Compose v2 client here (`docker compose version` fails)")
    done = subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, (
        f"`{' '.join(command)} config -q` rejected docker-compose.yml "
        f"(exit {done.returncode}):\n{done.stderr or done.stdout}"
    )


def test_required_services_exist(services: dict[str, dict[str, Any]]) -> None:
    missing = [name for name in REQUIRED_SERVICES if name not in services]
    assert not missing, f"docker-compose.yml lacks the services {missing}"


def test_depends_on_targets_exist_with_usable_conditions(
    services: dict[str, dict[str, Any]],
) -> None:
    problems = []
    for name, spec in services.items():
        for target, condition in depends_on(spec).items():
            if target not in services:
                problems.append(f"{name} depends on unknown service {target!r}")
                continue
            if condition not in DEPENDS_ON_CONDITIONS:
                problems.append(f"{name} -> {target}: unknown condition {condition!r}")
            if condition == "service_healthy" and "healthcheck" not in services[target]:
                problems.append(
                    f"{name} waits for {target} to be healthy, which has no healthcheck"
                )
    assert not problems, "bad depends_on: " + "; ".join(problems)


def test_start_order(services: dict[str, dict[str, Any]]) -> None:
    expected = {
        ("temporal-admin-tools", "postgres"): "service_healthy",
        ("temporal", "temporal-admin-tools"): "service_completed_successfully",
        ("temporal-ui", "temporal"): None,
        ("migrate", "postgres"): "service_healthy",
        ("api", "migrate"): "service_completed_successfully",
        ("api", "temporal"): "service_healthy",
        ("worker", "migrate"): "service_completed_successfully",
        ("worker", "temporal"): None,
        ("intake-worker", "migrate"): "service_completed_successfully",
        ("intake-worker", "temporal"): None,
    }
    for (name, target), condition in expected.items():
        deps = depends_on(services[name])
        assert target in deps, f"{name} must depend on {target}"
        if condition is not None:
            assert deps[target] == condition, (
                f"{name} must wait for {target} with {condition}, not {deps[target]}"
            )


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_get_orderly_settings(services: dict[str, dict[str, Any]], name: str) -> None:
    env = env_of(services[name])
    known = {f"ORDERLY_{field.upper()}" for field in Settings.model_fields}
    unknown = sorted(key for key in env if key.startswith("ORDERLY_") and key not in known)
    assert not unknown, f"{name} sets {unknown}, which config.Settings does not read"

    target = env.get("ORDERLY_TEMPORAL_TARGET")
    assert target == "temporal:7233", (
        f"{name}: ORDERLY_TEMPORAL_TARGET is {target!r}, expected 'temporal:7233'"
    )
    for key in ("ORDERLY_TEMPORAL_NAMESPACE", "ORDERLY_TASK_QUEUE"):
        assert env.get(key), f"{name}: {key} is not set"

    raw_url = env.get("ORDERLY_DATABASE_URL")
    assert raw_url, f"{name}: ORDERLY_DATABASE_URL is not set"
    url = make_url(raw_url)
    assert url.drivername == "postgresql+psycopg", (
        f"{name}: ORDERLY_DATABASE_URL uses driver {url.drivername!r}, not postgresql+psycopg"
    )
    assert url.host == "postgres", (
        f"{name}: ORDERLY_DATABASE_URL points at host {url.host!r}, not the `postgres` service"
    )
    assert url.host in services, f"{name}: ORDERLY_DATABASE_URL host {url.host!r} is no service"
    assert url.port in (None, 5432), f"{name}: ORDERLY_DATABASE_URL uses port {url.port}"
    assert url.username, f"{name}: ORDERLY_DATABASE_URL names no user"
    assert url.database, f"{name}: ORDERLY_DATABASE_URL names no database"


@pytest.mark.parametrize("worker_name", ["worker", "intake-worker"])
def test_api_and_worker_agree(services: dict[str, dict[str, Any]], worker_name: str) -> None:
    api, worker = env_of(services["api"]), env_of(services[worker_name])
    for key in (
        "ORDERLY_TEMPORAL_TARGET",
        "ORDERLY_TEMPORAL_NAMESPACE",
        "ORDERLY_TASK_QUEUE",
        "ORDERLY_INTAKE_TASK_QUEUE",
        "ORDERLY_DATABASE_URL",
    ):
        assert api.get(key) == worker.get(key), (
            f"api and {worker_name} disagree on {key}: {api.get(key)!r} vs {worker.get(key)!r}"
        )


def test_the_namespace_the_apps_use_is_created(services: dict[str, dict[str, Any]]) -> None:
    assert NAMESPACE_JOB in services, (
        f"no {NAMESPACE_JOB} service: the temporal server image creates no namespace"
    )
    job_env = env_of(services[NAMESPACE_JOB])
    wanted = env_of(services["worker"]).get("ORDERLY_TEMPORAL_NAMESPACE")
    assert job_env.get("NAMESPACE") == wanted, (
        f"{NAMESPACE_JOB} creates namespace {job_env.get('NAMESPACE')!r}, "
        f"but the apps use {wanted!r}"
    )
    for name in ("api", "worker", "intake-worker"):
        condition = depends_on(services[name]).get(NAMESPACE_JOB)
        assert condition == "service_completed_successfully", (
            f"{name} must wait for {NAMESPACE_JOB} to complete, not {condition!r}"
        )


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_build_from_the_dockerfile(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    build = services[name].get("build")
    assert build is not None, f"{name} has no `build`: it must be built from our Dockerfile"
    if isinstance(build, str):
        build = {"context": build}
    context = (ROOT / build.get("context", ".")).resolve()
    assert context == ROOT, f"{name} builds from {context}, not the project root {ROOT}"
    dockerfile = (context / build.get("dockerfile", "Dockerfile")).resolve()
    assert dockerfile == DOCKERFILE, f"{name} builds with {dockerfile}, not {DOCKERFILE}"
    assert dockerfile.is_file(), f"{name} builds with {dockerfile}, which does not exist"


def test_app_commands(services: dict[str, dict[str, Any]]) -> None:
    expected = {
        "migrate": "alembic -c db/alembic.ini upgrade head",
        "api": "uvicorn api.app:create_app --factory --host 0.0.0.0 --port 8000"
        " --timeout-graceful-shutdown 5",
        "worker": "python worker.py --queues orders",
        "intake-worker": "python worker.py --queues intake",
    }
    for name, command in expected.items():
        got = argv(services[name].get("command"))
        assert got == command.split(), f"{name} runs {got}, expected `{command}`"


def test_api_publishes_port_8000(services: dict[str, dict[str, Any]]) -> None:
    ports = [str(port) for port in services["api"].get("ports", [])]
    assert any(port.endswith(":8000") or port == "8000" for port in ports), (
        f"api publishes {ports}, not container port 8000"
    )


@pytest.mark.parametrize("name", ["worker", "intake-worker"])
def test_worker_can_be_scaled(services: dict[str, dict[str, Any]], name: str) -> None:
    worker = services[name]
    assert "container_name" not in worker, "worker has a container_name, so it cannot be scaled"
    assert not worker.get("ports"), "worker publishes ports, so a second replica would clash"


@pytest.mark.parametrize("name", HEALTHCHECKED)
def test_healthchecks(services: dict[str, dict[str, Any]], name: str) -> None:
    check = services[name].get("healthcheck")
    assert check, f"{name} has no healthcheck"
    test = argv(check.get("test"))
    assert not check.get("disable"), f"{name}'s healthcheck is disabled"
    assert test, f"{name}'s healthcheck has no test"
    assert test[0] != "NONE", f"{name}'s healthcheck test is NONE (disabled)"
    assert test[0] in ("CMD", "CMD-SHELL"), (
        f"{name}'s healthcheck test should start with CMD or CMD-SHELL, not {test[0]!r}"
    )


def test_postgres_and_api_healthchecks_probe_the_right_thing(
    services: dict[str, dict[str, Any]],
) -> None:
    postgres = " ".join(argv(services["postgres"]["healthcheck"]["test"]))
    assert "pg_isready" in postgres, f"postgres healthcheck does not use pg_isready: {postgres}"
    api = argv(services["api"]["healthcheck"]["test"])
    for tool in ("curl", "wget"):
        assert tool not in api, f"api healthcheck uses {tool}, which the slim image lacks: {api}"
    assert api[1:2] == ["python"] or api[1:2] == ["python3"], (
        f"api healthcheck should run python, runs {api[1:2]}"
    )
    assert "http://127.0.0.1:8000/healthz" in " ".join(api), (
        f"api healthcheck does not request http://127.0.0.1:8000/healthz: {api}"
    )


def test_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    problems = []
    for name, spec in services.items():
        image = spec.get("image")
        if image is None:
            if "build" not in spec:
                problems.append(f"{name} has neither image nor build")
            continue
        tag = image_tag(str(image))
        if tag is None:
            problems.append(f"{name} uses {image} without a tag (that means latest)")
        elif tag == "latest":
            problems.append(f"{name} uses {image}")
    assert not problems, "unpinned images: " + "; ".join(problems)


def test_postgres_mounts_the_init_script_and_a_named_volume(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    mounts = {}
    for volume in services["postgres"].get("volumes", []):
        if isinstance(volume, dict):
            mounts[volume["target"]] = str(volume.get("source", ""))
        else:
            source, _, rest = str(volume).partition(":")
            mounts[rest.split(":", 1)[0]] = source
    init = [src for dst, src in mounts.items() if dst.startswith("/docker-entrypoint-initdb.d/")]
    assert init, "postgres mounts nothing into /docker-entrypoint-initdb.d"
    assert all((ROOT / src).resolve() == INIT_SQL for src in init), (
        f"postgres init mount {init} is not {INIT_SQL.relative_to(ROOT)}"
    )
    assert INIT_SQL.is_file(), f"{INIT_SQL.relative_to(ROOT)} is missing"
    data = mounts.get("/var/lib/postgresql/data")
    assert data, "postgres keeps its data in no volume"
    assert data in (compose.get("volumes") or {}), (
        f"postgres data lives in {data!r}, which is not a named volume"
    )


def test_temporal_schema_job(services: dict[str, dict[str, Any]]) -> None:
    job = services["temporal-admin-tools"]
    assert str(job.get("image", "")).startswith("temporalio/admin-tools:"), (
        f"temporal-admin-tools runs {job.get('image')!r}, not temporalio/admin-tools"
    )
    script = " ".join(argv(job.get("entrypoint")) + argv(job.get("command")))
    for needle in (
        "temporal-sql-tool",
        "--plugin postgres12",
        "--db temporal create-database",
        "--db temporal setup-schema",
        "--db temporal_visibility create-database",
        "--db temporal_visibility setup-schema",
        "/etc/temporal/schema/postgresql/v12",
        "temporal/versioned",
        "visibility/versioned",
    ):
        assert needle in script, f"temporal-admin-tools' command lacks {needle!r}"
    assert script.count("update-schema") >= 2, (
        "temporal-admin-tools must run update-schema for temporal and temporal_visibility"
    )

    temporal = env_of(services["temporal"])
    assert temporal.get("DB") == "postgres12", f"temporal uses DB={temporal.get('DB')!r}"
    assert temporal.get("POSTGRES_SEEDS") == "postgres", (
        f"temporal's POSTGRES_SEEDS is {temporal.get('POSTGRES_SEEDS')!r}, not the postgres service"
    )
    user = re.search(r"(?:^|\s)-u\s+([A-Za-z0-9_]+)", script)
    assert user, "temporal-admin-tools' temporal-sql-tool gives no `-u USER`"
    assert user.group(1) == temporal.get("POSTGRES_USER"), (
        "temporal-admin-tools and temporal connect as different users: "
        f"{user.group(1)!r} vs {temporal.get('POSTGRES_USER')!r}"
    )


# ----------------------------------------------------------------------------- trust boundary

# Temporal's own ports: frontend gRPC and HTTP, history, matching, internal worker.
TEMPORAL_PORTS = {"7233", "7243", "7234", "7235", "7239"}


def published(service: dict[str, Any]) -> list[tuple[str | None, str | None, str]]:
    """(host address, host port, container port) of each `ports` entry, short or long form."""
    found: list[tuple[str | None, str | None, str]] = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            host_ip = port.get("host_ip")
            host = None if port.get("published") is None else str(port["published"])
            found.append((host_ip, host, str(port["target"]).split("/")[0]))
            continue
        parts = str(port).split("/")[0].rsplit(":", 2)
        host_ip = parts[0] if len(parts) == 3 else None
        host = parts[-2] if len(parts) >= 2 else None
        found.append((host_ip, host, parts[-1]))
    return found


def test_temporal_frontend_and_database_are_not_published(
    services: dict[str, dict[str, Any]],
) -> None:
    """Workflows trust the actor of each update: the frontend must be reachable only by the
    API and the workers, on the compose network."""
    problems = []
    for name, spec in services.items():
        if spec.get("network_mode") == "host":
            problems.append(f"{name} runs with network_mode: host")
        for host_ip, host, container in published(spec):
            if container in TEMPORAL_PORTS or container == "5432" or host in TEMPORAL_PORTS:
                problems.append(f"{name} publishes {host_ip or '*'}:{host}->{container}")
    assert not problems, "published what must stay private: " + "; ".join(problems)
    assert "7233" in [str(p) for p in services["temporal"].get("expose", [])], (
        "temporal should `expose` 7233 to the compose network"
    )


def test_temporal_ui_decodes_through_the_api_codec_server(
    services: dict[str, dict[str, Any]],
) -> None:
    from urllib.parse import urlsplit

    ui_env, api_env = env_of(services["temporal-ui"]), env_of(services["api"])
    endpoint = urlsplit(ui_env.get("TEMPORAL_CODEC_ENDPOINT", ""))
    api_ports = [host for _, host, container in published(services["api"]) if container == "8000"]
    assert endpoint.scheme in ("http", "https"), f"TEMPORAL_CODEC_ENDPOINT is {endpoint!r}"
    assert endpoint.path == "/codec", f"the UI's codec endpoint path is {endpoint.path!r}"
    assert str(endpoint.port) in api_ports, (
        f"the UI's codec endpoint port {endpoint.port} is not the API's published {api_ports}"
    )
    # The browser sends the sign-in cookie only with credentials included.
    assert ui_env.get("TEMPORAL_CODEC_INCLUDE_CREDENTIALS") == "true"
    assert ui_env.get("TEMPORAL_CODEC_PASS_ACCESS_TOKEN", "false") == "false"
    # CORS lets exactly the UI's origin call the codec; same host, so the SameSite cookie goes.
    [(ui_ip, ui_port, _)] = [p for p in published(services["temporal-ui"]) if p[2] == "8080"]
    origin = api_env.get("ORDERLY_TEMPORAL_UI_ORIGIN")
    assert origin == f"{endpoint.scheme}://{endpoint.hostname}:{ui_port}", (
        f"ORDERLY_TEMPORAL_UI_ORIGIN is {origin!r}; the UI is at {endpoint.hostname}:{ui_port}"
    )
    # The UI has no login of its own here: local only, and no write actions.
    assert ui_ip == "127.0.0.1", f"the Temporal UI is published on {ui_ip or 'every address'}"
    assert ui_env.get("TEMPORAL_DISABLE_WRITE_ACTIONS") == "true"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_apps_run_in_production_with_keys_from_a_secret(
    compose: dict[str, Any], services: dict[str, dict[str, Any]], name: str
) -> None:
    env = env_of(services[name])
    assert env.get("ORDERLY_ENVIRONMENT") == "production", f"{name} is not in production mode"
    assert "ORDERLY_ENCRYPTION_KEYS" not in env, f"{name} has keys inline in the compose file"
    path = env.get("ORDERLY_ENCRYPTION_KEYS_FILE", "")
    secret = path.removeprefix("/run/secrets/")
    assert path.startswith("/run/secrets/"), (
        f"{name}: ORDERLY_ENCRYPTION_KEYS_FILE is {path!r}, not a mounted secret"
    )
    assert secret, f"{name}: ORDERLY_ENCRYPTION_KEYS_FILE names no secret"
    mounted = [
        s if isinstance(s, str) else s.get("source") for s in services[name].get("secrets", [])
    ]
    assert secret in mounted, f"{name} does not mount the secret {secret!r}"
    source = (compose.get("secrets") or {}).get(secret) or {}
    assert source.get("file") or source.get("environment"), f"secret {secret!r} has no source"
    if source.get("file"):
        file = (ROOT / source["file"]).resolve()
        folder = file.parent.relative_to(ROOT).as_posix()
        ignored = (file.parent / ".gitignore").read_text(encoding="utf-8").splitlines()
        assert "*" in ignored, f"{folder}/ is not git-ignored: the key file could be committed"
        docker = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        assert folder in [line.strip().rstrip("/") for line in docker], (
            f"{folder} is not in .dockerignore: the key file would be copied into the image"
        )
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        **{k.removeprefix("ORDERLY_").lower(): v for k, v in env.items()},
    )
    assert settings.environment == "production"
    assert settings.encryption_keys_file is not None


# ----------------------------------------------------------------------------- Dockerfile


def test_dockerfile_installs_the_lock_and_runs_as_non_root() -> None:
    instructions = dockerfile_instructions()
    froms = [args for op, args in instructions if op == "FROM"]
    assert froms, "Dockerfile has no FROM"
    assert froms[0].split()[0] == "python:3.11-slim", (
        f"Dockerfile starts FROM {froms[0]}, expected python:3.11-slim"
    )

    copies = [args.split() for op, args in instructions if op == "COPY"]
    sources = [word for words in copies for word in words[:-1] if not word.startswith("--")]
    assert "requirements.lock" in sources, "Dockerfile never COPYs requirements.lock"
    for source in sources:
        if source != ".":
            assert (ROOT / source).exists(), f"Dockerfile COPYs {source}, which does not exist"

    installs = [
        args
        for op, args in instructions
        if op == "RUN" and re.search(r"\bpip\b.*\binstall\b", args)
    ]
    assert any("-r requirements.lock" in run for run in installs), (
        f"Dockerfile does not pip install -r requirements.lock: {installs}"
    )
    assert all("--no-cache-dir" in run for run in installs), (
        f"a pip install in the Dockerfile lacks --no-cache-dir: {installs}"
    )

    users = [args for op, args in instructions if op == "USER"]
    assert users, "Dockerfile has no USER: the processes would run as root"
    assert users[-1].split(":")[0] not in ("root", "0"), f"Dockerfile ends as USER {users[-1]}"

    cmds = [args for op, args in instructions if op == "CMD"]
    assert cmds, "Dockerfile has no CMD"
    assert cmds[-1].replace(" ", "") == '["python","worker.py"]', (
        f'Dockerfile\'s CMD is {cmds[-1]}, expected ["python", "worker.py"]'
    )


def test_dockerignore_keeps_out_local_state_but_not_the_lock() -> None:
    assert DOCKERIGNORE.is_file(), ".dockerignore is missing"
    patterns = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for needed in (".venv", "var", ".git", "deploy/secrets"):
        assert needed in patterns, f".dockerignore does not exclude {needed}"
    for kept in ("requirements.lock", "*.lock", "*", "."):
        assert kept not in patterns, f".dockerignore excludes {kept!r}, which the build needs"


# ----------------------------------------------------------------------------- init script


def test_init_script_creates_what_the_stack_connects_as(
    services: dict[str, dict[str, Any]],
) -> None:
    """Runs deploy/postgres-init.sql as the postgres image would (psql, stop on error)."""
    from tests.pgcluster import PgCluster, find_pg_bindir

    bindir = find_pg_bindir()
    psql = (bindir / "psql") if bindir and (bindir / "psql").exists() else shutil.which("psql")
    if bindir is None or psql is None:
        pytest.skip("PostgreSQL server binaries or psql not installed")
    import psycopg

    app_url = make_url(env_of(services["api"])["ORDERLY_DATABASE_URL"])
    temporal_user = env_of(services["temporal"])["POSTGRES_USER"]

    with PgCluster(bindir) as cluster:
        done = subprocess.run(
            [str(psql), "-v", "ON_ERROR_STOP=1", "--no-psqlrc", "-q", "-f", str(INIT_SQL)],
            env={
                "PGHOST": "127.0.0.1",
                "PGPORT": str(cluster.port),
                "PGUSER": "postgres",
                "PGDATABASE": "postgres",
                "PATH": "/usr/bin:/bin",
            },
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, f"postgres-init.sql failed:\n{done.stderr}"

        def conninfo(user: str, dbname: str) -> str:
            return f"host=127.0.0.1 port={cluster.port} user={user} dbname={dbname}"

        # The app's role owns its database: alembic can create tables in `public`.
        with psycopg.connect(
            conninfo(str(app_url.username), str(app_url.database)), autocommit=True
        ) as conn:
            conn.execute("CREATE TABLE compose_check (id int primary key)")
            owner = conn.execute(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
            ).fetchone()
            assert owner == (app_url.username,), (
                f"database {app_url.database} is owned by {owner}, not {app_url.username}"
            )

        # Temporal's role can create its own databases (temporal-sql-tool create-database).
        with psycopg.connect(conninfo(temporal_user, "postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE temporal_compose_check")
        with psycopg.connect(conninfo(temporal_user, "temporal_compose_check")) as conn:
            conn.execute("CREATE TABLE schema_version (db_name text)")
