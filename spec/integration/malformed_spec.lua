-- Malformed and ambiguous requests: 400 and the connection closed, and never a
-- second request smuggled out of the first one's bytes. Each case is followed on
-- the wire by a request for /smuggled; its static answer must never appear, at
-- the client or in the upstream (the echo route counts what reaches it).
local gateway = require("spec.support.gateway")
local http = require("spec.support.http")
require("spec.support.assert")
local cjson = require("cjson")

local SMUGGLED = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"

local function h(lines) return table.concat(lines, "\r\n") .. "\r\n\r\n" end

-- name, bytes (the smuggled request is appended), statuses allowed (default 400)
local cases = {
  { "a garbage request line", "GARBAGE\r\n\r\n" },
  { "a request line with an extra field", h({ "GET / HTTP/1.1 extra", "Host: x" }) },
  { "a method with a bad character", h({ "G@T / HTTP/1.1", "Host: x" }) },
  -- RFC 9112 2.3: a major version the server does not speak is refused (505 or 400)
  { "an HTTP/2.0 request line", h({ "GET / HTTP/2.0", "Host: x" }), { 400, 505 } },
  { "an HTTP/3.1 request line", h({ "GET / HTTP/3.1", "Host: x" }), { 400, 505 } },
  { "a header name with a space", h({ "POST /echo HTTP/1.1", "Host: x", "Bad Header: y" }) },
  { "a header name with a bad character", h({ "GET / HTTP/1.1", "Host: x", "X(y): z" }) },
  -- llhttp lets these two through itself: corsgate's own name check must catch them
  { "an empty header name", h({ "GET / HTTP/1.1", "Host: x", ": z" }) },
  { "a header name ending in a space", h({ "GET / HTTP/1.1", "Host: x", "X-A : z" }) },
  { "a header name with a byte above 0x7f", h({ "GET / HTTP/1.1", "Host: x", "X-\xc3\xa9: z" }) },
  { "a header name with a DEL", h({ "GET / HTTP/1.1", "Host: x", "X-\x7f: z" }) },
  { "whitespace before a header's colon", h({ "POST /echo HTTP/1.1", "Host: x", "Content-Length : 5" }) .. "ABCDE" },
  { "a header line without a colon", h({ "GET / HTTP/1.1", "Host: x", "NoColonHere" }) },
  { "a NUL in a header value", h({ "GET / HTTP/1.1", "Host: x", "X-A: a\0b" }) },
  { "a bare CR in a header value", h({ "GET / HTTP/1.1", "Host: x", "X-A: a\rb" }) },
  { "Content-Length with Transfer-Encoding",
    h({ "POST /echo HTTP/1.1", "Host: x", "Content-Length: 5", "Transfer-Encoding: chunked" }) .. "0\r\n\r\n" },
  { "Transfer-Encoding with Content-Length",
    h({ "POST /echo HTTP/1.1", "Host: x", "Transfer-Encoding: chunked", "Content-Length: 48" }) .. "0\r\n\r\n" },
  { "two equal Content-Length headers", h({ "POST /echo HTTP/1.1", "Host: x", "Content-Length: 5", "Content-Length: 5" }) .. "ABCDE" },
  { "two different Content-Length headers", h({ "POST /echo HTTP/1.1", "Host: x", "Content-Length: 0", "Content-Length: 5" }) .. "ABCDE" },
  { "a Content-Length list", h({ "POST /echo HTTP/1.1", "Host: x", "Content-Length: 1, 2" }) .. "AB" },
  { "a negative Content-Length", h({ "POST /echo HTTP/1.1", "Host: x", "Content-Length: -1" }) },
  { "a signed Content-Length", h({ "POST /echo HTTP/1.1", "Host: x", "Content-Length: +5" }) .. "ABCDE" },
  { "a non-numeric Content-Length", h({ "POST /echo HTTP/1.1", "Host: x", "Content-Length: five" }) },
  { "an overflowing Content-Length", h({ "POST /echo HTTP/1.1", "Host: x", "Content-Length: 99999999999999999999999" }) },
  { "an invalid chunk size", h({ "POST /echo HTTP/1.1", "Host: x", "Transfer-Encoding: chunked" }) .. "zz\r\nabc\r\n0\r\n\r\n" },
  { "an overflowing chunk size",
    h({ "POST /echo HTTP/1.1", "Host: x", "Transfer-Encoding: chunked" }) .. "1ffffffffffffffff\r\nabc\r\n0\r\n\r\n" },
  { "a chunk without its CRLF", h({ "POST /echo HTTP/1.1", "Host: x", "Transfer-Encoding: chunked" }) .. "3\r\nabcX\r\n0\r\n\r\n" },
  { "obsolete line folding", h({ "GET / HTTP/1.1", "Host: x", "X-A: a", " folded" }) },
  { "obsolete line folding with a tab", h({ "GET / HTTP/1.1", "Host: x", "X-A: a", "\tfolded" }) },
  { "a first header line starting with a space", h({ "GET / HTTP/1.1", " Host: x" }) },
  { "Transfer-Encoding: gzip", h({ "POST /echo HTTP/1.1", "Host: x", "Transfer-Encoding: gzip" }) .. "ABCDE" },
  { "Transfer-Encoding: identity", h({ "POST /echo HTTP/1.1", "Host: x", "Transfer-Encoding: identity" }) .. "ABCDE" },
  { "chunked not last in Transfer-Encoding",
    h({ "POST /echo HTTP/1.1", "Host: x", "Transfer-Encoding: chunked, gzip" }) .. "0\r\n\r\n" },
  { "Transfer-Encoding: xchunked", h({ "POST /echo HTTP/1.1", "Host: x", "Transfer-Encoding: xchunked" }) .. "0\r\n\r\n" },
  { "two Host headers", h({ "GET / HTTP/1.1", "Host: x", "Host: y" }) },
}

