"""The Argo CD health checks of gitops/argocd, run by Argo CD's own Lua VM (gopher-lua,
through the luahealth harness): every health_test.yaml case, with the libraries a script
gets in argocd-cm and with those Argo CD gives its built-in scripts; every condition
reason the operator can write is classified; the rendered argocd-cm / Helm / Operator
files are what the scripts produce; and a script that ignores observedGeneration fails."""

from __future__ import annotations

import datetime as dt
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops.argocd import healthchecks, interpreter
from gitops.argocd.interpreter import CaseResult, Health, Libs
from srs_operator.models.supportagent import Reason as AgentReason
from srs_operator.models.tickettopic import Reason as TopicReason

pytestmark = pytest.mark.unit

ROOT = healthchecks.CUSTOMIZATIONS
AGENT, TOPIC = "srs.dev/SupportAgent", "srs.dev/TicketTopic"


def _cases() -> list[tuple[str, str]]:
    out = []
    for test_file in sorted(ROOT.glob("*/*/health_test.yaml")):
        check = test_file.parent.relative_to(ROOT).as_posix()
        out += [(check, t["inputPath"]) for t in yaml.safe_load(test_file.read_text())["tests"]]
    return out


@cache
def _results(libs: Libs) -> dict[tuple[str, str], CaseResult]:
    return {(r.check, r.input_path): r for r in interpreter.run_cases(libs=libs)}


@pytest.mark.parametrize("libs", list(Libs))
@pytest.mark.parametrize(("check", "input_path"), _cases())
def test_health_test_case_passes_under_argo_cds_interpreter(check: str, input_path: str, libs: Libs) -> None:
    result = _results(libs)[(check, input_path)]
    assert not result.error, result.error
    assert result.got == result.want


def test_both_kinds_have_cases_for_every_health_state_they_use() -> None:
    states = {(r.check, r.want.status) for r in _results(Libs.ARGOCD_CM).values()}
    assert {s for c, s in states if c == AGENT} == {"Healthy", "Progressing", "Degraded", "Suspended"}
    assert {s for c, s in states if c == TOPIC} == {"Healthy", "Progressing", "Degraded"}


def test_every_testdata_file_is_a_case_and_of_its_kind() -> None:
    for check_dir in ROOT.glob("*/*"):
        check = check_dir.relative_to(ROOT).as_posix()
        listed = {p for c, p in _cases() if c == check}
        on_disk = {p.relative_to(check_dir).as_posix() for p in (check_dir / "testdata").glob("*.yaml")}
        assert listed == on_disk, f"{check}: testdata not in health_test.yaml, or cases without a file"
        group, kind = check.split("/")
        for path in on_disk:
            obj = yaml.safe_load((check_dir / path).read_text())
            assert (obj["apiVersion"].split("/")[0], obj["kind"]) == (group, kind), path


# -- a broken script must fail the cases ---------------------------------------------------

STALENESS_CHECK = "if generation ~= nil and (status.observedGeneration ~= generation"


@pytest.mark.parametrize("check", [AGENT, TOPIC])
def test_a_script_that_ignores_observed_generation_fails_the_stale_cases(check: str, tmp_path: Path) -> None:
    script = interpreter.health_script(check).read_text()
    assert script.count(STALENESS_CHECK) == 1, "the staleness check moved: update this test"
    broken = tmp_path / "health.lua"
    broken.write_text(script.replace(STALENESS_CHECK, "if false and (status.observedGeneration ~= generation"))

    results = interpreter.run_cases(scripts={check: broken})

    failed = [r for r in results if r.check == check and not r.passed]
    assert [r.input_path for r in failed] == ["testdata/progressing_stale_status.yaml"]
    [stale] = failed
    assert stale.got.status == "Healthy"  # exactly the stale success argo-cd#23578 is about


# -- every reason the operator writes is classified ----------------------------------------

