--[[
job_submit.lua: apply the node a wass plan chose for a job, after a resource check.

A client (`wass plan --slurm DIR --placement plugin`) submits each task of a workflow with
`--comment=wass:node=<name>`. For such a job, this plugin sets the job's nodelist to that node
when all of these hold:

  * the job does not already ask for nodes itself (`--nodelist`);
  * the node is in the node table and in one of the partitions the job may use;
  * the node is not down, drained, draining, failing or in maintenance;
  * the node has at least the CPUs (`--cpus-per-task` x tasks) and memory (`--mem`) the job
    asks for.

Otherwise the job is left as it was submitted, so Slurm places it on a node of its own choice:
a plan never makes a job unrunnable. Every decision is logged by slurmctld (`wass:` lines).

Node state comes from a table file, because Slurm's job_submit/lua API (22.05 and later) exposes
jobs, reservations and partitions but no node records, and running sinfo or scontrol from inside
slurmctld (which holds its locks while this runs) can deadlock it. `node_table.sh` writes the
table (one line per node: name, state, CPUs, memory in MB, after a first line `# updated
<epoch>`); run it every few seconds (a timer, cron, or `node_table.sh --every 1`). A table older
than MAX_AGE seconds counts as unknown: the plan's choice is then not applied.
]]

NODE_TABLE = "/run/wass/nodes.tsv"   -- written by node_table.sh
MAX_AGE = 30                         -- [s] an older table is ignored
UNUSABLE = { "down", "drain", "fail", "maint", "future", "power", "reboot", "unknown",
             "not_responding", "no_respond", "inval" }

local function read_table()
   local f = io.open(NODE_TABLE, "r")
   if f == nil then
      return nil, "no node table " .. NODE_TABLE
   end
   local nodes = {}
   local updated = nil
   for line in f:lines() do
      local stamp = string.match(line, "^# updated (%d+)")
      if stamp then
         updated = tonumber(stamp)
      elseif string.sub(line, 1, 1) ~= "#" then
         local name, state, cpus, mem = string.match(line, "^(%S+)%s+(%S+)%s+(%d+)%s+(%d+)")
         if name then
            nodes[name] = { state = string.lower(state), cpus = tonumber(cpus),
                            mem = tonumber(mem) }
         end
      end
   end
   f:close()
   if updated == nil then
      return nil, "node table " .. NODE_TABLE .. " has no '# updated' line"
   end
   if os.time() - updated > MAX_AGE then
      return nil, "node table " .. NODE_TABLE .. " is " .. (os.time() - updated) .. " s old"
   end
   return nodes, nil
end

local function unusable(state)
   for _, word in ipairs(UNUSABLE) do
      if string.find(state, word, 1, true) then
         return true
      end
   end
   return false
end

-- Does a partition's node expression (e.g. "n[1-4],big1") contain `node`?
local function in_hostlist(expr, node)
   if expr == nil then
      return false
   end
   if expr == "ALL" then
      return true
   end
   -- Split on commas outside brackets.
   local items, depth, cur = {}, 0, ""
   for ch in string.gmatch(expr, ".") do
      if ch == "[" then depth = depth + 1 elseif ch == "]" then depth = depth - 1 end
      if ch == "," and depth == 0 then
         table.insert(items, cur)
         cur = ""
      else
         cur = cur .. ch
      end
   end
   table.insert(items, cur)
   for _, item in ipairs(items) do
      local prefix, ranges, suffix = string.match(item, "^([^%[]*)%[([^%]]*)%](.*)$")
      if prefix == nil then
         if item == node then
            return true
         end
      else
         for r in string.gmatch(ranges, "[^,]+") do
            local lo, hi = string.match(r, "^(%d+)-(%d+)$")
            if lo == nil then
               lo, hi = r, r
            end
            local width = string.len(lo)
            for i = tonumber(lo), tonumber(hi) do
               local num = string.format("%0" .. width .. "d", i)
               if prefix .. num .. suffix == node then
                  return true
               end
            end
         end
      end
   end
   return false
end

local function unset(v)
   return v == nil or v == slurm.NO_VAL or v == slurm.NO_VAL16 or v == slurm.NO_VAL64
      or v >= 4294967294
end

-- Why `node` cannot take the job (nil when it can).
local function check(job_desc, part_list, node, nodes)
   local rec = nodes[node]
   if rec == nil then
      return "no such node"
   end
   if unusable(rec.state) then
      return "node is " .. rec.state
   end
   local parts = {}
   if job_desc.partition ~= nil then
      for p in string.gmatch(job_desc.partition, "[^,]+") do parts[p] = true end
   end
   local in_part = false
   for name, part in pairs(part_list) do
      local wanted = (job_desc.partition == nil and part.flag_default == 1) or parts[name]
      if wanted and in_hostlist(part.nodes, node) then
         in_part = true
      end
   end
   if not in_part then
      return "node is not in the job's partition"
   end
   local cpt = job_desc.cpus_per_task
   if unset(cpt) then cpt = 1 end
   local ntasks = job_desc.num_tasks
   if unset(ntasks) then ntasks = 1 end
   local cpus = job_desc.min_cpus
   if unset(cpus) or cpus < cpt * ntasks then cpus = cpt * ntasks end
   if cpus > rec.cpus then
      return string.format("job needs %d CPUs, node has %d", cpus, rec.cpus)
   end
   local mem = job_desc.min_mem_per_node
   if not unset(mem) and mem > rec.mem then
      return string.format("job needs %d MB, node has %d MB", mem, rec.mem)
   end
   return nil
end

function slurm_job_submit(job_desc, part_list, submit_uid)
   local comment = job_desc.comment
   if comment == nil then
      return slurm.SUCCESS
   end
   local node = string.match(comment, "wass:node=([%w%.%-_]+)")
   if node == nil then
      return slurm.SUCCESS
   end
   local name = job_desc.name or "?"
   if job_desc.req_nodes ~= nil and job_desc.req_nodes ~= "" then
      slurm.log_info("wass: job %s asks for nodes %s itself; plan node %s not applied",
                     name, job_desc.req_nodes, node)
      return slurm.SUCCESS
   end
   local nodes, err = read_table()
   local why = err
   if nodes ~= nil then
      why = check(job_desc, part_list, node, nodes)
   end
   if why == nil then
      job_desc.req_nodes = node
      slurm.log_info("wass: job %s placed on plan node %s", name, node)
   else
      slurm.log_info("wass: job %s: plan node %s not applied (%s); Slurm chooses", name, node, why)
   end
   return slurm.SUCCESS
end

function slurm_job_modify(job_desc, job_rec, part_list, modify_uid)
   return slurm.SUCCESS
end

slurm.log_info("wass: job_submit.lua loaded")
return slurm.SUCCESS
