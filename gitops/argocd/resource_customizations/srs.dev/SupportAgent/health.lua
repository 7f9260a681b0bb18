-- Health of an srs.dev SupportAgent, from the status the srs operator writes.
--
-- Healthy only when Ready=True *and* the status describes the current spec
-- (status.observedGeneration == metadata.generation): a status written for an older
-- generation says nothing about the spec Argo CD just applied. Progressing while there is
-- no status, the status is stale, or a rollout is under way. Degraded, with the operator's
-- message, when the agent cannot reach its goal. Suspended when scaled to zero on purpose.
--
-- Works unchanged in argocd-cm: it uses only what Argo CD gives such scripts by default
-- (Lua's base and table libraries, and os.time; no string or math library).
local hs = {}

-- An argocd-cm script has no global `os`; Argo CD hands out os.time/os.date through require.
local os = require("os")

-- An agent is often applied together with its TicketTopics; a topic that is still missing
-- or not Ready after this long is a real problem, not a sync in progress.
local TOPICS_GRACE_SECONDS = 120

-- Ready=False reasons the operator reports while it is still getting there.
local PROGRESSING_REASONS = { RollingOut = true }

-- An agent scaled to zero on purpose. In a sync with several waves Argo CD (v3.6) waits
-- for every wave but the last to be Healthy or Degraded: a Suspended agent in an earlier
-- wave keeps the operation running for good (argo-cd#29663). If agents are not your last
-- wave, use "Healthy" here; the message still says the agent is scaled to zero.
local SCALED_TO_ZERO = "Suspended"

local function find_condition(conditions, type_)
  for _, condition in ipairs(conditions) do
    if condition.type == type_ then
      return condition
    end
  end
  return nil
end

local function text(value)
  if value == nil then
    return "none"
  end
  return tostring(value)
end

-- Integer division and RFC 3339 formatting by arithmetic only (no math/string library).
local function idiv(a, b)
  return (a - a % b) / b
end

local function two_digits(n)
  if n < 10 then
    return "0" .. n
  end
  return "" .. n
end

-- The RFC 3339 UTC text ("2026-11-30T10:00:00Z") of a Unix time, so that it compares as
-- text with the lastTransitionTime the API server stores.
local function rfc3339(unix)
  local days = idiv(unix, 86400)
  local secs = unix - days * 86400
  -- civil date from days since 1970-01-01 (Howard Hinnant's algorithm)
  local z = days + 719468
  local era = idiv(z, 146097)
  local doe = z - era * 146097
  local yoe = idiv(doe - idiv(doe, 1460) + idiv(doe, 36524) - idiv(doe, 146096), 365)
  local doy = doe - (365 * yoe + idiv(yoe, 4) - idiv(yoe, 100))
  local mp = idiv(5 * doy + 2, 153)
  local day = doy - idiv(153 * mp + 2, 5) + 1
  local month = mp + 3
  if mp >= 10 then
    month = mp - 9
  end
  local year = yoe + era * 400
  if month <= 2 then
    year = year + 1
  end
  return year .. "-" .. two_digits(month) .. "-" .. two_digits(day) .. "T" .. two_digits(idiv(secs, 3600)) .. ":"
    .. two_digits(idiv(secs % 3600, 60)) .. ":" .. two_digits(secs % 60) .. "Z"
end

local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the srs operator to report the agent's status"
  return hs
end

local generation = obj.metadata.generation
local ready = find_condition(status.conditions, "Ready")
if generation ~= nil and (status.observedGeneration ~= generation
    or (ready ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration ~= generation)) then
  hs.status = "Progressing"
  hs.message = "Waiting for the srs operator to observe generation " .. text(generation)
    .. " (the status describes generation " .. text(status.observedGeneration) .. ")"
  return hs
end

local accepted = find_condition(status.conditions, "Accepted")
if accepted ~= nil and accepted.status == "False" then
  hs.status = "Degraded"
  hs.message = text(accepted.message)
  return hs
end

if ready == nil or ready.status ~= "True" then
  if ready == nil or ready.status ~= "False" or PROGRESSING_REASONS[ready.reason] then
    hs.status = "Progressing"
    local message = "Waiting for the rollout"
    if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
      message = ready.message
    end
    if status.ready ~= nil then
      message = status.ready .. " replicas ready: " .. message
    end
    hs.message = message
    return hs
  end
  -- ProgressDeadlineExceeded, SecretNotFound, and whatever else keeps the agent from its goal
  hs.status = "Degraded"
  hs.message = text(ready.message)
  return hs
end

if obj.spec ~= nil and obj.spec.replicas == 0 then
  hs.status = SCALED_TO_ZERO
  hs.message = "Scaled to zero: spec.replicas is 0, no pods run"
  return hs
end

local topics = find_condition(status.conditions, "TopicsReady")
if topics ~= nil and topics.status ~= "True" then
  local since = topics.lastTransitionTime
  if since ~= nil and since <= rfc3339(os.time() - TOPICS_GRACE_SECONDS) then
    hs.status = "Degraded"
  else
    hs.status = "Progressing"
  end
  hs.message = text(topics.message)
  return hs
end

hs.status = "Healthy"
hs.message = text(ready.message)
return hs
