-- Connector: Progressing until reconciled; Degraded while quarantined (removals held by
-- the deletion budget) or not Ready (the app unreachable, credentials refused, a bad
-- spec); otherwise Healthy.
local waiting = unobserved(obj)
if waiting ~= nil then
  return health("Progressing", waiting)
end
local quarantined = condition(obj, "Quarantined")
if quarantined ~= nil and quarantined.status == "True" then
  return health("Degraded", "quarantined: " .. (quarantined.message or quarantined.reason))
end
return by_ready(obj)
