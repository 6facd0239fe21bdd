-- IdentitySource: Progressing until read; Degraded while quarantined (leavers held by
-- the import safeguard) or when the last read was refused (an export that does not
-- parse, a directory that does not answer); otherwise Healthy.
local waiting = unobserved(obj)
if waiting ~= nil then
  return health("Progressing", waiting)
end
local quarantined = condition(obj, "Quarantined")
if quarantined ~= nil and quarantined.status == "True" then
  return health("Degraded", "quarantined: " .. (quarantined.message or quarantined.reason))
end
local synced = condition(obj, "Synced")
if synced == nil then
  return health("Progressing", "not read yet")
elseif synced.status == "True" then
  return health("Healthy", synced.message)
end
return health("Degraded", synced.message or synced.reason)
