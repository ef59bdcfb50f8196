-- 100 MB bodies through the gateway, both ways, with Content-Length and chunked:
-- every byte arrives (length and checksum checked at the far end) and the
-- gateway's memory stays flat, also when the receiving side stalls and the
-- gateway must push back instead of buffering. Over plain HTTP and over TLS.
local gateway = require("spec.support.gateway")
local upstream = require("spec.support.upstream")
local http = require("spec.support.http")
local blob = require("spec.support.blob")
require("spec.support.assert")
local cjson = require("cjson")
local socket = require("socket")
local proc = require("spec.support.proc")
local certs = require("spec.support.certs")

local SIZE = 100 * 1024 * 1024
local PEAK_LIMIT_KB = 64 * 1024
-- Under AddressSanitizer freed memory sits in a quarantine (256 MB by default)
-- and every allocation carries redzones, so peak RSS says nothing about
-- buffering there: the bytes are still checked, the memory bound is not.
-- memory figures of a sanitizer or valgrind run are the tool's, not corsgate's
local SANITIZED = os.getenv("CORSGATE_SANITIZE") == "1" or os.getenv("CORSGATE_VALGRIND") == "1"
local format = string.format

for _, over in ipairs({ "plain HTTP", "TLS" }) do
  describe("streaming over " .. over, function()
    local up, gw, dir, tls
    local checksum = blob.checksum(SIZE)

    lazy_setup(function()
      up = upstream.start()
      local listen, port
      if over == "TLS" then
        dir = proc.tmpdir("stream-tls")
        local ca = certs.new(dir)
        local c = ca:issue("api", { "api.example.test" })
        port = proc.free_port()
        listen = { { address = "127.0.0.1:" .. port, tls = { certificates = { { cert = c.cert, key = c.key } } } } }
        tls = { servername = "api.example.test", cafile = ca.ca }
      end
      gw = gateway.start({
        listen = listen,
        limits = { max_body_bytes = 2 * SIZE },
        upstreams = { big = { targets = { up:target() } } },
        routes = { { name = "big", prefix = "/", upstream = "big" } },
      }, { port = port })
    end)

    local function connect()
      return http.connect(gw:port(), { timeout = 30, tls = tls })
    end

    lazy_teardown(function()
      if gw then
        local mem = gw:rss_kb()
        if mem then
          io.stderr:write(format("\n[streaming over %s] corsgate peak RSS after the 100 MB transfers: %.1f MiB%s\n",
            over, mem.hwm / 1024, SANITIZED and " (sanitizer build: not asserted)" or ""))
        end
        gw:stop_clean()
      end
      if up then up:stop() end
      if dir then proc.rmdir_all(dir) end
    end)

    local function assert_flat(what)
      local mem = gw:rss_kb()
      assert.truthy(mem, "no /proc status for corsgate")
      if SANITIZED then return end
      assert.truthy(mem.hwm < PEAK_LIMIT_KB,
        format("corsgate peak RSS %d KiB after %s (limit %d KiB)\n%s", mem.hwm, what, PEAK_LIMIT_KB, gw:log_tail()))
    end

    -- Sends the blob on c as it goes (chunked when asked); returns true or an error.
    local function send_blob(c, chunked)
      for i = 0, blob.blocks(SIZE) - 1 do
        local b = blob.block(i, SIZE)
        if chunked then b = format("%x\r\n%s\r\n", #b, b) end
        local ok, err = c:send(b)
        if not ok then return nil, err end
      end
      if chunked then return c:send("0\r\n\r\n") end
      return true
    end

    for _, mode in ipairs({ "content-length", "chunked" }) do
      local chunked = mode == "chunked"

      it("uploads 100 MB (" .. mode .. ") intact with flat memory", function()
        local c = assert(connect())
        local framing = chunked and "Transfer-Encoding: chunked" or ("Content-Length: " .. SIZE)
        assert(c:send("POST /upload HTTP/1.1\r\nHost: x\r\n" .. framing .. "\r\n\r\n"))
        assert(send_blob(c, chunked))
        local res, err = c:read_response()
        local body = assert.res_status(200, res, err or gw)
        local j = cjson.decode(body)
        assert.equal(SIZE, j.body_bytes)
        assert.equal(checksum, j.body_checksum)
        c:close()
        assert_flat("a " .. mode .. " upload")
      end)

      it("downloads 100 MB (" .. mode .. ") intact with flat memory", function()
        local st = blob.new()
        local path = (chunked and "/chunked/" or "/bytes/") .. SIZE
        local res, err = http.request(gw:port(), "GET", path, {}, nil,
          { timeout = 30, tls = tls, sink = function(s) blob.update(st, s) end })
        assert.res_status(200, res, err or gw)
        assert.equal(SIZE, st.n)
        assert.equal(checksum, blob.digest(st))
        assert_flat("a " .. mode .. " download")
      end)
    end

    it("pushes back on the upstream while the client does not read a download", function()
      local c = assert(connect())
      if c.sock.setoption then c.sock:setoption("keepalive", true) end
      assert(c:send("GET /bytes/" .. SIZE .. " HTTP/1.1\r\nHost: x\r\n\r\n"))
      local st = blob.new()
      -- read the head and the first MiB, then stall while the upstream keeps writing
      local first = true
      local res, err = c:read_response({ sink = function(s)
        blob.update(st, s)
        if first and st.n >= 1048576 then
          first = false
          socket.sleep(1.0)
          assert_flat("a stalled download")
        end
      end })
      assert.res_status(200, res, err or gw)
      assert.equal(SIZE, st.n)
      assert.equal(checksum, blob.digest(st))
      c:close()
    end)

    it("pushes back on the client while the upstream does not read an upload", function()
      local c = assert(connect())
      assert(c:send("POST /slowread/1000 HTTP/1.1\r\nHost: x\r\nContent-Length: " .. SIZE .. "\r\n\r\n"))
      assert(send_blob(c, false))
      local res, err = c:read_response()
      local body = assert.res_status(200, res, err or gw)
      local j = cjson.decode(body)
      assert.equal(SIZE, j.body_bytes)
      assert.equal(checksum, j.body_checksum)
      assert_flat("an upload to a stalled upstream")
      c:close()
    end)
  end)
end
