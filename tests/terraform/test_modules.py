"""The Terraform modules, run for real with OpenTofu and providers built from the Go module proxy.

``make terraform-test``: ``tofu fmt -check``, ``tofu validate`` of every root, ``tofu test``
plan assertions of both modules, then a real ``apply`` + ``destroy`` of ``srs-kubernetes``
on the local stack and of ``srs-aws`` against moto's server, with ``srs customers seed``
loading the table Terraform created and the triage agent's enrichment reading a customer
back.

A step whose provider cannot be used here is an expected failure (xfail) that carries the
reason recorded when the provider was built or probed; every other step runs. Builds happen
once per version (``~/.cache/srs``); see ``terraform/README.md`` for the figures.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from agent_runtime.roles.enrichment import CustomerLookup
from devstack import settings, terraform
from devstack.settings import default_paths
from srs_contracts.agent_config import EnrichmentConfig
from tests.harness import Infra

pytestmark = pytest.mark.terraform

ROOT = Path(__file__).resolve().parents[2]
TF = ROOT / "terraform"
#: Every root `tofu validate` checks, with the providers it needs.
ROOTS = {
    "modules/srs-aws": ("aws",),
    "modules/srs-kubernetes": ("helm", "kubernetes"),
    "examples/eks": ("aws", "helm", "kubernetes"),
    "test/aws-moto": ("aws",),
    "test/kubernetes-local": ("helm", "kubernetes"),
}
#: Roots that need more than the mirror can hold, whatever the build gives.
BEYOND_THE_MIRROR = {
    "examples/eks": "examples/eks configures hashicorp/helm >= 3.0 (its provider block syntax); "
    f"the Go module proxy serves terraform-provider-helm {settings.TOFU_PROVIDERS['helm']} only",
}


_config: pytest.Config | None = None


@pytest.fixture(scope="session", autouse=True)
def _terminal(request: pytest.FixtureRequest) -> None:
    global _config
    _config = request.config


def _say(line: str) -> None:
    """Build progress and timings, on the terminal even while pytest captures output."""
    if _config is None:
        return
    capture = _config.pluginmanager.getplugin("capturemanager")
    reporter = _config.pluginmanager.getplugin("terminalreporter")
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"[terraform-test] {line}")


@pytest.fixture(scope="session")
def tofu_bin() -> Path:
    try:
        return terraform.ensure_tofu(default_paths(), _say)
    except terraform.ToolMissing as e:
        pytest.fail(str(e))


@pytest.fixture(scope="session")
def providers() -> dict[str, terraform.Provider]:
    try:
        found = terraform.ensure_providers(default_paths(), _say)
    except terraform.ToolMissing as e:
        pytest.fail(str(e))
    for what, (wall, rss) in terraform.build_stats(default_paths()).items():
        _say(f"build of {what}: {wall}, peak RSS {rss} MB")
    for p in found.values():
        _say(f"provider {p.name} {p.version}: " + ("usable" if p.usable else f"UNUSABLE: {p.problem}"))
    return found


@pytest.fixture
def tofu(tofu_bin: Path, tmp_path: Path) -> terraform.Tofu:
    """tofu with the mirror-only CLI config and a data directory of this test's own."""
    config = terraform.write_cli_config(tmp_path / "tofurc", default_paths().tofu_mirror)
    return terraform.Tofu(tofu_bin, config, tmp_path / "tf-data")


def _need(providers: dict[str, terraform.Provider], *names: str) -> None:
    """xfail (with the recorded reason) when a provider this step needs is unusable here."""
    problems = [providers[n].problem or "" for n in names if not providers[n].usable]
    if problems:
        pytest.xfail("; ".join(problems) + " (see terraform/README.md)")


def _timed(what: str, started: float) -> None:
    _say(f"{what}: {time.monotonic() - started:.1f} s")


@contextmanager
def applied(tofu: terraform.Tofu, root: Path, variables: list[str], state: Path, label: str) -> Iterator[Any]:
    """``tofu apply`` of ``root`` (state in ``state``), its outputs; ``tofu destroy`` afterwards."""
    tofu.run(root, "init", "-input=false", f"-backend-config=path={state}")
    started = time.monotonic()
    try:
        tofu.run(root, "apply", "-auto-approve", "-no-color", *variables)
        _timed(f"apply {label}", started)
        yield json.loads(tofu.run(root, "output", "-json"))
    finally:
        started = time.monotonic()
        tofu.run(root, "destroy", "-auto-approve", "-no-color", *variables)
        _timed(f"destroy {label}", started)


def test_every_terraform_file_is_formatted(tofu: terraform.Tofu) -> None:
    tofu.run(TF, "fmt", "-check", "-recursive", "-diff")


@pytest.mark.parametrize("root", sorted(ROOTS))
def test_every_root_validates(
    root: str, tofu: terraform.Tofu, providers: dict[str, terraform.Provider], tmp_path: Path
) -> None:
    _need(providers, *ROOTS[root])
    if root in BEYOND_THE_MIRROR:
        pytest.xfail(BEYOND_THE_MIRROR[root])
    tofu.run(TF / root, "init", "-backend=false", "-input=false")
    out = tofu.run(TF / root, "validate", "-no-color")
    assert "Success" in out


@pytest.mark.parametrize("module", ["srs-kubernetes", "srs-aws"])
def test_plan_assertions_pass(module: str, tofu: terraform.Tofu, providers: dict[str, terraform.Provider]) -> None:
    _need(providers, *ROOTS[f"modules/{module}"])
    tofu.run(TF / "modules" / module, "init", "-backend=false", "-input=false")
    started = time.monotonic()
    out = tofu.run(TF / "modules" / module, "test", "-no-color")
    _timed(f"tofu test {module}", started)
    match = re.search(r"Success! (\d+) passed, 0 failed", out)
    assert match and int(match.group(1)) >= 5, out


