-- IdentitySource: Progressing until read; Degraded while quarantined (leavers held by
-- the import safeguard) or when the last read was refused (an export that does not
-- parse, a directory that does not answer); otherwise Healthy.
local waiting = unobserved(obj)
if waiting ~= nil then
  return health("Progressing", waiting)
end
local quarantined = held(obj)
if quarantined ~= nil then
  return quarantined
end
return by_condition(obj, "Synced", "not read yet")
