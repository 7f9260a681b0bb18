"""The command the operator prints when it may not read Secrets in a namespace: runnable as is."""

from __future__ import annotations

import pytest

from srs_operator.clients.secrets import SecretsForbidden, grant_command

pytestmark = pytest.mark.unit


def test_the_command_names_the_operator_the_helm_chart_installed() -> None:
    env = {
        "SRS_SECRETS_ROLE": "ops-secrets",
        "SRS_OPERATOR_NAMESPACE": "platform",
        "SRS_OPERATOR_SERVICE_ACCOUNT": "ops",
    }
    assert grant_command("support", env) == (
        "kubectl create rolebinding ops-secrets -n support --clusterrole=ops-secrets --serviceaccount=platform:ops"
    )


def test_without_the_charts_env_the_names_of_the_plain_manifests_are_used() -> None:
    assert grant_command("support", {}) == (
        "kubectl create rolebinding srs-operator-secrets -n support "
        "--clusterrole=srs-operator-secrets --serviceaccount=srs-system:srs-operator"
    )


def test_the_condition_message_carries_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SRS_SECRETS_ROLE", raising=False)
    message = str(SecretsForbidden("billing", "403 Forbidden"))
    assert "may not read Secrets in namespace billing (403 Forbidden)" in message
    assert "`kubectl create rolebinding srs-operator-secrets -n billing " in message