#: Health when the reason is reported with status False; None: the operator never reports
#: it as False on the condition the script reads (a True reason, or Events only).
AGENT_REASONS: dict[AgentReason, str | None] = {
    AgentReason.APPLIED: None,
    AgentReason.TOPICS_READY: None,
    AgentReason.ROLLOUT_COMPLETE: None,
    AgentReason.ROLLING_OUT: "Progressing",
    AgentReason.TOPICS_NOT_READY: "Progressing",  # Degraded once it lasts, see below
    AgentReason.INVALID_SPEC: "Degraded",
    AgentReason.PROMPT_NOT_FOUND: "Degraded",
    AgentReason.OFFLINE_MODEL_NOT_FOUND: "Degraded",
    AgentReason.NAME_CONFLICT: "Degraded",
    AgentReason.APPLY_FAILED: "Degraded",
    AgentReason.PROGRESS_DEADLINE_EXCEEDED: "Degraded",
    AgentReason.PODS_FAILING: "Degraded",  # an image that cannot be pulled, a crash loop, admission
    AgentReason.SECRET_NOT_FOUND: "Degraded",
    AgentReason.SECRETS_NOT_READABLE: "Degraded",
    AgentReason.NOT_ACCEPTED: "Degraded",
    AgentReason.AUTOSCALER_MISSING: "Degraded",  # KEDA is not installed: someone must act
    # On the Autoscaling condition, which the script does not read: while KEDA cannot read
    # the lag, its fallback holds the pods and the agent still works.
    AgentReason.SCALING_ON_LAG: None,
    AgentReason.MAX_REPLICAS_CAPPED: None,
    AgentReason.SCALER_NOT_READY: None,
    # Kafka access (when the operator manages the agents' Kafka users).
    AgentReason.ACCESS_GRANTED: None,
    AgentReason.CREDENTIALS_FROM_SECRET: None,
    AgentReason.TOPICS_NOT_ALLOWED: "Degraded",  # a topic outside the namespace's prefix rules: rename it
    AgentReason.KAFKA_UNAVAILABLE: "Degraded",  # no child changes until the agent's access is sure
    AgentReason.KAFKA_REFUSED: "Degraded",
}
#: Where the agent's operator reports each False reason.
AGENT_CONDITION = {
    AgentReason.TOPICS_NOT_READY: "TopicsReady",
    AgentReason.INVALID_SPEC: "Accepted",
    AgentReason.PROMPT_NOT_FOUND: "Accepted",
    AgentReason.OFFLINE_MODEL_NOT_FOUND: "Accepted",
    AgentReason.NAME_CONFLICT: "Accepted",
    AgentReason.APPLY_FAILED: "Accepted",
    AgentReason.KAFKA_UNAVAILABLE: "Accepted",
    AgentReason.KAFKA_REFUSED: "Accepted",
}
TOPIC_REASONS: dict[TopicReason, str | None] = {
    TopicReason.IN_SYNC: None,
    TopicReason.CREATED: None,
    TopicReason.ADOPTED: None,
    TopicReason.RECREATED: None,
    TopicReason.PARTITIONS_INCREASED: None,
    TopicReason.CONFIG_UPDATED: None,
    TopicReason.BROKER_DEFAULT: None,
    TopicReason.DELETED: None,
    TopicReason.RETAINED: None,
    TopicReason.DELETE_ABANDONED: None,
    TopicReason.KAFKA_UNAVAILABLE: "Progressing",
    TopicReason.NOT_SUPPORTED: "Degraded",
    TopicReason.RESOURCE_CONFLICT: "Degraded",
    TopicReason.KAFKA_ERROR: "Degraded",
    TopicReason.INVALID_CONFIG: "Degraded",
    TopicReason.INVALID_SPEC: "Degraded",
    TopicReason.TOPIC_EXISTS: "Degraded",
    TopicReason.TOPIC_NAME_NOT_ALLOWED: "Degraded",
    TopicReason.TOPIC_IN_USE: "Progressing",
}


def test_every_reason_the_operator_defines_is_classified() -> None:
    assert set(AGENT_REASONS) == set(AgentReason), "a new SupportAgent reason: decide its Argo CD health"
    assert set(TOPIC_REASONS) == set(TopicReason), "a new TicketTopic reason: decide its Argo CD health"


def _now(offset_seconds: int = 0) -> str:
    t = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=offset_seconds)
    return t.isoformat().replace("+00:00", "Z")


def _cond(type_: str, status: str, reason: str, message: str, since: str | None = None) -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since or _now(),
        "observedGeneration": 7,
    }


def _obj(kind: str, conditions: list[dict[str, Any]], replicas: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "srs.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "y", "generation": 7},
        "spec": {"replicas": replicas} if kind == "SupportAgent" else {"partitions": 3},
        "status": {"observedGeneration": 7, "ready": "1/2", "conditions": conditions},
    }


def _agent_with(reason: AgentReason) -> dict[str, Any]:
    message = f"the operator says {reason.value}"
    where = AGENT_CONDITION.get(reason, "Ready")
    conditions = {
        "Accepted": _cond("Accepted", "True", "Applied", "applied"),
        "TopicsReady": _cond("TopicsReady", "True", "TopicsReady", "topics ready"),
        "Ready": _cond("Ready", "True", "RolloutComplete", "2 of 2 replicas updated and available"),
    }
    conditions[where] = _cond(where, "False", reason.value, message)
    return _obj("SupportAgent", list(conditions.values()))


@pytest.mark.parametrize("reason", [r for r, h in AGENT_REASONS.items() if h is not None])
def test_each_supportagent_reason_maps_to_its_health_with_the_operators_message(reason: AgentReason) -> None:
    [health] = interpreter.evaluate(interpreter.health_script(AGENT), [_agent_with(reason)])
    assert health.status == AGENT_REASONS[reason]
    assert health.message.endswith(f"the operator says {reason.value}")


@pytest.mark.parametrize("reason", [r for r, h in TOPIC_REASONS.items() if h is not None])
def test_each_tickettopic_reason_maps_to_its_health_with_the_operators_message(reason: TopicReason) -> None:
    obj = _obj("TicketTopic", [_cond("Ready", "False", reason.value, f"the operator says {reason.value}")])
    [health] = interpreter.evaluate(interpreter.health_script(TOPIC), [obj])
    assert health == Health(TOPIC_REASONS[reason] or "", f"the operator says {reason.value}")


