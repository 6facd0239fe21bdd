-- Identity: Progressing until reconciled; Degraded when its references do not resolve or
-- a connector fails; a leaver is Progressing until every connector on its receipt is
-- verified, and Degraded while access remains through an account Roster does not own.
local hs = {}
local waiting = unobserved(obj)
if waiting ~= nil then
  hs.status = "Progressing"
  hs.message = waiting
  return hs
end
local ready = condition(obj, "Ready")
if ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = ready.message or ready.reason
  return hs
end
local receipt = obj.status.deprovisioning
local terminated = obj.spec ~= nil and obj.spec.state == "Terminated"
if receipt ~= nil or terminated then
  local total, verified = 0, 0
  if receipt ~= nil and receipt.connectors ~= nil then
    for _, c in ipairs(receipt.connectors) do
      total = total + 1
      if c.exception ~= nil then
        hs.status = "Degraded"
        hs.message = c.connector .. ": " .. c.exception
        return hs
      end
      if c.verifiedAt ~= nil then
        verified = verified + 1
      end
    end
  end
  if receipt == nil or verified < total then
    hs.status = "Progressing"
    hs.message = "deprovisioning: " .. verified .. " of " .. total .. " connector(s) verified"
    return hs
  end
  hs.status = "Healthy"
  hs.message = "access removed and verified on " .. total .. " connector(s)"
  return hs
end
local synced = condition(obj, "Synced")
if synced == nil then
  hs.status = "Progressing"
  hs.message = "not synced yet"
elseif synced.status == "True" then
  hs.status = "Healthy"
  hs.message = synced.message
elseif synced.reason == "Error" then
  hs.status = "Degraded"
  hs.message = synced.message
else
  hs.status = "Progressing"
  hs.message = "converging: " .. (synced.message or synced.reason)
end
return hs
