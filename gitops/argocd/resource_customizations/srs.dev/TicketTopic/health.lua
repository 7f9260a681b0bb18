-- Health of an srs.dev TicketTopic (a Kafka topic), from the status the srs operator writes.
--
-- Healthy only when Ready=True *and* the status describes the current spec
-- (status.observedGeneration == metadata.generation): a status written for an older
-- generation says nothing about the spec Argo CD just applied. Progressing while there is
-- no status, the status is stale, or Kafka is unreachable for now (KafkaUnavailable: the
-- operator retries with backoff). Degraded, with the operator's message, when the topic
-- cannot become what the spec asks: NotSupported (a partition decrease, a replication
-- factor change), ResourceConflict (another TicketTopic manages the topic), InvalidConfig.
--
-- Works unchanged in argocd-cm: it uses only Lua's base and table libraries.
local hs = {}

-- Ready=False reasons that clear up on their own.
local PROGRESSING_REASONS = { KafkaUnavailable = true, TopicInUse = true }

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

local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the srs operator to create or adopt the topic"
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

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = text(ready.message)
  return hs
end

if ready == nil or ready.status ~= "False" or PROGRESSING_REASONS[ready.reason] then
  hs.status = "Progressing"
  hs.message = "Waiting for the topic"
  if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
    hs.message = ready.message
  end
  return hs
end

hs.status = "Degraded"
hs.message = text(ready.message)
return hs
