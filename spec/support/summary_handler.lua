-- busted output handler: one dot per test while running, then every failure and
-- error in full (name, where, message, traceback), then exactly one last line
--
--   N passed, N failed[, N skipped]
--
-- Errors (in a test, a hook, or loading a file) count as failed. scripts/test
-- runs one busted per spec layer: with CORSGATE_SUMMARY_FILE set, the counts are
-- also written there ("passed failed skipped") and the last line is prefixed
-- with the layer (CORSGATE_SUMMARY_LABEL), so only scripts/test prints the bare
-- total line.
local io_write, io_flush = io.write, io.flush
local format, concat, gsub = string.format, table.concat, string.gsub

return function(options)
  local busted = require("busted")
  local handler = require("busted.outputHandlers.base")()

  local problems = {}
  local dots = 0

  local function out(s)
    io_write(s)
    io_flush()
  end

  local function dot(c)
    dots = dots + 1
    out(c)
    if dots % 60 == 0 then out("\n") end
  end

  local function where(t)
    local tr = t.trace or (t.element and t.element.trace)
    if tr and tr.short_src then return tr.short_src .. ":" .. tostring(tr.currentline) end
    return "?"
  end

  local function describe(kind, t)
    local message = t.message
    if message == nil then
      message = "nil error"
    elseif type(message) ~= "string" then
      local ok, pretty = pcall(require, "pl.pretty")
      message = ok and pretty.write(message) or tostring(message)
    end
    local lines = { format("%s: %s", kind, t.name ~= "" and t.name or "(file)"), "  at " .. where(t) }
    lines[#lines + 1] = "  " .. gsub(message, "\n", "\n  ")
    local tb = t.trace and t.trace.traceback
    if tb and tb ~= "" then
      lines[#lines + 1] = "  " .. gsub(gsub(gsub(tb, "^\n", ""), "%s+$", ""), "\n", "\n  ")
    end
    return concat(lines, "\n")
  end

  handler.testEnd = function(element, parent, status)
    if status == "success" then
      dot(".")
    elseif status == "pending" then
      dot("s")
    elseif status == "failure" then
      dot("F")
      problems[#problems + 1] = describe("FAILED", handler.failures[#handler.failures])
    elseif status == "error" then
      dot("E")
      problems[#problems + 1] = describe("ERROR", handler.errors[#handler.errors])
    end
    return nil, true
  end

  -- Errors outside an `it` (a failing setup/teardown, a file that does not load).
  handler.errorOutside = function(element)
    if element.descriptor ~= "it" then
      dot("E")
      problems[#problems + 1] = describe("ERROR", handler.errors[#handler.errors])
    end
    return nil, true
  end

  handler.suiteEnd = function()
    out("\n")
    if #problems > 0 then out("\n" .. concat(problems, "\n\n") .. "\n\n") end
    local passed = handler.successesCount
    local failed = handler.failuresCount + handler.errorsCount
    local skipped = handler.pendingsCount
    local line = format("%d passed, %d failed", passed, failed)
    if skipped > 0 then line = line .. format(", %d skipped", skipped) end
    local file = os.getenv("CORSGATE_SUMMARY_FILE")
    if file and file ~= "" then
      local f = io.open(file, "w")
      if f then
        f:write(format("%d %d %d\n", passed, failed, skipped))
        f:close()
      end
      line = (os.getenv("CORSGATE_SUMMARY_LABEL") or "layer") .. ": " .. line
    end
    out(line .. "\n")
    return nil, true
  end

  busted.subscribe({ "test", "end" }, handler.testEnd, { predicate = handler.cancelOnPending })
  busted.subscribe({ "error" }, handler.errorOutside)
  busted.subscribe({ "failure" }, handler.errorOutside)
  busted.subscribe({ "suite", "end" }, handler.suiteEnd)

  return handler
end