# -- srs-kubernetes on the local stack ----------------------------------------------------


def _gone(read: Any) -> bool:
    try:
        read()
    except ApiException as e:
        if e.status == 404:
            return True
        raise
    return False


def test_kubernetes_module_deploys_the_chart_on_the_local_stack_and_destroy_leaves_nothing(
    tofu: terraform.Tofu,
    providers: dict[str, terraform.Provider],
    infra: Infra,
    api_client: client.ApiClient,
    tmp_path: Path,
) -> None:
    _need(providers, "helm", "kubernetes")
    root = TF / "test" / "kubernetes-local"
    suffix = uuid.uuid4().hex[:6]
    release, team = f"srs-tf-{suffix}", f"support-tf-{suffix}"
    variables = [
        f"-var=kubeconfig={infra.kubeconfig}",
        f"-var=kafka_bootstrap_servers={infra.kafka_bootstrap}",
        f"-var=suffix={suffix}",
    ]
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    with applied(tofu, root, variables, tmp_path / "terraform.tfstate", "srs-kubernetes (local stack)") as outputs:
        assert outputs["status"]["value"] == "deployed"
        assert outputs["team_namespaces"]["value"] == [team]

        # What Helm and the chart put into the cluster.
        (secret,) = core.list_namespaced_secret(release, label_selector=f"owner=helm,name={release}").items
        assert secret.metadata.labels["status"] == "deployed"
        deployment = apps.read_namespaced_deployment(release, release)
        container = deployment.spec.template.spec.containers[0]
        assert container.image == "srs:0.1.0"
        assert {e.name: e.value for e in container.env}["KAFKA_BOOTSTRAP_SERVERS"] == infra.kafka_bootstrap
        assert f"--namespace={team}" in container.args and "--standalone" in container.args
        assert (deployment.status.available_replicas or 0) == 1  # helm waited for it (kwok runs the pod)
        labels = core.read_namespace(team).metadata.labels
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted" and labels["srs.dev/test"] == "terraform"
        assert rbac.read_cluster_role(release).rules, "the chart's least-privilege ClusterRole"
    # Nothing left: namespaces (the kubernetes provider waits for their deletion), the
    # release's cluster-scoped RBAC, and the release record.
    assert _gone(lambda: core.read_namespace(release)) and _gone(lambda: core.read_namespace(team))
    for name in (release, f"{release}-secrets"):
        assert _gone(lambda n=name: rbac.read_cluster_role(n))
    assert not [b for b in rbac.list_cluster_role_binding().items if b.metadata.name.startswith(release)]


# -- srs-aws against moto -----------------------------------------------------------------


def test_aws_module_applies_to_moto_and_enrichment_reads_a_seeded_customer(
    tofu: terraform.Tofu,
    providers: dict[str, terraform.Provider],
    fake_aws_credentials: None,
    moto_url: str,
    tmp_path: Path,
) -> None:
    _need(providers, "aws")
    root = TF / "test" / "aws-moto"
    table = f"srs-customers-{uuid.uuid4().hex[:6]}"
    region = "us-east-1"
    variables = [f"-var=endpoint={moto_url}", f"-var=table_name={table}", f"-var=region={region}"]
    dynamodb = boto3.client("dynamodb", region_name=region, endpoint_url=moto_url)
    iam = boto3.client("iam", region_name=region, endpoint_url=moto_url)
    with applied(tofu, root, variables, tmp_path / "terraform.tfstate", "srs-aws (moto)") as outputs:
        assert outputs["customers_table_name"]["value"] == table
        described = dynamodb.describe_table(TableName=table)["Table"]
        assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        assert described["SSEDescription"]["Status"] == "ENABLED"
        backups = dynamodb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
        assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
        role = iam.get_role(RoleName="srs-agent-triage")["Role"]
        policy = iam.get_role_policy(RoleName="srs-agent-triage", PolicyName="srs-agent")["PolicyDocument"]
        assert role["Arn"] == outputs["agent_role_arns"]["value"]["triage"]
        assert [s["Action"] for s in policy["Statement"]] == [["dynamodb:GetItem"]]

        # `srs customers seed` into the table Terraform created, then the triage agent's
        # enrichment (the spec.enrichment the module outputs) reads a customer back.
        seed = subprocess.run(
            [sys.executable, "-m", "srs.cli", "customers", "seed", "--table", table, "--region", region,
             "--endpoint-url", moto_url],
            capture_output=True, text=True, cwd=ROOT,
        )  # fmt: skip
        assert seed.returncode == 0, seed.stderr
        enrichment = outputs["enrichment"]["value"]["triage"]
        config = EnrichmentConfig(
            table=enrichment["table"], region=enrichment["region"], key_attribute=enrichment["keyAttribute"],
            endpoint_url=moto_url, timeout_seconds=5,
        )  # fmt: skip

        async def read() -> Any:
            lookup = CustomerLookup(config, agent="terraform-test")
            try:
                return await lookup.lookup("cus_0199")
            finally:
                await lookup.aclose()

        customer = asyncio.run(read())
        assert customer is not None and customer["customer_id"] == "cus_0199" and customer["name"] == "Maria Lopez"
    assert table not in dynamodb.list_tables()["TableNames"]
    assert not [r for r in iam.list_roles()["Roles"] if r["RoleName"].startswith("srs-agent-")]
