-- Connector: Progressing until reconciled; Degraded while quarantined (removals held by
-- the deletion budget) or not Ready (the app unreachable, credentials refused, a bad
-- spec); otherwise Healthy.
local hs = {}
local waiting = unobserved(obj)
if waiting ~= nil then
  hs.status = "Progressing"
  hs.message = waiting
  return hs
end
local quarantined = condition(obj, "Quarantined")
if quarantined ~= nil and quarantined.status == "True" then
  hs.status = "Degraded"
  hs.message = "quarantined: " .. (quarantined.message or quarantined.reason)
  return hs
end
local ready = condition(obj, "Ready")
if ready == nil then
  hs.status = "Progressing"
  hs.message = "not checked yet"
elseif ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
else
  hs.status = "Degraded"
  hs.message = ready.message or ready.reason
end
return hs
