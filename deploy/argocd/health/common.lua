-- Shared by the five health checks (each file below is this text plus its own); Argo CD
-- runs each as the body of a function with the object in `obj`.
local function condition(obj, type_)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

-- Progressing until Roster has reconciled this generation of the object.
local function unobserved(obj)
  if obj.status == nil then
    return "waiting for Roster to reconcile it"
  end
  local generation = obj.metadata.generation
  local observed = obj.status.observedGeneration
  if generation ~= nil and (observed == nil or observed < generation) then
    return "waiting for Roster to reconcile generation " .. tostring(generation)
  end
  return nil
end

local function health(status, message)
  return {status = status, message = message}
end

-- Healthy when the condition `type_` is True, Degraded when not, Progressing (saying
-- `unset`) before it is first set.
local function by_condition(obj, type_, unset)
  local c = condition(obj, type_)
  if c == nil then
    return health("Progressing", unset)
  elseif c.status == "True" then
    return health("Healthy", c.message)
  end
  return health("Degraded", c.message or c.reason)
end

-- Healthy when Ready, Degraded when not, Progressing before the first check.
local function by_ready(obj)
  return by_condition(obj, "Ready", "not checked yet")
end

-- Degraded while removals are held (`Quarantined=True`): someone must look; nil if not.
local function held(obj)
  local quarantined = condition(obj, "Quarantined")
  if quarantined ~= nil and quarantined.status == "True" then
    return health("Degraded", "quarantined: " .. (quarantined.message or quarantined.reason))
  end
  return nil
end
