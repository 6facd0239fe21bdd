-- Connector: Progressing until reconciled; Degraded while quarantined (removals held by
-- the deletion budget) or not Ready (the app unreachable, credentials refused, a bad
-- spec); otherwise Healthy.
local waiting = unobserved(obj)
if waiting ~= nil then
  return health("Progressing", waiting)
end
local quarantined = held(obj)
if quarantined ~= nil then
  return quarantined
end
return by_ready(obj)