describe("malformed requests", function()
  local gw

  lazy_setup(function()
    gw = gateway.start({
      routes = {
        { name = "root", prefix = "/", static = { status = 200, body = "root" } },
        { name = "smuggled", prefix = "/smuggled", static = { status = 200, body = "SMUGGLED" } },
        { name = "echo", prefix = "/echo", upstream = "echo" },
      },
    })
  end)

  lazy_teardown(function() gw:stop_clean() end)

  for _, case in ipairs(cases) do
    local name, bytes, statuses = case[1], case[2], case[3] or { 400 }
    it(("answers %s and closes for %s"):format(table.concat(statuses, " or "), name), function()
      local c = assert(http.connect(gw:port()))
      c:send(bytes .. SMUGGLED)
      local res, err = c:read_response()
      local expected = statuses[1]
      for _, st in ipairs(statuses) do
        if res and res.status == st then expected = st end
      end
      assert.res_status(expected, res, err or gw)
      local ok, j = pcall(cjson.decode, res.body)
      assert.truthy(ok and j.status == expected, "error body is not the JSON error: " .. tostring(res.body))
      assert.header(res, "connection", "close", gw)
      local rest = c:read_all(5) or ""
      assert.truthy(c.closed, "connection left open after 400")
      assert.falsy(rest:find("SMUGGLED", 1, true), "smuggled request answered:\n" .. rest)
      assert.equal("", rest)
    end)
  end

  -- Bare LF line ends: refusing them (400) and reading them as line ends are both
  -- safe, as long as the bytes make exactly the requests a strict reader sees.
  it("handles bare LF line ends safely", function()
    local c = assert(http.connect(gw:port()))
    c:send("GET / HTTP/1.1\nHost: x\n\n")
    local res, err = c:read_response()
    assert.truthy(res, err)
    if res.status == 200 then
      assert.equal("root", res.body)
    else
      assert.res_status(400, res, gw)
      assert.is_true((c:peer_closed(5)))
    end
  end)

  it("never splits a header at a bare LF into a second request", function()
    local c = assert(http.connect(gw:port()))
    c:send("POST /echo HTTP/1.1\r\nHost: x\r\nX-A: a\nContent-Length: 40\r\nContent-Length: 0\r\n\r\n" .. SMUGGLED)
    local res, err = c:read_response()
    assert.truthy(res, err)
    assert.truthy(res.status == 400, "expected 400, got " .. require("spec.support.assert").show_response(res))
    local rest = c:read_all(5) or ""
    assert.falsy(rest:find("SMUGGLED", 1, true), rest)
  end)

  it("keeps serving well-formed requests after all of that", function()
    local res, err = http.request(gw:port(), "GET", "/", {})
    local body = assert.res_status(200, res, err or gw)
    assert.equal("root", body)
    assert.is_true(gw:alive())
  end)
end)
