-- Role and RoleBinding: Progressing until reconciled, then Healthy when Ready (every
-- reference resolves, every expression compiles within its limits), else Degraded.
local hs = {}
local waiting = unobserved(obj)
if waiting ~= nil then
  hs.status = "Progressing"
  hs.message = waiting
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
