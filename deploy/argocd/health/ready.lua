-- Role and RoleBinding: Progressing until reconciled, then Healthy when Ready (every
-- reference resolves, every expression compiles within its limits), else Degraded.
local waiting = unobserved(obj)
if waiting ~= nil then
  return health("Progressing", waiting)
end
return by_ready(obj)