def test_a_missing_topic_is_progressing_at_first_and_degraded_once_it_lasts() -> None:
    def agent(since: str) -> dict[str, Any]:
        return _obj(
            "SupportAgent",
            [
                _cond("Accepted", "True", "Applied", "applied"),
                _cond("TopicsReady", "False", "TopicsNotReady", "no TicketTopic for ticket.x", since=since),
                _cond("Ready", "True", "RolloutComplete", "2 of 2 replicas updated and available"),
            ],
        )

    # The grace period is 120 s; these are far from it on either side.
    fresh, lasting = interpreter.evaluate(interpreter.health_script(AGENT), [agent(_now(-10)), agent(_now(-600))])
    assert fresh == Health("Progressing", "no TicketTopic for ticket.x")
    assert lasting == Health("Degraded", "no TicketTopic for ticket.x")


def test_a_script_error_is_reported_not_hidden(tmp_path: Path) -> None:
    script = tmp_path / "health.lua"
    script.write_text("return { status = string.upper('healthy') }\n")  # no string library in argocd-cm
    with pytest.raises(RuntimeError, match="upper"):
        interpreter.evaluate(script, [{}])
    assert interpreter.evaluate(script, [{}], Libs.BUILT_IN) == [
        Health("Unknown", "Lua returned an invalid health status")
    ]


# -- one source: the rendered files are what the scripts produce ---------------------------


def test_rendered_argo_cd_configuration_matches_the_scripts() -> None:
    expected = healthchecks.render(healthchecks.health_checks())
    on_disk = {p.name: p.read_text() for p in healthchecks.INSTALL_DIR.glob("*.yaml")}
    assert on_disk == expected, "gitops/argocd/install is out of date: run `make gitops`"
    doc = healthchecks.DOC.read_text()
    assert healthchecks.doc_with_snippet(doc, expected["argocd-cm.yaml"]) == doc, (
        "the argocd-cm snippet in docs/gitops.md is out of date: run `make gitops`"
    )


def test_the_scripts_pasted_into_argocd_cm_pass_every_case(tmp_path: Path) -> None:
    cm = yaml.safe_load((healthchecks.INSTALL_DIR / "argocd-cm.yaml").read_text())
    scripts = {}
    for check in (AGENT, TOPIC):
        group, kind = check.split("/")
        path = tmp_path / f"{kind}.lua"
        path.write_text(cm["data"][f"resource.customizations.health.{group}_{kind}"])
        scripts[check] = path
    results = interpreter.run_cases(scripts=scripts)
    assert {r.check for r in results} == {AGENT, TOPIC}
    assert [r for r in results if not r.passed] == []


def test_helm_values_and_operator_resource_carry_the_same_scripts() -> None:
    cm = yaml.safe_load((healthchecks.INSTALL_DIR / "argocd-cm.yaml").read_text())["data"]
    values = yaml.safe_load((healthchecks.INSTALL_DIR / "helm-values.yaml").read_text())
    assert values["configs"]["cm"] == cm
    argocd = yaml.safe_load((healthchecks.INSTALL_DIR / "argocd-operator.yaml").read_text())
    checks = {
        f"resource.customizations.health.{c['group']}_{c['kind']}": c["check"]
        for c in argocd["spec"]["resourceHealthChecks"]
    }
    assert checks == cm


def test_scaled_to_zero_can_be_reported_healthy_for_applications_with_sync_waves(tmp_path: Path) -> None:
    script = interpreter.health_script(AGENT).read_text()
    setting = 'local SCALED_TO_ZERO = "Suspended"'
    assert script.count(setting) == 1
    healthy = tmp_path / "health.lua"
    healthy.write_text(script.replace(setting, 'local SCALED_TO_ZERO = "Healthy"'))
    case = ROOT / AGENT / "testdata" / "suspended_scaled_to_zero.yaml"
    [health] = interpreter.evaluate(healthy, [yaml.safe_load(case.read_text())])
    assert health == Health("Healthy", "Scaled to zero: spec.replicas is 0, no pods run")


def test_the_interpreter_gives_argocd_cm_scripts_what_argo_cd_gives_them(tmp_path: Path) -> None:
    # Found on a real Argo CD v3.6: its safe os functions land in the table module, so
    # `os.time()` fails in argocd-cm and `require("os").time()` works.
    probe = tmp_path / "probe.lua"
    probe.write_text(
        "local seen = {}\n"
        "for _, name in ipairs({'os', 'string', 'math', 'io'}) do\n"
        "  if _G[name] ~= nil then table.insert(seen, name) end\n"
        "end\n"
        "local os = require('os')\n"
        "if os.time() > 0 and os.date ~= nil and os.execute == nil then table.insert(seen, 'require-os') end\n"
        "return { status = 'Healthy', message = table.concat(seen, ',') }\n"
    )
    [cm] = interpreter.evaluate(probe, [{}])
    assert cm == Health("Healthy", "require-os")
    [built_in] = interpreter.evaluate(probe, [{}], Libs.BUILT_IN)
    assert built_in.message.split(",")[:4] == ["os", "string", "math", "io"]
