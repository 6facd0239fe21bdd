-- Identity: Progressing until reconciled; Degraded when its references do not resolve or
-- a connector fails; a leaver is Progressing until every connector on its receipt is
-- verified, and Degraded while access remains through an account Roster does not own.
local waiting = unobserved(obj)
if waiting ~= nil then
  return health("Progressing", waiting)
end
local ready = condition(obj, "Ready")
if ready ~= nil and ready.status == "False" then
  return health("Degraded", ready.message or ready.reason)
end
local receipt = obj.status.deprovisioning
local terminated = obj.spec ~= nil and obj.spec.state == "Terminated"
if receipt ~= nil or terminated then
  local total, verified = 0, 0
  if receipt ~= nil and receipt.connectors ~= nil then
    for _, c in ipairs(receipt.connectors) do
      total = total + 1
      if c.exception ~= nil then
        return health("Degraded", c.connector .. ": " .. c.exception)
      end
      if c.verifiedAt ~= nil then
        verified = verified + 1
      end
    end
  end
  if receipt == nil or verified < total then
    return health("Progressing", "deprovisioning: " .. verified .. " of " .. total .. " connector(s) verified")
  end
  return health("Healthy", "access removed and verified on " .. total .. " connector(s)")
end
local synced = condition(obj, "Synced")
if synced == nil then
  return health("Progressing", "not synced yet")
elseif synced.status == "True" then
  return health("Healthy", synced.message)
elseif synced.reason == "Error" then
  return health("Degraded", synced.message)
end
return health("Progressing", "converging: " .. (synced.message or synced.reason))
